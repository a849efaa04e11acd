import numpy as np
import pytest
import torch


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    np.random.seed(0)


@pytest.fixture
def isolated_mlflow(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fresh SQLite MLflow store and stage cache under the test's tmp_path (pipelines run against them)."""
    from eccflow.track import configure_mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    monkeypatch.setenv("ECCFLOW_CACHE_DIR", str(tmp_path / "cache"))
    configure_mlflow()
