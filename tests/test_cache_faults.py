"""The stage cache verifies an entry before trusting it: a damaged entry is moved aside and rebuilt, and two
identical pipelines never build the same entry at once."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from eccflow.pipelines import run_pipeline
from conftest import TINY_BACKBONE, shrunk

ROOT = Path(__file__).resolve().parents[1]
CODE = "BCH_n15_k7"
TINY = shrunk()


def _train_entry(cache: Path) -> Path:
    (entry,) = [p for p in cache.glob("train-*") if ".damaged-" not in p.name]
    return entry


def _damage_truncated_model(entry: Path) -> None:
    model = Path(json.loads((entry / "DONE.json").read_text())["outputs"]["checkpoint"])
    model.write_bytes(model.read_bytes()[:100])


def _damage_truncated_marker(entry: Path) -> None:
    (entry / "DONE.json").write_text((entry / "DONE.json").read_text()[:40])


def _damage_deleted_model(entry: Path) -> None:
    Path(json.loads((entry / "DONE.json").read_text())["outputs"]["checkpoint"]).unlink()


@pytest.mark.slow
def test_a_damaged_entry_is_moved_aside_and_rebuilt(isolated_mlflow, tmp_path):
    """Three damages in turn on one store; after each the stage is rebuilt, not a repeated error."""
    cache = Path(os.environ["ECCFLOW_CACHE_DIR"])
    run_pipeline(CODE, "neural_bp", overrides=TINY, log=lambda _: None)
    damages = [(_damage_truncated_model, "does not match its recorded SHA-256"),
               (_damage_truncated_marker, "DONE.json is unreadable"), (_damage_deleted_model, "is missing")]
    for number, (damage, why) in enumerate(damages, start=1):
        damage(_train_entry(cache))
        lines: list[str] = []
        again = run_pipeline(CODE, "neural_bp", overrides=TINY, log=lines.append)
        assert again["stages"]["train"]["cached"] is False, why
        asides = sorted(cache.glob("train-*.damaged-*"), key=lambda p: p.stat().st_mtime)
        assert len(asides) == number and why in (asides[-1] / "DAMAGED.txt").read_text()
        assert any("moved to" in line for line in lines)
    third = run_pipeline(CODE, "neural_bp", overrides=TINY, log=lambda _: None)
    assert all(stage["cached"] for stage in third["stages"].values())


@pytest.mark.slow
def test_a_deleted_sap_library_is_rebuilt(isolated_mlflow, tiny_backbone, tmp_path):
    library = tmp_path / "sap"
    overrides = [*TINY_BACKBONE, f"stages.pretrained.weights={tiny_backbone}", f"stages.sap.library_dir={library}",
                 "stages.sap.calibration_frames=64", "stages.sap.calibration_ebn0_db=[5.0]", "data.val_frames=200"]
    run_pipeline(CODE, "sap_library", overrides=overrides, log=lambda _: None)
    (file,) = library.glob("*.json")
    file.unlink()
    again = run_pipeline(CODE, "sap_library", overrides=overrides, log=lambda _: None)
    assert again["stages"]["sap"]["cached"] is False and file.is_file()


@pytest.mark.slow
def test_two_identical_pipelines_build_each_entry_once(isolated_mlflow):
    command = [sys.executable, "-m", "eccflow.cli", "pipeline", "--code", CODE, "--pipeline", "neural_bp",
               *(a for o in TINY for a in ("--override", o))]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    workers = [subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
               for _ in range(2)]
    logs = [w.communicate(timeout=600)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], logs
    built = sum(log.count("[train] running in") for log in logs)
    reused = sum(log.count("[train] cached") for log in logs)
    assert (built, reused) == (1, 1), logs
    for log in logs:  # not a terminal: one line per epoch, no progress-bar redraws
        assert "\r" not in log
    assert any("[train] epoch 1/1, step 2" in log for log in logs)
