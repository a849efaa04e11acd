"""Training stages; each outputs ``checkpoint``.

* ``train``: fit the configured decoder on CODE from scratch.
* ``pretrain``: fit a universal decoder (FECCT) on the code mixture ``stages.pretrain.codes``; its
  output does not depend on CODE, so one pretraining serves every target code from the cache.
* ``finetune``: continue from the input ``checkpoint`` (e.g. the pretrained backbone) on CODE.
"""
from __future__ import annotations

import mlflow
from lightning.pytorch.loggers import MLFlowLogger

from eccflow.codes import get_code
from eccflow.errors import ConfigError
from eccflow.pipelines.runner import StageContext, StageResult, stage
from eccflow.train import fit


def _fit_and_log(ctx: StageContext, code, **kwargs) -> StageResult:
    logger = MLFlowLogger(tracking_uri=ctx.tracking_uri, run_id=ctx.run_id, log_model=False)
    model, metrics = fit(code, ctx.config, ctx.out_dir, logger=logger, stage=ctx.name, **kwargs)
    mlflow.log_artifact(str(model), artifact_path="checkpoint")
    mlflow.log_metrics(metrics)
    return StageResult(outputs={"checkpoint": str(model)}, metrics=metrics)


@stage("train")
def train(ctx: StageContext) -> StageResult:
    return _fit_and_log(ctx, ctx.code)


def check_mixture(name: str, st: dict) -> None:
    """The mixture and held-out lists of a pretrain stage, checked before the pipeline does any work: both
    resolve to codes, the mixture is not empty and no held-out code is in it."""
    if not st.get("codes"):
        raise ConfigError(f"stages.{name}.codes must list the codes of the pretraining mixture")
    heldout = st.get("heldout") or []
    if not isinstance(heldout, list):
        raise ConfigError(f"stages.{name}.heldout must be a list of code names, got {heldout!r}")
    mixture = {get_code(c).name for c in st["codes"]}
    overlap = sorted(mixture & {get_code(c).name for c in heldout})
    if overlap:
        raise ConfigError(f"stages.{name}: held-out codes must never enter the mixture; in both lists: {overlap}")


@stage("pretrain", code_independent=True, check=check_mixture)
def pretrain(ctx: StageContext) -> StageResult:
    codes = ctx.stage_config["codes"]
    mlflow.set_tags({"pretrain_codes": ",".join(codes), "target_seen_in_pretraining": str(ctx.code.name in codes)})
    return _fit_and_log(ctx, get_code(codes[0]))


@stage("finetune")
def finetune(ctx: StageContext) -> StageResult:
    if "checkpoint" not in ctx.inputs:
        raise ConfigError("the finetune stage needs a checkpoint from an earlier stage (e.g. pretrain)")
    return _fit_and_log(ctx, ctx.code, init_checkpoint=ctx.inputs["checkpoint"])
