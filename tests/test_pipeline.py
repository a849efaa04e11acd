"""The pipeline runner end to end on a tiny config: errors first, MLflow runs, cache, resume, registry."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient

from conftest_mlflow import MlflowServer
from eccflow.errors import ConfigError, EccflowError, UnknownCodeError
from eccflow.lit import read_checkpoint
from eccflow.pipelines import run_pipeline
from eccflow.pipelines.stages.evaluate import LOADER
from eccflow.train import _resume_checkpoint
from eccflow.track import configure_mlflow, load_registered_decoder, point_metrics
from conftest import shrunk

CODE = "BCH_n31_k16"
TINY = shrunk("trainer.max_epochs=2", "data.batches_per_epoch=4", "data.batch_size=64", "data.val_frames=300",
              "stages.evaluate.max_frames=3000", "stages.evaluate.batch_size=1500", "stages.evaluate.ebn0_db=[4.0, 5.0]")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pipeline")
    return root


@pytest.fixture(autouse=True)
def _isolated(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store}/mlflow.db")
    monkeypatch.setenv("ECCFLOW_CACHE_DIR", str(store / "cache"))
    configure_mlflow()


def _quiet(_: str) -> None:
    pass


def _runs(experiment: str = "eccflow") -> list:
    exp = MlflowClient().get_experiment_by_name(experiment)
    return [] if exp is None else MlflowClient().search_runs([exp.experiment_id])


def test_errors_before_any_work(store: Path) -> None:
    before = len(_runs())
    with pytest.raises(UnknownCodeError, match="unknown code"):
        run_pipeline("BCH_n31_k17", "neural_bp", overrides=TINY, log=_quiet)
    with pytest.raises(ConfigError, match="unknown pipeline"):
        run_pipeline(CODE, "nope", overrides=TINY, log=_quiet)
    with pytest.raises(ConfigError, match="unknown config key 'stages.train.lrate'"):
        run_pipeline(CODE, "neural_bp", overrides=[*TINY, "stages.train.lrate=0.1"], log=_quiet)
    with pytest.raises(ConfigError, match="unknown profile"):
        run_pipeline(CODE, "neural_bp", profile="fast", log=_quiet)
    with pytest.raises(ConfigError, match="stages.evaluate: unknown stop rule 'quick'"):
        run_pipeline(CODE, "neural_bp", overrides=[*TINY, "stages.evaluate.stop_rule=quick"], log=_quiet)
    with pytest.raises(ConfigError, match="stages.evaluate: unknown baseline 'turbo'"):
        run_pipeline(CODE, "neural_bp", overrides=[*TINY, "stages.evaluate.baselines=[hard, turbo]"], log=_quiet)
    with pytest.raises(ConfigError, match="data.batch_size=64 does not fit the large-batch recipe"):
        run_pipeline(CODE, "neural_bp", overrides=[*TINY, "data.batch_size=64", "stages.train.lr=null",
                                                   "stages.train.recipe={lr: 0.01, batch: 128, max_batch: 512, power: 0.5}"],
                     log=_quiet)
    assert len(_runs()) == before  # nothing was started


def test_runs_registry_and_cache(store: Path) -> None:
    first = run_pipeline(CODE, "neural_bp", overrides=TINY, log=_quiet)
    assert [s["cached"] for s in first["stages"].values()] == [False, False]
    client = MlflowClient()
    children = client.search_runs(
        [client.get_run(first["parent_run_id"]).info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{first['parent_run_id']}'",
    )
    by_stage = {r.data.tags["stage"]: r for r in children}
    assert set(by_stage) == {"train", "evaluate"}
    evaluate_run = by_stage["evaluate"]
    for key in ("neg_ln_ber_4dB", "ber_5dB", "fer_4dB", "decoder_params", "decoder_flops", "hard_neg_ln_ber_4dB",
                "bp5_neg_ln_ber_4dB", "bp50_fer_5dB", "osd2_neg_ln_ber_5dB", "vs_bp5_d_neg_ln_ber_4dB",
                "vs_bp50_d_fer_lo_5dB", "vs_osd2_ber_verdict_4dB", "vs_hard_fer_verdict_5dB"):
        assert key in evaluate_run.data.metrics, key
    assert evaluate_run.data.tags["stop_rule"] == "paper"
    assert evaluate_run.data.tags["vs_hard_ber_4dB"] in ("better", "worse", "not resolved")
    assert "train/loss_epoch" in by_stage["train"].data.metrics  # training curves from the Lightning logger
    artifacts = {a.path for a in client.list_artifacts(evaluate_run.info.run_id)}
    assert {"ber_curves.png", "ber_table.md", "ber_table.json"} <= artifacts
    assert evaluate_run.data.tags["code"] == CODE and evaluate_run.data.tags["profile"] == "quick"

    # Registry: the candidate alias loads back and re-evaluates to the logged numbers.
    name = f"eccflow-neural_bp-{CODE}"
    version = client.get_model_version_by_alias(name, "candidate")
    assert version.tags["loader"] == LOADER
    decoder = load_registered_decoder("neural_bp", CODE, alias="candidate")
    from eccflow.codes import get_code
    from eccflow.eval import evaluate

    results = evaluate(decoder, get_code(CODE), [4.0, 5.0], max_frames=3000, batch_size=1500, rule="paper",
                       seed=0, codewords="random", progress=False)  # same words as the stage: the seed alone decides
    again = point_metrics(results)
    for key, value in again.items():
        assert evaluate_run.data.metrics[key] == pytest.approx(value)

    # Same config again: both stages come from the cache, as nested runs tagged cache=hit.
    start = time.perf_counter()
    second = run_pipeline(CODE, "neural_bp", overrides=TINY, log=_quiet)
    assert [s["cached"] for s in second["stages"].values()] == [True, True]
    assert time.perf_counter() - start < 30
    assert second["stages"]["evaluate"]["metrics"] == first["stages"]["evaluate"]["metrics"]
    # An evaluate-only change reuses the trained model and re-runs evaluation.
    third = run_pipeline(CODE, "neural_bp", overrides=[*TINY, "stages.evaluate.max_frames=1500"], log=_quiet)
    assert [s["cached"] for s in third["stages"].values()] == [True, False]


def _readable(path: Path) -> bool:
    try:
        read_checkpoint(path)
        return True
    except EccflowError:
        return False


def test_half_written_checkpoint_is_set_aside(tmp_path: Path) -> None:
    ckpt_dir = tmp_path / "checkpoints"
    ckpt_dir.mkdir()
    (ckpt_dir / "last.ckpt").write_bytes(b"PK\x03\x04 truncated")
    with pytest.warns(UserWarning, match="corrupt"):
        assert _resume_checkpoint(ckpt_dir) is None
    assert [p.name.split("-")[0] for p in ckpt_dir.iterdir()] == ["last.corrupt"]


@pytest.mark.slow
def test_resume_after_kill(store: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    overrides = shrunk("trainer.max_epochs=10", "data.batches_per_epoch=6", "data.batch_size=64", "data.val_frames=300",
                       "stages.evaluate.max_frames=1500", "stages.evaluate.batch_size=1500", "tracking.register=false")
    env = {**os.environ, "ECCFLOW_CACHE_DIR": str(cache), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "eccflow.cli", "pipeline", "--code", CODE]
    for o in overrides:
        cmd += ["--override", o]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 240
        last = None
        while time.time() < deadline and proc.poll() is None:
            found = list(cache.glob("train-*/checkpoints/last.ckpt"))
            if found and _readable(found[0]):
                last = found[0]
                break
            time.sleep(0.02)
        assert last is not None, "training never wrote a checkpoint"
        assert proc.poll() is None, "training finished before it could be killed"
        os.killpg(proc.pid, signal.SIGKILL)  # kill -9 mid-training, possibly mid-write of last.ckpt
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    train_dir = last.parent.parent
    assert not (train_dir / "DONE.json").exists()
    os.environ["ECCFLOW_CACHE_DIR"] = str(cache)
    try:
        summary = run_pipeline(CODE, "neural_bp", overrides=overrides, log=_quiet)
    finally:
        os.environ.pop("ECCFLOW_CACHE_DIR")
    train = summary["stages"]["train"]
    assert not train["cached"] and train["metrics"]["resumed_from_epoch"] >= 1
    assert (train_dir / "DONE.json").exists()


@pytest.mark.slow
def test_tiny_pipeline_against_a_real_server(mlflow_server: MlflowServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.url)
    monkeypatch.setenv("ECCFLOW_CACHE_DIR", str(tmp_path / "cache"))
    summary = run_pipeline(CODE, "neural_bp", overrides=TINY, log=_quiet, tracking_uri=mlflow_server.url)
    client = MlflowClient(tracking_uri=mlflow_server.url)
    parent = client.get_run(summary["parent_run_id"])
    children = client.search_runs([parent.info.experiment_id],
                                  filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert {r.data.tags["stage"] for r in children} == {"train", "evaluate"}
    evaluate_run = next(r for r in children if r.data.tags["stage"] == "evaluate")
    assert evaluate_run.data.metrics["neg_ln_ber_4dB"] == pytest.approx(summary["stages"]["evaluate"]["metrics"]["neg_ln_ber_4dB"])
    assert "ber_curves.png" in {a.path for a in client.list_artifacts(evaluate_run.info.run_id)}
    assert client.get_model_version_by_alias(f"eccflow-neural_bp-{CODE}", "candidate") is not None
