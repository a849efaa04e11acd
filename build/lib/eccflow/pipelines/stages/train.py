"""Training stages; each outputs ``checkpoint``.

* ``train``: fit the configured decoder on CODE from scratch.
* ``pretrain``: fit a universal decoder (FECCT) on the code mixture ``stages.pretrain.codes``; its
  output does not depend on CODE, so one pretraining serves every target code from the cache.
* ``pretrained``: a verified backbone instead of a pretraining: the one shipped with eccflow
  (``stages.pretrained.weights: universal_fecct``) or an exported one (a manifest path), registered in
  MLflow on first use.
* ``finetune``: continue from the input ``checkpoint`` (e.g. the pretrained backbone) on CODE.
"""
from __future__ import annotations

import shutil

import mlflow
from lightning.pytorch.loggers import MLFlowLogger

from eccflow.codes import get_code
from eccflow.errors import ConfigError
from eccflow.pipelines.runner import StageContext, StageResult, stage
from eccflow.pretrained import architecture_mismatch, load_backbone
from eccflow.track.mlflow_tracking import register_backbone
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


def check_mixture(name: str, config: dict) -> None:
    """The mixture and held-out lists of a pretrain stage, checked before the pipeline does any work: both
    resolve to codes, the mixture is not empty and no held-out code is in it."""
    st = config["stages"][name]
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


def check_backbone(name: str, config: dict) -> None:
    """The backbone verifies (checksum, format, network) and the pipeline's decoder config is its architecture."""
    backbone = load_backbone(config["stages"][name]["weights"])
    mismatch = architecture_mismatch(config["decoder"], backbone)
    if mismatch:
        raise ConfigError(f"the decoder config differs from backbone {backbone.name} ({backbone.path}): "
                          f"{'; '.join(mismatch)}; to train another size use PIPELINE=universal and pass its export "
                          f"as stages.{name}.weights")


def backbone_digest(name: str, config: dict) -> dict[str, str]:
    return {"backbone": load_backbone(config["stages"][name]["weights"]).sha256}


@stage("pretrained", code_independent=True, check=check_backbone, key=backbone_digest)
def pretrained(ctx: StageContext) -> StageResult:
    backbone = load_backbone(ctx.stage_config["weights"])
    copy = ctx.out_dir / "model.ckpt"
    shutil.copyfile(backbone.path, copy)
    training = backbone.manifest["training"]
    mlflow.set_tags({"backbone": backbone.name, "backbone_sha256": backbone.sha256, "backbone_commit": backbone.manifest["commit"]})
    metrics = {k: float(training[k]) for k in ("steps", "words") if isinstance(training.get(k), (int, float))}
    if ctx.config["tracking"]["register"]:
        version = register_backbone(copy, backbone.name, backbone.sha256, metrics)
        ctx.log(f"[{ctx.name}] backbone {backbone.name} ({backbone.sha256[:12]}) is {version}")
    return StageResult(outputs={"checkpoint": str(copy)}, metrics=metrics)


@stage("finetune")
def finetune(ctx: StageContext) -> StageResult:
    if "checkpoint" not in ctx.inputs:
        raise ConfigError("the finetune stage needs a checkpoint from an earlier stage (e.g. pretrain)")
    return _fit_and_log(ctx, ctx.code, init_checkpoint=ctx.inputs["checkpoint"])
