"""Optuna studies: search-space errors, pruning, Pareto fronts, best overrides, concurrent workers."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import mlflow
import optuna
import pytest
import torch
import yaml
from mlflow import MlflowClient

from eccflow.cli import build_parser
from eccflow.config import compose
from eccflow.errors import ConfigError
from eccflow.track import configure_mlflow
from eccflow.track.search_space import Objective, parse_objectives, parse_search_space
from eccflow.track.study import (
    PruningCallback,
    StudyPlan,
    open_storage,
    plan_study,
    report_study,
    run_study,
    write_best_overrides,
    write_pareto_front,
)
from conftest import shrunk

CODE = "BCH_n15_k7"
TINY = shrunk("data.batch_size=64", "stages.train.study.eval.max_frames=1000", "stages.train.study.eval.batch_size=1000")


@pytest.fixture(scope="module")
def config() -> dict:
    return compose(CODE, "neural_bp", "quick", TINY)


# ------------------------------------------------------------------------------------- search space
@pytest.mark.parametrize("entry, message", [
    ({"type": "uniform", "low": 0, "high": 1}, r"search_space\.lr: unknown type 'uniform'"),
    ({"type": "float", "low": 1e-4}, r"search_space\.lr: type float needs 'low' and 'high' \(missing 'high'\)"),
    ({"type": "float", "low": 1e-4, "high": 1e-2, "key": "stages.train.lrate"}, r"search_space\.lr: key 'stages\.train\.lrate' is not"),
    ({"type": "float", "low": 1e-4, "high": 1e-2, "key": "decoder"}, r"search_space\.lr: key 'decoder' is not a value"),
    ({"type": "float", "low": 0.0, "high": 1e-2, "log": True}, r"search_space\.lr: log: true needs low > 0"),
    ({"type": "float", "low": 0.1, "high": 0.01}, r"search_space\.lr: low must be below high"),
    ({"type": "int", "low": 1.5, "high": 4}, r"search_space\.lr: low must be an integer"),
    ({"type": "categorical", "choices": []}, r"search_space\.lr: categorical needs a non-empty 'choices'"),
    ({"type": "float", "low": 0.1, "high": 1, "size": 3}, r"search_space\.lr: unknown field\(s\) \['size'\]"),
    (0.01, r"search_space\.lr: expected a mapping"),
])
def test_search_space_errors_name_the_entry(config: dict, entry: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_search_space({"lr": entry}, "train", config)


def test_search_space_defaults_and_suggest(config: dict) -> None:
    space = {"lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
             "iters": {"type": "int", "low": 2, "high": 6, "key": "decoder.iterations"},
             "update": {"type": "categorical", "choices": ["sum-product", "min-sum"], "key": "decoder.check_update"}}
    params = parse_search_space(space, "train", config)
    assert [p.key for p in params] == ["stages.train.lr", "decoder.iterations", "decoder.check_update"]
    trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1)).ask()
    values = {p.key: p.suggest(trial) for p in params}
    assert 1e-4 <= values["stages.train.lr"] <= 1e-2 and values["decoder.iterations"] in range(2, 7)
    assert values["decoder.check_update"] in ("sum-product", "min-sum")
    with pytest.raises(ConfigError, match="same key"):
        parse_search_space({"lr": space["lr"], "b": {**space["lr"], "key": "stages.train.lr"}}, "train", config)


def test_objectives_and_plan(config: dict) -> None:
    assert parse_objectives(["neg_ln_ber_5dB", "decoder_flops"], "train", "objectives", "val/nve", [5.0]) == [
        Objective("neg_ln_ber_5dB", "maximize"), Objective("decoder_flops", "minimize")]
    with pytest.raises(ConfigError, match=r"needs Eb/N0 6 dB in stages\.train\.study\.eval\.ebn0_db"):
        parse_objectives(["neg_ln_ber_6dB"], "train", "objectives", "val/nve", [5.0])
    with pytest.raises(ConfigError, match="unknown metric 'accuracy'"):
        parse_objectives(["accuracy:maximize"], "train", "objectives", "val/nve", [5.0])
    with pytest.raises(ConfigError, match="cannot tell the direction of 'val/foo'"):
        parse_objectives(["val/foo"], "train", "objectives", "val/nve", [5.0])
    plan = plan_study(config, "train")
    # val/nve is minimised, -ln(BER) maximised: the pruner sees -nve.
    assert plan.pruner == "median" and plan.prune_metric == "val/nve" and plan.prune_sign == -1.0
    multi = plan_study(config, "train", multi_objective=True)
    assert multi.multi and multi.pruner == "none" and "cannot prune multi-objective" in multi.notes[0]
    with pytest.raises(ConfigError, match="cannot be tuned on its own"):
        plan_study(compose(CODE, "fecct", "quick"), "finetune")
    with pytest.raises(ConfigError, match="pruner must be median, hyperband or none"):
        plan_study(compose(CODE, "neural_bp", "quick", ["stages.train.study.pruner=asha"]), "train")


# --------------------------------------------------------------------------------------------- pruning
def _validation(cb: PruningCallback, epoch: int, value: float, sanity: bool = False) -> None:
    trainer = SimpleNamespace(sanity_checking=sanity, current_epoch=epoch, callback_metrics={cb.monitor: torch.tensor(value)})
    cb.on_validation_end(trainer, None)


def test_pruning_callback_prunes_a_clearly_bad_trial() -> None:
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=0))
    good = study.ask()
    cb = PruningCallback(good, "val/nve", sign=-1.0)  # NVE: lower is better, the study maximises
    _validation(cb, 0, 99.0, sanity=True)  # Lightning's sanity check is not reported
    for epoch, nve in enumerate([1.2, 1.0, 0.9]):
        _validation(cb, epoch, nve)
    study.tell(good, 5.0)
    assert study.trials[0].intermediate_values == pytest.approx({0: -1.2, 1: -1.0, 2: -0.9})
    fine = PruningCallback(study.ask(), "val/nve", sign=-1.0)
    _validation(fine, 0, 1.1)  # better than the median at epoch 0: goes on
    bad = PruningCallback(study.ask(), "val/nve", sign=-1.0)
    with pytest.raises(optuna.TrialPruned, match="pruned at epoch 0: val/nve = 40"):
        _validation(bad, 0, 40.0)
    with pytest.raises(ConfigError, match="pruning metric 'val/nve' was not logged"):
        bad.on_validation_end(SimpleNamespace(sanity_checking=False, current_epoch=1, callback_metrics={}), None)


def test_pruned_exception_leaves_lightning_fit(tmp_path: Path, config: dict) -> None:
    from eccflow.codes import get_code
    from eccflow.train import fit

    class AlwaysPrune:
        reported: list = []

        def report(self, value: float, step: int) -> None:
            self.reported.append((step, value))

        def should_prune(self) -> bool:
            return True

    trial = AlwaysPrune()
    with pytest.raises(optuna.TrialPruned):
        fit(get_code(CODE), config, tmp_path, callbacks=[PruningCallback(trial, "val/nve")], progress=False)
    assert [step for step, _ in trial.reported] == [0]


# ------------------------------------------------------------------------------------ reports, overrides
def _plan(objectives: list[Objective]) -> StudyPlan:
    return StudyPlan("train", [], objectives, "none", "val/nve", 1.0, {})


def _add(study: optuna.Study, values: list[float], lr: float) -> None:
    dist = {"lr": optuna.distributions.FloatDistribution(1e-4, 1e-1, log=True)}
    study.add_trial(optuna.trial.create_trial(params={"lr": lr}, distributions=dist, values=values,
                                              user_attrs={"overrides": {"stages.train.lr": lr}}))


def test_pareto_front_report(tmp_path: Path) -> None:
    objectives = [Objective("neg_ln_ber_5dB", "maximize"), Objective("decoder_flops", "minimize")]
    study = optuna.create_study(study_name="pareto", directions=["maximize", "minimize"])
    points = [([5.0, 100.0], 1e-3), ([6.0, 200.0], 2e-3), ([5.5, 300.0], 3e-3), ([7.0, 400.0], 4e-3), ([4.0, 150.0], 5e-3)]
    for values, lr in points:
        _add(study, values, lr)
    paths = write_pareto_front(study, objectives, tmp_path, [])
    front = json.loads(paths["json"].read_text())
    assert [f["trial"] for f in front["front"]] == [0, 1, 3]  # 2 and 4 are dominated
    assert front["front"][1] == {"trial": 1, "values": {"neg_ln_ber_5dB": 6.0, "decoder_flops": 200.0},
                                 "overrides": {"stages.train.lr": 2e-3}, "mlflow_run_id": None}
    assert paths["png"].stat().st_size > 1000 and "| 3 | COMPLETE | 7 | 400 | 0.004 |" in paths["md"].read_text()
    report = report_study(study, _plan(objectives), tmp_path)
    assert report["pareto_front"] == [0, 1, 3] and report["best_trial"] == 3  # best on the first objective
    assert yaml.safe_load(report["files"]["best_overrides"].read_text()) == {"stages.train.lr": 4e-3}


def test_best_overrides_round_trip_into_compose(tmp_path: Path) -> None:
    study = optuna.create_study(direction="maximize")
    dist = {"lr": optuna.distributions.FloatDistribution(1e-4, 1e-1, log=True),
            "w": optuna.distributions.FloatDistribution(0.5, 1.0)}
    study.add_trial(optuna.trial.create_trial(params={"lr": 1.234e-05 * 10, "w": 0.75}, distributions=dist, value=6.5,
                                              user_attrs={"overrides": {"stages.train.lr": 1.234e-04, "decoder.weight_init": 0.75}}))
    path = write_best_overrides(study.best_trial, tmp_path / "best_overrides.yaml", "s", [Objective("neg_ln_ber_5dB", "maximize")])
    assert path.read_text().startswith("# Study 's', trial 0 (neg_ln_ber_5dB = 6.5)")
    cfg = compose(CODE, "neural_bp", "quick", ["decoder.weight_init=0.9"], overrides_file=path)
    assert cfg["stages"]["train"]["lr"] == pytest.approx(1.234e-04)  # a float, not the string '1.234e-04'
    assert cfg["decoder"]["weight_init"] == 0.9  # --override wins over the file
    args = build_parser().parse_args(["pipeline", "--code", CODE, "--overrides-file", str(path)])
    assert args.overrides_file == str(path)
    bad = tmp_path / "bad.yaml"
    bad.write_text("stages.train.lrate: 0.1\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*unknown config key 'stages\.train\.lrate'"):
        compose(CODE, "neural_bp", "quick", overrides_file=bad)
    with pytest.raises(ConfigError, match="does not exist"):
        compose(CODE, "neural_bp", "quick", overrides_file=tmp_path / "missing.yaml")


def test_storage_errors() -> None:
    with pytest.raises(ConfigError, match="is not a database URL"):
        open_storage("not a url")
    with pytest.raises(ConfigError, match="trials must be a positive integer"):
        run_study(CODE, trials=0)


# ----------------------------------------------------------------------------------------- end to end
def _worker(tmp_path: Path, storage: str, trials: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "eccflow.cli", "study", "--stage", "train", "--code", CODE, "--trials", str(trials),
           "--storage", storage, "--study-name", "two-workers"]
    for o in [*TINY, "stages.train.study.pruner_startup_trials=1", "stages.train.study.pruner_warmup_epochs=0"]:
        cmd += ["--override", o]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlflow.db",
           "ECCFLOW_STUDY_DIR": str(tmp_path / "studies")}
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.mark.slow  # two fresh Python processes (imports ~8 s each on 2 cores), about 30 s
def test_two_workers_share_one_study(tmp_path: Path) -> None:
    storage, n_trials = f"sqlite:///{tmp_path}/optuna.db", 2
    workers = [_worker(tmp_path, storage, n_trials) for _ in range(2)]
    outputs = [w.communicate(timeout=240)[0] for w in workers]
    for worker, output in zip(workers, outputs):
        assert worker.returncode == 0, output[-3000:]
    assert sorted("(created)" in o for o in outputs) == [False, True]  # one worker created it, the other joined

    study = optuna.load_study(study_name="two-workers", storage=storage)
    trials = study.get_trials(deepcopy=False)
    assert sorted(t.number for t in trials) == list(range(2 * n_trials))  # every trial once, numbers unique
    assert all(t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED) for t in trials)

    configure_mlflow(f"sqlite:///{tmp_path}/mlflow.db")
    client = MlflowClient()
    experiment = client.get_experiment_by_name("eccflow").experiment_id
    parents = client.search_runs([experiment], filter_string="tags.optuna_study = 'two-workers' and tags.stage = 'study'")
    assert len(parents) == 1 and parents[0].info.run_id == study.user_attrs["mlflow_parent_run_id"]
    children = client.search_runs([experiment], filter_string=f"tags.mlflow.parentRunId = '{parents[0].info.run_id}'")
    assert sorted(int(r.data.tags["optuna_trial"]) for r in children) == list(range(2 * n_trials))  # one run per trial
    by_id = {r.info.run_id: r for r in children}
    for t in trials:
        run = by_id[t.user_attrs["mlflow_run_id"]]
        assert run.data.params["stages.train.lr"] == str(t.user_attrs["overrides"]["stages.train.lr"])
        if t.state == optuna.trial.TrialState.COMPLETE:
            assert run.data.metrics["neg_ln_ber_5dB"] == pytest.approx(t.value) and run.info.status == "FINISHED"
        else:
            assert run.data.tags["optuna_state"] == "PRUNED" and run.info.status == "KILLED"
    best = tmp_path / "studies" / "two-workers" / "best_overrides.yaml"
    cfg = compose(CODE, "neural_bp", "quick", overrides_file=best)
    assert cfg["stages"]["train"]["lr"] == pytest.approx(study.best_trial.user_attrs["overrides"]["stages.train.lr"])
    assert {"study/best_overrides.yaml", "study/study_report.md"} <= {
        f"study/{a.path.split('/')[-1]}" for a in client.list_artifacts(parents[0].info.run_id, "study")}


def test_multi_objective_study_in_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    lines: list[str] = []
    summary = run_study(CODE, trials=3, overrides=[*TINY, "stages.train.study.sampler_seed=0",
                                                   "stages.train.search_space={iters: {type: int, low: 2, high: 6, key: decoder.iterations}}"],
                        storage=f"sqlite:///{tmp_path}/optuna.db", multi_objective=True, study_dir=tmp_path / "studies",
                        log=lines.append)
    assert any("cannot prune multi-objective" in line for line in lines)
    assert summary.study_name.endswith("-pareto")
    files = summary.report["files"]
    assert {"json", "md", "png", "best_overrides", "report"} <= set(files)
    front = json.loads(files["json"].read_text())["front"]
    assert front and all(set(f["values"]) == {"neg_ln_ber_5dB", "decoder_flops"} for f in front)
    run = mlflow.get_run(summary.parent_run_id)
    assert json.loads(run.data.tags["pareto_front"]) == [f["trial"] for f in front]
    assert run.data.metrics["trials_complete"] == 3


@pytest.mark.slow
def test_a_killed_workers_trial_is_failed_retried_and_its_run_closed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A study worker killed with SIGKILL mid-trial: the next worker fails the silent trial (heartbeat), runs
    it again, and the dead trial's MLflow run ends KILLED."""
    import signal
    import time

    uri, storage = f"sqlite:///{tmp_path}/mlflow.db", f"sqlite:///{tmp_path}/optuna.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    slow = [*TINY, "trainer.max_epochs=500", "stages.train.study.heartbeat_s=1", "stages.train.study.pruner=none",
            "stages.train.study.sampler_seed=0"]
    command = [sys.executable, "-m", "eccflow.cli", "study", "--code", CODE, "--trials", "1", "--storage", storage,
               "--study-name", "dead-worker", *(a for o in slow for a in ("--override", o))]
    studies = tmp_path / "studies"
    worker = subprocess.Popen(command, env={**os.environ, "OMP_NUM_THREADS": "1", "ECCFLOW_STUDY_DIR": str(studies)},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and worker.poll() is None and not list(studies.glob("*/trials/0000/**/last.ckpt")):
        time.sleep(0.2)
    assert worker.poll() is None, "the worker finished (or failed) before it could be killed mid-trial"
    worker.send_signal(signal.SIGKILL)  # mid-training: its trial has written a checkpoint and has epochs to go
    worker.wait(timeout=30)
    time.sleep(3)  # longer than the grace period (2 heartbeats)
    summary = run_study(CODE, trials=1, overrides=[*TINY, "stages.train.study.heartbeat_s=1"], storage=storage,
                        study_name="dead-worker", study_dir=studies, log=lambda _: None)
    states = [t.state for t in optuna.load_study(study_name="dead-worker", storage=storage).get_trials()]
    assert states.count(optuna.trial.TrialState.FAIL) == 1 and optuna.trial.TrialState.RUNNING not in states
    assert states.count(optuna.trial.TrialState.COMPLETE) >= 1  # the retry (and this worker's own trial)
    client = MlflowClient()
    runs = client.search_runs([client.get_experiment_by_name("eccflow").experiment_id])
    assert not [r for r in runs if r.info.status == "RUNNING"]
    assert any(r.info.status == "KILLED" and "study start" in r.data.tags.get("eccflow.stale", "") for r in runs)
    assert summary.parent_run_id
