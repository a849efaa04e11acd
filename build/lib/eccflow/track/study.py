"""Optuna studies over a training stage, every trial tracked in MLflow.

``run_study`` composes the pipeline config, reads ``stages.<stage>.search_space`` and
``stages.<stage>.study`` and runs ``trials`` trials in this process against a shared storage (default
``sqlite:///<home>/mlruns/optuna.db``; any RDB URL, e.g. PostgreSQL, lets many workers on many machines
share one study). A trial trains with the sampled overrides, then measures its objective(s):
``neg_ln_ber_<x>dB`` / ``ber_<x>dB`` / ``fer_<x>dB`` from the Monte-Carlo evaluator at
``study.eval.ebn0_db`` (small frame budget), training metrics (``decoder_flops``, ``decoder_params``,
``best_val_nve``) or the last ``val/...`` value.

Pruning (single objective only): after each validation epoch :class:`PruningCallback` reports the
monitored metric (``stages.<stage>.monitor``, oriented to the study direction) to the median or
Hyperband pruner. Optuna cannot prune multi-objective studies, so it is switched off there.

MLflow: one parent run per study (created by the worker that creates the study, found by the others
through the study's ``mlflow_parent_run_id`` attribute), one nested run per trial with its sampled
params, training curves and objective metrics. Each worker, when done, writes under
``<study dir>/<study>/``: ``best_overrides.yaml`` (dotted keys -> values, for ``--overrides-file``),
``study_report.md``, and for multi-objective studies ``pareto_front.json`` / ``.md`` / ``.png``; all are
logged to the parent run.
"""
from __future__ import annotations

import fcntl
import json
import logging
import os
import random
import re
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import mlflow
import optuna
import yaml
from lightning.pytorch.callbacks import Callback
from mlflow.entities import Param

from eccflow.config import compose, deep_merge, nest_dotted
from eccflow.errors import ConfigError
from eccflow.files import atomic_path, atomic_write_text
from eccflow.home import store_dir
from eccflow.track.stale import OWNER_TAG, mark_stale_runs, owner
from eccflow.track.mlflow_tracking import (
    configure_mlflow,
    flatten_config,
    get_or_create_experiment,
    point_metrics,
    standard_tags,
)
from eccflow.track.search_space import Objective, SearchParam, infer_direction, parse_objectives, parse_search_space

TUNABLE_STAGES = ("train", "pretrain")  # stages that train without an input checkpoint
PARENT_ATTR = "mlflow_parent_run_id"
PARENT_WAIT_S = 60.0
OVERRIDES_ATTR = "overrides"


# ------------------------------------------------------------------------------------------- storage
def default_storage_url() -> str:
    """``sqlite:///<home>/mlruns/optuna.db`` (creates ``mlruns/``)."""
    return f"sqlite:///{store_dir() / 'optuna.db'}"


def default_study_dir() -> Path:
    """``$ECCFLOW_STUDY_DIR`` or ``<home>/mlruns/studies``."""
    if os.environ.get("ECCFLOW_STUDY_DIR"):
        return Path(os.environ["ECCFLOW_STUDY_DIR"])
    return store_dir("studies", create=False)


def redact_url(url: str) -> str:
    """The URL with any password replaced by ``***`` (for logs and tags)."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


def _sqlite_file(url: str) -> Path | None:
    path = url[len("sqlite:///"):].split("?", 1)[0] if url.startswith("sqlite:///") else ""
    return Path(path) if path and path != ":memory:" else None


@contextmanager
def creation_lock(url: str) -> Iterator[None]:
    """Exclusive lock (``<db>.init.lock``) while a SQLite database is opened: MLflow and Optuna create
    their tables on first use, and two workers doing it at once fail ("table ... already exists")."""
    database = _sqlite_file(url)
    if database is None:
        yield
        return
    database.parent.mkdir(parents=True, exist_ok=True)
    with open(database.with_name(database.name + ".init.lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def open_storage(url: str, heartbeat_s: float | None = None, retries: int = 0) -> optuna.storages.BaseStorage:
    """An Optuna RDB storage (tables created under :func:`creation_lock` for SQLite, retried otherwise).

    With ``heartbeat_s`` every running trial records a heartbeat; a trial silent for twice that (its worker
    was killed) is marked FAILED by the next worker that starts a trial, and run again up to ``retries`` times."""
    import sqlalchemy.exc

    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite:"):
        kwargs = {"connect_args": {"timeout": 60}}  # wait for the other workers' writes instead of failing
    last: Exception | None = None
    for attempt in range(8):
        try:
            with creation_lock(url):
                if heartbeat_s is None:
                    return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)
                return optuna.storages.RDBStorage(
                    url, engine_kwargs=kwargs, heartbeat_interval=max(1, round(heartbeat_s)),
                    grace_period=max(2, round(2 * heartbeat_s)),
                    heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=retries))
        except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.IntegrityError) as error:
            last = error
            time.sleep(0.3 * (attempt + 1) + random.random() * 0.3)
        except sqlalchemy.exc.ArgumentError as error:
            raise ConfigError(f"Optuna storage {redact_url(url)!r} is not a database URL ({error})") from None
        except ImportError as error:
            raise ConfigError(f"Optuna storage {redact_url(url)!r} needs a database driver: {error} "
                              "(PostgreSQL: pip install psycopg2-binary)") from None
    raise ConfigError(f"cannot open Optuna storage {redact_url(url)!r}: {last}")


# ------------------------------------------------------------------------------------------- pruning
class PruningCallback(Callback):
    """Reports ``monitor`` to an Optuna trial after each validation epoch; raises ``optuna.TrialPruned``
    when the pruner says so. ``sign`` is -1 when the metric's direction is the opposite of the study's
    (``val/nve`` is minimised, -ln(BER) maximised), so the pruner compares values the right way round.

    Single-process training only (under DDP use ``optuna_integration.PyTorchLightningPruningCallback``
    with an RDB storage and ``check_pruned()``).
    """

    def __init__(self, trial: optuna.trial.BaseTrial, monitor: str, sign: float = 1.0) -> None:
        super().__init__()
        self.trial, self.monitor, self.sign = trial, monitor, float(sign)

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        if getattr(trainer, "world_size", 1) > 1:
            raise ConfigError("Optuna pruning needs single-process training: set trainer.devices=1 "
                              "or stages.<stage>.study.pruner=none")

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        if trainer.sanity_checking:
            return
        value = trainer.callback_metrics.get(self.monitor)
        if value is None:
            raise ConfigError(f"pruning metric {self.monitor!r} was not logged; logged: {sorted(trainer.callback_metrics)}")
        epoch = int(trainer.current_epoch)
        self.trial.report(self.sign * float(value), step=epoch)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned at epoch {epoch}: {self.monitor} = {float(value):.4g}")


class ValidationRecorder(Callback):
    """Keeps the last value of every ``val/...`` metric (objectives may use them)."""

    def __init__(self) -> None:
        super().__init__()
        self.last: dict[str, float] = {}

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        if not trainer.sanity_checking:
            self.last.update({k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")})


# ---------------------------------------------------------------------------------------------- plan
@dataclass
class StudyPlan:
    """What a study of one stage does, checked before any work."""

    stage: str
    params: list[SearchParam]
    objectives: list[Objective]
    pruner: str                      # median | hyperband | none
    prune_metric: str
    prune_sign: float
    settings: dict[str, Any]
    notes: list[str] = field(default_factory=list)

    @property
    def multi(self) -> bool:
        return len(self.objectives) > 1

    @property
    def directions(self) -> list[str]:
        return [o.direction for o in self.objectives]

    @property
    def needs_evaluation(self) -> bool:
        return any(o.needs_evaluation for o in self.objectives)


def plan_study(config: Mapping[str, Any], stage: str = "train", multi_objective: bool = False) -> StudyPlan:
    """Search space, objectives and pruner of ``stages.<stage>`` in a resolved config (clear errors)."""
    if stage not in config["stages"]:
        raise ConfigError(f"stage {stage!r} is not in pipeline {config['pipeline']!r} (stages: {config['stage_order']})")
    if stage.split(":", 1)[0] not in TUNABLE_STAGES:
        raise ConfigError(f"stage {stage!r} cannot be tuned on its own (it needs an earlier stage's output); "
                          f"tunable: {list(TUNABLE_STAGES)}")
    st = config["stages"][stage]
    settings = st.get("study")
    if not isinstance(settings, Mapping):
        raise ConfigError(f"stages.{stage} has no 'study:' block (objectives, pruner, eval); see eccflow/conf/stages/train.yaml")
    if not isinstance(settings.get("eval"), Mapping) or "ebn0_db" not in settings["eval"]:
        raise ConfigError(f"stages.{stage}.study.eval must set ebn0_db, max_frames, min_frame_errors, batch_size, codewords")
    params = parse_search_space(st.get("search_space"), stage, config)
    field_name = "multi_objectives" if multi_objective else "objectives"
    objectives = parse_objectives(settings.get(field_name), stage, field_name, st["monitor"], settings["eval"]["ebn0_db"])
    notes = []
    pruner = str(settings.get("pruner") or "none").lower()
    if pruner not in ("median", "hyperband", "none"):
        raise ConfigError(f"stages.{stage}.study.pruner must be median, hyperband or none, got {settings.get('pruner')!r}")
    if len(objectives) > 1 and pruner != "none":
        notes.append(f"pruning ({pruner}) is off: Optuna cannot prune multi-objective studies "
                     "(intermediate values are single numbers); every trial trains to the end")
        pruner = "none"
    monitor, mode = st["monitor"], st["monitor_mode"]
    if settings.get("prune_metric") and settings["prune_metric"] != monitor:
        monitor = str(settings["prune_metric"])
        direction = infer_direction(monitor)
        if direction is None:
            raise ConfigError(f"stages.{stage}.study.prune_metric: cannot tell the direction of {monitor!r}; "
                              "use a val/neg_ln_ber_*, val/ber_*, val/fer_* or val/nve metric")
        mode = "max" if direction == "maximize" else "min"
    same = (mode == "max") == (objectives[0].direction == "maximize")
    if str(settings.get("sampler", "tpe")).lower() not in ("tpe", "random"):
        raise ConfigError(f"stages.{stage}.study.sampler must be tpe or random, got {settings.get('sampler')!r}")
    return StudyPlan(stage, params, objectives, pruner, monitor, 1.0 if same else -1.0, dict(settings), notes)


def make_pruner(plan: StudyPlan, max_epochs: int) -> optuna.pruners.BasePruner:
    """Median (after ``pruner_startup_trials`` trials and ``pruner_warmup_epochs`` epochs), Hyperband
    (resources = epochs) or none."""
    if plan.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=int(plan.settings.get("pruner_startup_trials", 3)),
                                           n_warmup_steps=int(plan.settings.get("pruner_warmup_epochs", 1)))
    if plan.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(int(max_epochs), 1), reduction_factor=3)
    return optuna.pruners.NopPruner()


def make_sampler(plan: StudyPlan) -> optuna.samplers.BaseSampler:
    seed = plan.settings.get("sampler_seed")
    if str(plan.settings.get("sampler", "tpe")).lower() == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def apply_values(config: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` with each dotted key of ``values`` set (keys must exist)."""
    out = dict(config)
    for key, value in values.items():
        out = deep_merge(out, nest_dotted(key, value), strict=True)
    return out


# ------------------------------------------------------------------------------------------ reporting

def trial_overrides(trial: optuna.trial.FrozenTrial, params: Sequence[SearchParam] = ()) -> dict[str, Any]:
    """Dotted config key -> value of a trial (recorded by the trial; else mapped from ``params``)."""
    if OVERRIDES_ATTR in trial.user_attrs:
        return dict(trial.user_attrs[OVERRIDES_ATTR])
    keys = {p.name: p.key for p in params}
    return {keys.get(name, name): value for name, value in trial.params.items()}


def write_best_overrides(trial: optuna.trial.FrozenTrial, path: str | Path, study_name: str,
                         objectives: Sequence[Objective], params: Sequence[SearchParam] = (), note: str = "") -> Path:
    """``best_overrides.yaml``: the trial's dotted keys -> values, for ``--overrides-file`` / ``compose()``."""
    values = ", ".join(f"{o.metric} = {v:.6g}" for o, v in zip(objectives, trial.values or []))
    header = (f"# Study {study_name!r}, trial {trial.number} ({values}){note}\n"
              f"# Use: eccflow pipeline --code CODE --overrides-file {path}   (make pipeline ... OVERRIDES_FILE=...)\n")
    return atomic_write_text(Path(path), header + yaml.safe_dump(trial_overrides(trial, params), sort_keys=True))


def _format(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def _rows(trials: Sequence[optuna.trial.FrozenTrial], objectives: Sequence[Objective],
          params: Sequence[SearchParam]) -> tuple[list[str], list[list[str]]]:
    keys = sorted({k for t in trials for k in trial_overrides(t, params)})
    header = ["trial", "state", *[f"{o.metric} ({o.direction[:3]})" for o in objectives], *keys]
    rows = []
    for t in trials:
        done = t.state == optuna.trial.TrialState.COMPLETE  # a pruned trial's value is its last intermediate one
        values = [_format(float(v)) for v in t.values] if done and t.values else ["-"] * len(objectives)
        over = trial_overrides(t, params)
        rows.append([str(t.number), t.state.name, *values, *[_format(over.get(k, "")) for k in keys]])
    return header, rows


def markdown_rows(header: Sequence[str], rows: Sequence[Sequence[str]], title: str = "") -> str:
    """A markdown table (with an optional ``### title``)."""
    lines = [f"### {title}", ""] if title else []
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def plot_pareto_front(study: optuna.Study, objectives: Sequence[Objective], path: str | Path) -> Path:
    """Scatter of the completed trials on the first two objectives, the Pareto front highlighted."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    front = sorted(study.best_trials, key=lambda t: t.values[0])
    fig, ax = plt.subplots(figsize=(6, 4.5))
    ax.scatter([t.values[0] for t in done], [t.values[1] for t in done], c="0.7", s=18, label="trials")
    ax.plot([t.values[0] for t in front], [t.values[1] for t in front], "o--", c="tab:red", ms=6, label="Pareto front")
    for t in front:
        ax.annotate(str(t.number), (t.values[0], t.values[1]), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.set_xlabel(f"{objectives[0].metric} ({objectives[0].direction})")
    ax.set_ylabel(f"{objectives[1].metric} ({objectives[1].direction})")
    ax.set_title(f"{study.study_name}: {len(front)} of {len(done)} trials on the front", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
    return Path(path)


def write_pareto_front(study: optuna.Study, objectives: Sequence[Objective], out_dir: str | Path,
                       params: Sequence[SearchParam] = ()) -> dict[str, Path]:
    """``pareto_front.json`` / ``.md`` / ``.png`` of a multi-objective study; returns the paths."""
    out = Path(out_dir)
    front = sorted(study.best_trials, key=lambda t: t.number)
    payload = {
        "study": study.study_name,
        "objectives": [{"metric": o.metric, "direction": o.direction} for o in objectives],
        "complete_trials": len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))),
        "front": [{"trial": t.number, "values": dict(zip((o.metric for o in objectives), t.values)),
                   "overrides": trial_overrides(t, params), "mlflow_run_id": t.user_attrs.get("mlflow_run_id")}
                  for t in front],
    }
    paths = {"json": atomic_write_text(out / "pareto_front.json", json.dumps(payload, indent=2, default=str)),
             "md": atomic_write_text(out / "pareto_front.md",
                                 markdown_rows(*_rows(front, objectives, params), title=f"Pareto front of {study.study_name}"))}
    if len(objectives) >= 2 and front:
        paths["png"] = plot_pareto_front(study, objectives, out / "pareto_front.png")
    return paths


def report_study(study: optuna.Study, plan: StudyPlan, out_dir: str | Path) -> dict[str, Any]:
    """Write the study's report files (best overrides, trials table, Pareto front); returns a summary."""
    out = Path(out_dir)
    trials = study.get_trials(deepcopy=False)
    states = {s.name.lower(): sum(t.state == s for t in trials) for s in optuna.trial.TrialState}
    summary: dict[str, Any] = {"study": study.study_name, "trials": len(trials),
                               **{k: v for k, v in states.items() if v}, "files": {}}
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not complete:
        summary["table"] = "no completed trial yet"
        return summary
    if plan.multi:
        front = sorted(study.best_trials, key=lambda t: t.number)
        summary["files"].update(write_pareto_front(study, plan.objectives, out, plan.params))
        sign = 1.0 if plan.objectives[0].direction == "minimize" else -1.0
        best = min(front, key=lambda t: sign * t.values[0])
        note = f"; of the Pareto front, the best on {plan.objectives[0].metric} (see pareto_front.md for the others)"
        summary["pareto_front"] = [t.number for t in front]
        table = markdown_rows(*_rows(front, plan.objectives, plan.params), title=f"Pareto front ({len(front)} trials)")
    else:
        best, note = study.best_trial, ""
        ranked = sorted(complete, key=lambda t: t.value if plan.directions[0] == "minimize" else -t.value)[:10]
        table = markdown_rows(*_rows(ranked, plan.objectives, plan.params), title="Best trials")
    summary["best_trial"] = best.number
    summary["best_values"] = dict(zip((o.metric for o in plan.objectives), best.values))
    summary["best_overrides"] = trial_overrides(best, plan.params)
    summary["files"]["best_overrides"] = write_best_overrides(best, out / "best_overrides.yaml", study.study_name,
                                                              plan.objectives, plan.params, note)
    everything = markdown_rows(*_rows(trials, plan.objectives, plan.params), title=f"All trials of {study.study_name}")
    summary["files"]["report"] = atomic_write_text(out / "study_report.md", table + "\n" + everything)
    summary["table"] = table
    return summary


# ----------------------------------------------------------------------------------------------- run
def _create_or_load(name: str, storage: optuna.storages.BaseStorage, plan: StudyPlan,
                    sampler: optuna.samplers.BaseSampler, pruner: optuna.pruners.BasePruner) -> tuple[optuna.Study, bool]:
    """The study, and whether this worker created it (creation is atomic: exactly one worker wins)."""
    try:
        return optuna.create_study(study_name=name, storage=storage, directions=plan.directions,
                                   sampler=sampler, pruner=pruner, load_if_exists=False), True
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(study_name=name, storage=storage, sampler=sampler, pruner=pruner)
    have = [d.name.lower() for d in study.directions]
    if have != plan.directions:
        raise ConfigError(f"study {name!r} already exists with directions {have}, not {plan.directions} "
                          f"({[o.metric for o in plan.objectives]}): pass another --study-name")
    return study, False


def _parent_run(study: optuna.Study, created: bool, experiment_id: str, config: Mapping[str, Any],
                tags: Mapping[str, str], settings: Mapping[str, Any], log: Callable[[str], None]) -> str:
    """Id of the study's MLflow parent run: made by the creating worker, awaited by the others."""
    if not created:
        deadline = time.monotonic() + PARENT_WAIT_S
        while True:
            run_id = study.user_attrs.get(PARENT_ATTR)
            if run_id:
                return run_id
            if time.monotonic() > deadline:
                log(f"study {study.study_name!r} records no MLflow parent run (its creator stopped early?); creating one")
                break
            time.sleep(0.5)
    client = mlflow.MlflowClient()
    run = client.create_run(experiment_id, run_name=f"study:{study.study_name}", tags={**tags, OWNER_TAG: owner()})
    params = {**flatten_config(config), **{f"study.{k}": v for k, v in settings.items()}}
    items = [Param(k, str(v)) for k, v in params.items()]
    for start in range(0, len(items), 100):
        client.log_batch(run.info.run_id, params=items[start:start + 100])
    client.log_text(run.info.run_id, yaml.safe_dump(dict(config), sort_keys=False), "config.yaml")
    study.set_user_attr(PARENT_ATTR, run.info.run_id)
    return run.info.run_id


@dataclass
class _TrialObjective:
    """Everything a trial needs besides the sampled values."""

    config: dict[str, Any]
    plan: StudyPlan
    study_dir: Path
    tracking_uri: str
    experiment_id: str
    tags: dict[str, str]
    log: Callable[[str], None]

    def __call__(self, trial: optuna.Trial) -> float | list[float]:
        from lightning.pytorch.loggers import MLFlowLogger

        values = {p.key: p.suggest(trial) for p in self.plan.params}
        trial.set_user_attr(OVERRIDES_ATTR, values)
        cfg = apply_values(self.config, values)
        trial_dir = self.study_dir / "trials" / f"{trial.number:04d}"
        shutil.rmtree(trial_dir, ignore_errors=True)  # never resume another study's leftovers
        tags = {**self.tags, "stage": self.plan.stage, "optuna_trial": str(trial.number)}
        tags[OWNER_TAG] = owner()  # a killed worker leaves it RUNNING: the next worker's start ends it KILLED
        run = mlflow.start_run(experiment_id=self.experiment_id, run_name=f"trial-{trial.number}", nested=True, tags=tags)
        trial.set_user_attr("mlflow_run_id", run.info.run_id)
        status = "FAILED"
        try:
            mlflow.log_params({k: str(v) for k, v in values.items()} | {"optuna_trial": trial.number})
            mlflow.log_text(yaml.safe_dump(cfg, sort_keys=False), "config.yaml")
            metrics = self._train_and_measure(trial, cfg, trial_dir, MLFlowLogger(
                tracking_uri=self.tracking_uri, run_id=run.info.run_id, log_model=False))
            result = [metrics[o.metric] for o in self.plan.objectives]
            mlflow.log_metrics(metrics)
            mlflow.set_tag("optuna_state", "COMPLETE")
            self.log(f"trial {trial.number}: " + ", ".join(f"{o.metric} = {v:.4g}" for o, v in zip(self.plan.objectives, result))
                     + "  " + ", ".join(f"{k}={_format(v)}" for k, v in values.items()))
            status = "FINISHED"
            return result if self.plan.multi else result[0]
        except optuna.TrialPruned as pruned:
            mlflow.set_tags({"optuna_state": "PRUNED", "pruned": str(pruned)})
            self.log(f"trial {trial.number}: {pruned}")
            status = "KILLED"
            raise
        finally:
            shutil.rmtree(trial_dir / "checkpoints", ignore_errors=True)  # keep model.ckpt only
            if trial_dir.is_dir() and not any(trial_dir.iterdir()):
                trial_dir.rmdir()
            mlflow.end_run(status)

    def _train_and_measure(self, trial: optuna.Trial, cfg: dict[str, Any], trial_dir: Path, logger: Any) -> dict[str, float]:
        from eccflow.codes import get_code
        from eccflow.eval import evaluate as monte_carlo
        from eccflow.lit import load_decoder
        from eccflow.train import fit

        stage_cfg = cfg["stages"][self.plan.stage]
        code = get_code(cfg["code"])
        fit_code = get_code(stage_cfg["codes"][0]) if stage_cfg.get("codes") else code
        recorder = ValidationRecorder()
        callbacks: list[Callback] = [recorder]
        if self.plan.pruner != "none":
            callbacks.append(PruningCallback(trial, self.plan.prune_metric, self.plan.prune_sign))
        model, metrics = fit(fit_code, cfg, trial_dir, logger=logger, callbacks=callbacks, progress=False,
                             stage=self.plan.stage)
        metrics = {**metrics, **recorder.last}
        if "decoder_flops" not in metrics:  # older fit(): FLOPs unknown, parameters stand in
            metrics["decoder_flops"] = metrics["decoder_params"]
        if self.plan.needs_evaluation:
            ev = self.plan.settings["eval"]
            results = monte_carlo(load_decoder(model, code=code), code, ev["ebn0_db"], min_frame_errors=ev["min_frame_errors"],
                                  max_frames=ev["max_frames"], batch_size=ev["batch_size"], seed=cfg["seed"],
                                  codewords=ev["codewords"], progress=False)
            metrics.update(point_metrics(results))
        missing = [o.metric for o in self.plan.objectives if o.metric not in metrics]
        if missing:
            raise ConfigError(f"objective(s) {missing} were not produced; available: {sorted(metrics)}")
        return metrics


@dataclass
class StudySummary:
    """What :func:`run_study` did and where its report lies."""

    study_name: str
    storage: str
    parent_run_id: str
    out_dir: Path
    report: dict[str, Any]
    notes: list[str]


def default_study_name(config: Mapping[str, Any], stage: str, multi: bool) -> str:
    return f"{config['pipeline']}-{stage}-{config['code']}-{config['profile']}" + ("-pareto" if multi else "")


def run_study(
    code: str,
    stage: str = "train",
    trials: int = 20,
    *,
    pipeline: str = "neural_bp",
    profile: str = "quick",
    overrides: Sequence[str] = (),
    overrides_file: str | Path | None = None,
    storage: str | None = None,
    study_name: str | None = None,
    multi_objective: bool = False,
    study_dir: str | Path | None = None,
    tracking_uri: str | None = None,
    log: Callable[[str], None] = print,
) -> StudySummary:
    """Run ``trials`` trials of the study on ``stage`` in this process (other workers may share it)."""
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise ConfigError(f"trials must be a positive integer, got {trials!r}")
    config = compose(code, pipeline, profile, list(overrides), overrides_file)
    plan = plan_study(config, stage, multi_objective)
    heartbeat, retries = plan.settings.get("heartbeat_s", 60), plan.settings.get("retries", 1)
    if isinstance(heartbeat, bool) or not isinstance(heartbeat, (int, float)) or not heartbeat > 0:
        raise ConfigError(f"stages.{stage}.study.heartbeat_s must be a positive number of seconds, got {heartbeat!r}")
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ConfigError(f"stages.{stage}.study.retries must be an integer >= 0, got {retries!r}")
    for note in plan.notes:
        log(f"note: {note}")
    name = study_name or default_study_name(config, stage, plan.multi)
    url = storage or default_storage_url()
    out_dir = Path(study_dir) if study_dir is not None else default_study_dir()
    out_dir = out_dir / re.sub(r"[^\w.-]+", "_", name)
    uri = configure_mlflow(tracking_uri)
    with creation_lock(uri):
        experiment_id = get_or_create_experiment(config["tracking"]["experiment"])
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    st = config["stages"][stage]
    max_epochs = int(st.get("max_epochs") or config["trainer"]["max_epochs"])
    for run_id in mark_stale_runs("study start"):
        log(f"marked run {run_id} KILLED: its process (a study worker) was killed without closing it")
    study, created = _create_or_load(name, open_storage(url, heartbeat, retries), plan, make_sampler(plan),
                                     make_pruner(plan, max_epochs))
    tags = {**standard_tags(code=config["code"], family=config["decoder"].get("family", ""), stage="study",
                            profile=profile),
            "pipeline": pipeline, "optuna_study": name, "optuna_storage": redact_url(url)}
    parent_id = _parent_run(study, created, experiment_id, config, tags, plan.settings, log)
    log(f"study {name!r} ({'created' if created else 'joined'}) in {redact_url(url)}: {trials} trial(s) here, "
        f"objectives {[f'{o.metric}:{o.direction}' for o in plan.objectives]}, pruner {plan.pruner}; "
        f"MLflow parent run {parent_id}")
    objective = _TrialObjective(config, plan, out_dir, uri, experiment_id, tags, log)
    quiet = logging.getLogger("lightning.pytorch")  # no per-trial "GPU available" banners
    level = quiet.level
    quiet.setLevel(logging.WARNING)
    try:
        with mlflow.start_run(run_id=parent_id):
            study.optimize(objective, n_trials=trials, gc_after_trial=True)
            report = _log_report(study, plan, out_dir)
    finally:
        quiet.setLevel(level)
    log(report["table"])
    if "best_overrides" in report["files"]:
        log(f"best overrides: {report['files']['best_overrides']}")
    return StudySummary(name, redact_url(url), parent_id, out_dir, report, plan.notes)


def _log_report(study: optuna.Study, plan: StudyPlan, out_dir: Path) -> dict[str, Any]:
    """Write the report files and log them, the trial counts and the best values to the active parent run."""
    report = report_study(study, plan, out_dir)
    for path in report["files"].values():
        mlflow.log_artifact(str(path), artifact_path="study")
    counts = {f"trials_{k}": float(report[k]) for k in ("complete", "pruned", "fail") if k in report}
    mlflow.log_metrics({"trials": float(report["trials"]), **counts})
    if "best_trial" in report:
        mlflow.log_metrics({f"best_{k.replace('/', '_')}": float(v) for k, v in report["best_values"].items()})
        mlflow.set_tags({"best_trial": str(report["best_trial"]),
                         **({"pareto_front": json.dumps(report["pareto_front"])} if plan.multi else {})})
    return report
