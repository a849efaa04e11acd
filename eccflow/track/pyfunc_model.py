"""The code of every registered eccflow decoder (MLflow models-from-code): MLflow runs this file to build the
model, so nothing is unpickled on load; the model reads its checkpoint artifact with an allow-listed loader."""
import mlflow

from eccflow.track.mlflow_tracking import CheckpointDecoderModel

mlflow.models.set_model(CheckpointDecoderModel())
