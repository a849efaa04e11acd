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


@stage("pretrain", code_independent=True)
def pretrain(ctx: StageContext) -> StageResult:
    codes = ctx.stage_config["codes"]
    if not codes:
        raise ConfigError("stages.pretrain.codes must list the codes of the pretraining mixture")
    mlflow.set_tags({"pretrain_codes": ",".join(codes), "target_seen_in_pretraining": str(ctx.code.name in codes)})
    return _fit_and_log(ctx, get_code(codes[0]))


@stage("finetune")
def finetune(ctx: StageContext) -> StageResult:
    if "checkpoint" not in ctx.inputs:
        raise ConfigError("the finetune stage needs a checkpoint from an earlier stage (e.g. pretrain)")
    return _fit_and_log(ctx, ctx.code, init_checkpoint=ctx.inputs["checkpoint"])
