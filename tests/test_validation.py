"""Bad input is rejected before any work: one clear line, exit code 2, no traceback, nothing in the store."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient

from eccflow.cli import main
from eccflow.config import compose
from eccflow.errors import ConfigError
from conftest import shrunk

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("override, message", [
    ("stages.train.lr=abc", "stages.train.lr must be a number"),
    ("seed=abc", "seed must be an integer"),
    ("trainer.max_epochs=abc", "trainer.max_epochs must be an integer"),
    ("data.batch_size=.nan", "data.batch_size must be a finite number"),
    ("stages.train.lr=.inf", "stages.train.lr must be a finite number"),
    ("stages.train.lr={a: 1}", "stages.train.lr must be a number"),
    ("trainer.max_epochs=0", "trainer.max_epochs must be a positive integer"),
    ("trainer.max_epochs=-1", "trainer.max_epochs must be a positive integer"),
    ("data.batch_size=2.5", "data.batch_size must be an integer"),
    ("trainer.max_epochs=1.5", "trainer.max_epochs must be an integer"),
    ("cache.enabled=maybe", "cache.enabled must be true or false"),
    ("stages.evaluate.baselines=bp:5", "stages.evaluate.baselines must be a list"),
    ("data.val_ebn0_db=[]", "data.val_ebn0_db is an empty list"),
    ("stages.evaluate.ebn0_db=[]", "stages.evaluate.ebn0_db is an empty list"),
    ("stages.evaluate.ebn0_db=[4.0, 1e9]", r"Eb/N0 values must be numbers of dB in \[-30, 50\]"),
    ("stages.evaluate.ebn0_db=[4.0, 5.0]", "champion_metric=neg_ln_ber_6dB is measured at 6 dB"),
    ("stages.evaluate.ebn0_db=[4, 5", "not valid YAML"),
])
def test_bad_overrides_are_errors_when_the_config_is_composed(override, message):
    with pytest.raises(ConfigError, match=message):
        compose("BCH_n31_k16", "neural_bp", "quick", [override])


def test_good_overrides_still_compose():
    config = compose("BCH_n31_k16", "neural_bp", "quick", [
        "stages.train.lr=1", "stages.evaluate.ebn0_db=[4.0, 5.0]", "tracking.champion_metric=neg_ln_ber_5dB",
        "trainer.compile=inductor", "stages.train.recipe={lr: 0.01, batch: 128, max_batch: 512, power: 0.5}",
        "stages.train.lr=null"])
    assert config["trainer"]["compile"] == "inductor" and config["stages"]["train"]["lr"] is None


def test_a_bad_override_leaves_no_run_in_the_store(isolated_mlflow, capsys):
    code = main(["pipeline", "--code", "BCH_n31_k16", "--override", "stages.train.lr=abc"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err and "stages.train.lr" in err
    client = MlflowClient()
    assert not [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]


@pytest.mark.parametrize("arguments, message", [
    (["--ebn0", "1e9"], "Eb/N0 values must be numbers of dB"),
    (["--ebn0=-1e9"], "Eb/N0 values must be numbers of dB"),
    (["--ebn0", "4", "--device", "cuda:7"], "device 'cuda:7'"),
    (["--ebn0", "4", "--device", "tpu"], "device 'tpu'"),
    (["--ebn0", "4", "--threads", "-2"], "--threads must be"),
    (["--ebn0", "4", "--max-frames", "0"], "--max-frames must be a positive integer"),
    (["--ebn0", "4", "--json", "/proc/nope/x.json"], "--json /proc/nope/x.json: cannot write there"),
    (["--ebn0", "4", "--decoder", "minsum", "--normalization", "nan"], "normalization must be a finite positive"),
    (["--ebn0", "4", "--decoder", "minsum", "--normalization", "-1"], "normalization must be a finite positive"),
    (["--ebn0", "4", "--decoder", "minsum", "--normalization", "0"], "normalization must be a finite positive"),
    (["--ebn0", "4", "--decoder", "minsum", "--offset", "nan"], "offset must be a finite number"),
])
def test_bad_eval_arguments_are_one_line_errors_before_any_frame(arguments, message, capsys, monkeypatch):
    import eccflow.eval

    monkeypatch.setattr(eccflow.eval, "evaluate_paired", lambda *a, **k: pytest.fail("decoding started"))
    decoder = [] if "--decoder" in arguments else ["--decoder", "bp:5"]
    assert main(["eval", "--code", "BCH_n31_k16", *decoder, "--max-frames", "100", *arguments]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_a_binary_file_is_not_a_code(tmp_path, capsys):
    path = tmp_path / "H.txt"
    path.write_bytes(bytes(range(256)) * 8)
    assert main(["codes", "show", str(path)]) == 2
    assert "not a text file" in capsys.readouterr().err


def test_make_passes_overrides_with_spaces_and_storage_with_quotes(tmp_path):
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "eccflow").write_text(f"#!{sys.executable}\nimport json, sys\nprint(json.dumps(sys.argv[1:]))\n")
    (venv / "bin" / "eccflow").chmod(0o755)
    (venv / ".installed").touch()
    os.utime(venv / ".installed", (4102444800, 4102444800))  # newer than pyproject.toml: no install
    def make(*arguments: str) -> list[str]:
        done = subprocess.run(["make", "-s", *arguments, f"VENV={venv}"], cwd=ROOT, capture_output=True, text=True, check=True)
        return json.loads(done.stdout.strip().splitlines()[-1])

    argv = make("pipeline", "CODE=BCH_n31_k16", "OVERRIDES=trainer.max_epochs=2 stages.evaluate.ebn0_db=[4.0, 5.0]")
    from eccflow.cli import build_parser, overrides_of

    assert overrides_of(build_parser().parse_args(argv)) == ["trainer.max_epochs=2", "stages.evaluate.ebn0_db=[4.0, 5.0]"]
    argv = make("study", "CODE=BCH_n31_k16", "STORAGE=postgresql://user:p'w\"d@host/db")
    assert argv[argv.index("--storage") + 1] == "postgresql://user:p'w\"d@host/db"


def test_runs_of_a_killed_process_are_ended_killed_by_the_next_pipeline_or_doctor(isolated_mlflow, capsys):
    """A pipeline killed with SIGKILL leaves its parent and stage runs RUNNING; the next start ends them."""
    import signal

    from eccflow.track.stale import STALE_TAG

    script = ("from eccflow.track import configure_mlflow, pipeline_run, stage_run\n"
              "import time\nconfigure_mlflow()\n"
              "with pipeline_run('eccflow', 'killed:BCH_n15_k7'):\n"
              "    with stage_run('train'):\n"
              "        print('running', flush=True); time.sleep(120)\n")
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert child.stdout.readline().strip() == "running"
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    client = MlflowClient()
    experiment = client.get_experiment_by_name("eccflow").experiment_id
    runs = client.search_runs([experiment])
    assert len(runs) == 2 and {r.info.status for r in runs} == {"RUNNING"}
    assert main(["doctor"]) == 0
    assert "2 run(s) left RUNNING by a killed process" in capsys.readouterr().out
    runs = client.search_runs([experiment])
    assert {r.info.status for r in runs} == {"KILLED"} and all("found by eccflow doctor" in r.data.tags[STALE_TAG] for r in runs)
    assert main(["doctor"]) == 0 and "0 run(s)" in capsys.readouterr().out  # a live or finished run is left alone


def test_eval_into_a_log_prints_one_line_per_point(tmp_path):
    done = subprocess.run([sys.executable, "-m", "eccflow.cli", "eval", "--code", "BCH_n15_k7", "--decoder", "bp:5",
                           "--ebn0", "4", "5", "--max-frames", "2000", "--json", str(tmp_path / "r.json")],
                          cwd=ROOT, capture_output=True, text=True, check=True)
    assert "\r" not in done.stderr
    assert [line.split(":")[0] for line in done.stderr.splitlines() if " dB: " in line] == ["BCH_n15_k7 4 dB", "BCH_n15_k7 5 dB"]


@pytest.mark.parametrize("override, message", [("trainer.precision=16-mixed", "float16 needs loss scaling"),
                                               ("trainer.precision=half", "is not one of"),
                                               ("trainer.accelerator=gpu", "no CUDA GPU is visible")])
def test_trainer_settings_this_machine_cannot_run_are_errors_before_training(override, message):
    import torch

    from eccflow.train import check_trainer

    if override.endswith("gpu") and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ConfigError, match=message):
        check_trainer(compose("BCH_n15_k7", "neural_bp", "quick", [override]))


def test_a_full_disk_is_one_line_and_leaves_the_store_consistent(isolated_mlflow, capsys, monkeypatch):
    """The disk fills while a stage writes its cache marker: one line, exit 2, every run closed (FAILED), and
    the next run (disk freed) builds the stage instead of trusting a half-made entry."""
    import errno

    import eccflow.pipelines.runner as runner

    def full(path, text):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    arguments = ["pipeline", "--code", "BCH_n15_k7", *(a for o in shrunk() for a in ("--override", o))]
    written = runner.atomic_write_text
    monkeypatch.setattr(runner, "atomic_write_text", full)
    assert main(arguments) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("eccflow: error:")]
    assert len(errors) == 1 and "No space left on device" in errors[0] and "Traceback" not in err
    client = MlflowClient()
    runs = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
    assert runs and all(r.info.status == "FAILED" for r in runs)
    monkeypatch.setattr(runner, "atomic_write_text", written)  # the disk is freed
    assert main(arguments) == 0
    assert "train: ran" in capsys.readouterr().out
