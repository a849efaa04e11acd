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


TINY_RUN = ["trainer.max_epochs=1", "data.batches_per_epoch=2", "data.batch_size=32", "data.val_frames=200",
            "data.val_ebn0_db=[5.0]"]
TINY_EVALUATE = ["stages.evaluate.max_frames=400", "stages.evaluate.batch_size=400", "stages.evaluate.ebn0_db=[5.0]",
                 "tracking.champion_metric=neg_ln_ber_5dB"]


def shrunk(*overrides: str, evaluate: bool = True) -> list[str]:
    """The one override set that shrinks any pipeline to seconds (pipeline mechanics, never decoder quality),
    followed by a test's own ``overrides``, which win where they set the same key. ``evaluate=False`` for
    pipelines without an ``evaluate`` stage (naming a stage a pipeline lacks is an error)."""
    return [*TINY_RUN, *(TINY_EVALUATE if evaluate else []), *overrides]


TINY_BACKBONE = ["decoder.layers=1", "decoder.d_model=32"]  # the architecture of the tiny_backbone fixture


@pytest.fixture(scope="session")
def tiny_backbone(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The manifest path of an exported, untrained 1 x 32 FECCT backbone (pipeline mechanics, not quality):
    pipelines take it with ``stages.pretrained.weights=<path>`` and :data:`TINY_BACKBONE`."""
    from eccflow.codes import get_code
    from eccflow.config import compose
    from eccflow.lit.families import build_network
    from eccflow.lit import save_decoder
    from eccflow.pretrained import export_backbone

    folder = tmp_path_factory.mktemp("backbone")
    config = compose("BCH_n15_k7", "fecct", "quick", TINY_BACKBONE)["decoder"]
    torch.manual_seed(0)
    checkpoint = save_decoder(build_network(get_code("BCH_n15_k7"), config), config, "BCH_n15_k7", folder / "net.ckpt")
    backbone = export_backbone(checkpoint, folder, "tiny", {"steps": 0, "words": 0}, commit="test")
    return str(backbone.path.with_suffix(".json"))
