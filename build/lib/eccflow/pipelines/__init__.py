"""Pipelines: stage functions composed into a cached, resumable DAG, tracked in MLflow."""
from eccflow.pipelines.runner import STAGES, StageContext, StageResult, run_pipeline, stage

__all__ = ["STAGES", "StageContext", "StageResult", "run_pipeline", "stage"]
