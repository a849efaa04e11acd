from typing import Iterator

import numpy as np
import pytest
import torch
from conftest_mlflow import MlflowServer, running_mlflow_server


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


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """A running MLflow tracking server, shared by the session's tests (tests/conftest_mlflow.py)."""
    with running_mlflow_server(tmp_path_factory.mktemp("mlflow-server")) as server:
        yield server
