"""Real servers end to end: a throwaway PostgreSQL holds an Optuna study shared by two ``make study`` workers and
the store of an ``mlflow server``; a tiny ``make pipeline`` logs to that server and registers its decoder,
which ``mlflow models serve`` then decodes over HTTP. Every server started here is stopped here.

Run by ``make test-servers`` (a step of ``.ci/run``); skipped, with the reason, where PostgreSQL or psycopg
is missing.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import mlflow
import numpy as np
import optuna
import pytest
import torch
from mlflow.tracking import MlflowClient

from conftest import shrunk
from conftest_mlflow import free_port, running_mlflow_server, stop
from conftest_postgres import PostgresUnavailable, running_postgres

pytestmark = [pytest.mark.servers, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
CODE = "BCH_n15_k7"
STUDY = "ci-servers"
TRIALS_PER_WORKER = 2
MODEL = f"eccflow-neural_bp-{CODE}"


def _make(target: str, env: dict[str, str], *variables: str) -> subprocess.Popen:
    return subprocess.Popen(["make", "--no-print-directory", target, *variables], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finish(process: subprocess.Popen, what: str, timeout_s: float = 600) -> str:
    output, _ = process.communicate(timeout=timeout_s)
    assert process.returncode == 0, f"{what} failed (rc {process.returncode}):\n{output[-4000:]}"
    return output


def _served(url: str, process: subprocess.Popen, log: Path, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(f"{url}/ping", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"mlflow models serve did not answer at {url}:\n{log.read_text()[-3000:]}")
        time.sleep(0.5)


def _decode_over_http(url: str, llr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(bits, posterior LLRs) of the served model for channel LLRs (B, n)."""
    request = urllib.request.Request(f"{url}/invocations", data=json.dumps({"inputs": llr.tolist()}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        predictions = json.loads(response.read())["predictions"]
    return np.asarray(predictions["bits"], dtype=np.uint8), np.asarray(predictions["llr"], dtype=np.float32)


def test_study_workers_pipeline_and_model_serving_on_real_servers(tmp_path: Path) -> None:
    try:
        with running_postgres(("optuna", "mlflow")) as postgres:
            _on_servers(postgres, tmp_path)
    except PostgresUnavailable as reason:
        pytest.skip(f"no throwaway PostgreSQL here: {reason}")


def _on_servers(postgres, tmp_path: Path) -> None:
    storage = postgres.url("optuna")
    assert "'" in storage  # the password's quote reaches make and the shell unescaped
    with running_mlflow_server(tmp_path / "mlflow", backend_uri=postgres.url("mlflow")) as server:
        env = {**os.environ, "MLFLOW_TRACKING_URI": server.url, "ECCFLOW_HOME": str(tmp_path / "home"),
               "OMP_NUM_THREADS": "1"}
        study_overrides = shrunk("stages.train.study.eval.max_frames=1000", "stages.train.study.eval.batch_size=1000",
                                 evaluate=False)
        workers = [_make("study", env, "STAGE=train", f"CODE={CODE}", f"TRIALS={TRIALS_PER_WORKER}",
                         f"STORAGE={storage}", f"STUDY={STUDY}", f"OVERRIDES={' '.join(study_overrides)}")
                   for _ in range(2)]
        outputs = [_finish(worker, f"make study worker {i}") for i, worker in enumerate(workers)]
        assert all(postgres.url("optuna") not in out and "quotes" not in out for out in outputs)  # password masked
        trials = optuna.load_study(study_name=STUDY, storage=storage).trials
        assert len(trials) == 2 * TRIALS_PER_WORKER
        assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)

        client = MlflowClient(server.url)
        experiment = client.get_experiment_by_name("eccflow")
        study_runs = client.search_runs([experiment.experiment_id], f"tags.optuna_study = '{STUDY}'")
        assert sum("optuna_trial" in run.data.tags for run in study_runs) == 2 * TRIALS_PER_WORKER
        assert all(run.info.status == "FINISHED" for run in study_runs)

        _finish(_make("pipeline", env, f"CODE={CODE}", f"OVERRIDES={' '.join(shrunk())}"), "make pipeline")
        assert "champion" in client.get_registered_model(MODEL).aliases

        port = free_port()
        log = tmp_path / "serve.log"
        serve_env = {**env, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"}  # uvicorn
        with open(log, "wb") as out:
            serving = subprocess.Popen([sys.executable, "-m", "mlflow", "models", "serve", "-m", f"models:/{MODEL}@champion",
                                        "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)],
                                       cwd=tmp_path, env=serve_env, stdout=out, stderr=subprocess.STDOUT,
                                       start_new_session=True)
        try:
            url = f"http://127.0.0.1:{port}"
            _served(url, serving, log)
            llr = (2.0 + 2.0 * torch.randn(16, 15, generator=torch.Generator().manual_seed(0))).numpy()
            bits, posterior = _decode_over_http(url, llr)
        finally:
            stop(serving)
        previous = mlflow.get_tracking_uri()
        mlflow.set_tracking_uri(server.url)
        try:
            from eccflow.track import load_registered_decoder

            with torch.no_grad():
                ours = load_registered_decoder("neural_bp", CODE, alias="champion")(torch.from_numpy(llr))
        finally:
            mlflow.set_tracking_uri(previous)
        assert bits.shape == (16, 15) and np.array_equal(bits, ours.bits.numpy().astype(np.uint8))
        assert np.allclose(posterior, ours.llr.numpy(), rtol=1e-6, atol=1e-5)  # through JSON
