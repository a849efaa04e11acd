"""Scale-out: neural BP trained by ``eccflow.train.fit`` with Lightning DDP on 2 CPU processes (gloo).

The fit runs in ``tests/ddp_fit.py`` in a subprocess (Lightning's ``ddp`` launcher re-runs the script for
rank 1, which does not work from inside pytest). Checks: both ranks trained, on disjoint non-empty sets of
batches (streams seeded per rank), and the loggers hold one set of metric rows, written by rank 0: the
logged epoch training loss (not synced across ranks) is rank 0's mean loss, not rank 1's.
"""
from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

HELPER = Path(__file__).with_name("ddp_fit.py")


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ddp")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    for key in ("MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "RANK", "LOCAL_RANK", "NODE_RANK"):
        env.pop(key, None)  # a fresh 2-process group, whatever the calling shell had set
    proc = subprocess.run([sys.executable, str(HELPER), str(out)], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"DDP fit failed (rc={proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}"
    return out


def _lines(path: Path) -> list[str]:
    return path.read_text().split()


@pytest.mark.slow
def test_ddp_ranks_train_on_distinct_samples(ddp_run: Path) -> None:
    done = [json.loads((ddp_run / f"done_rank{r}.json").read_text()) for r in (0, 1)]
    assert [d["world_size"] for d in done] == [2, 2] and {d["strategy"] for d in done} == {"DDPStrategy"}
    rank0, rank1 = _lines(ddp_run / "batches_rank0.txt"), _lines(ddp_run / "batches_rank1.txt")
    assert len(rank0) == len(rank1) == 3  # data.batches_per_epoch per rank
    assert len(set(rank0)) == 3 and len(set(rank1)) == 3
    assert set(rank0).isdisjoint(rank1)
    assert (ddp_run / "fit_result.json").is_file() and (ddp_run / "run" / "model.ckpt").is_file()


@pytest.mark.slow
def test_ddp_metrics_logged_once_by_rank_zero(ddp_run: Path) -> None:
    losses = {r: [float(x) for x in _lines(ddp_run / f"losses_rank{r}.txt")] for r in (0, 1)}
    mean = {r: sum(v) / len(v) for r, v in losses.items()}
    assert not math.isclose(mean[0], mean[1], rel_tol=1e-6)  # the ranks' losses differ, so the check below means something

    versions = sorted((ddp_run / "csv").iterdir())
    assert [v.name for v in versions] == ["version_0"]  # one CSV log, not one per rank
    rows = list(csv.DictReader(open(versions[0] / "metrics.csv")))
    loss_rows = [r for r in rows if r.get("train/loss_epoch")]
    val_rows = [r for r in rows if r.get("val/nve")]
    assert len(loss_rows) == 1 and len(val_rows) == 1  # max_epochs=1: one row each, no duplicate from rank 1
    assert math.isclose(float(loss_rows[0]["train/loss_epoch"]), mean[0], rel_tol=1e-5)

    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{ddp_run}/mlflow.db")
    experiment = client.get_experiment_by_name("ddp")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1  # rank 1 never started a run
    history = client.get_metric_history(runs[0].info.run_id, "train/loss_epoch")
    assert len(history) == 1 and math.isclose(history[0].value, mean[0], rel_tol=1e-5)
    assert len(client.get_metric_history(runs[0].info.run_id, "val/nve")) == 1
