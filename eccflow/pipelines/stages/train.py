"""``train`` stage: fit the configured decoder on the code; output ``checkpoint``."""
from __future__ import annotations

import mlflow
from lightning.pytorch.loggers import MLFlowLogger

from eccflow.pipelines.runner import StageContext, StageResult, stage
from eccflow.train import fit


@stage("train")
def train(ctx: StageContext) -> StageResult:
    logger = MLFlowLogger(tracking_uri=ctx.tracking_uri, run_id=ctx.run_id, log_model=False)
    model, metrics = fit(ctx.code, ctx.config, ctx.out_dir, logger=logger)
    mlflow.log_artifact(str(model), artifact_path="checkpoint")
    mlflow.log_metrics(metrics)
    return StageResult(outputs={"checkpoint": str(model)}, metrics=metrics)
