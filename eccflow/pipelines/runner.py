"""The pipeline runner: composes stages into a DAG with cached, resumable stages, tracked in MLflow.

A pipeline (``eccflow/conf/pipelines/<name>.yaml``) lists stages in order; each stage consumes the outputs of
the stages before it. A stage's outputs are cached under ``<cache root>/<stage>-<key>/`` where the key
hashes (stage name, stage config, shared config, input artifact hashes, eccflow version). A finished
stage writes ``DONE.json`` atomically (outputs + metrics); re-running finds it and skips the work. A
stage killed mid-way leaves its checkpoints in the same folder and resumes from them on the next run.
Every invocation is one MLflow parent run with one nested run per stage (cached ones tagged
``cache=hit`` and carrying the cached metrics).
"""
from __future__ import annotations

import fcntl
import json
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from eccflow import __version__
from eccflow.codes import Code, get_code
from eccflow.config import compose, config_hash, file_sha256
from eccflow.errors import ConfigError
from eccflow.files import atomic_write_text
from eccflow.home import store_dir

SHARED_KEYS = ("code", "seed", "data", "decoder", "trainer")
TUNING_KEYS = ("search_space", "study")  # Optuna settings of a stage: not part of its cache key


@dataclass
class StageContext:
    """What a stage function receives."""

    name: str
    config: dict[str, Any]
    code: Code
    inputs: dict[str, str]
    out_dir: Path
    run_id: str
    tracking_uri: str
    log: Callable[[str], None] = print

    @property
    def stage_config(self) -> dict[str, Any]:
        return self.config["stages"][self.name]


@dataclass
class StageResult:
    outputs: dict[str, str] = field(default_factory=dict)  # artifact name -> file path ("report": shown on cache hits)
    metrics: dict[str, float] = field(default_factory=dict)
    state: dict[str, str] = field(default_factory=dict)  # files the stage keeps outside its folder (not inputs of later stages)


StageFn = Callable[[StageContext], StageResult]
StageCheck = Callable[[str, dict[str, Any]], None]  # (stage label, whole config)
StageKey = Callable[[str, dict[str, Any]], dict[str, str]]
STAGES: dict[str, StageFn] = {}
CHECKS: dict[str, StageCheck] = {}  # settings checks run before any stage of the pipeline does work
KEY_PARTS: dict[str, StageKey] = {}  # what a stage reads from outside the pipeline (file digests), part of its key
CODE_INDEPENDENT: set[str] = set()  # stages whose output does not depend on CODE (cached across codes)


def stage(name: str, code_independent: bool = False, check: StageCheck | None = None,
          key: StageKey | None = None) -> Callable[[StageFn], StageFn]:
    """Register a stage function under ``name``; a pipeline may list it as ``name`` or ``name:label``.
    ``check(label, config)`` raises a ConfigError on bad settings, before the pipeline starts;
    ``key(label, config)`` names the digests of files the stage reads from outside the pipeline (its cache key)."""

    def wrap(fn: StageFn) -> StageFn:
        STAGES[name] = fn
        if code_independent:
            CODE_INDEPENDENT.add(name)
        if check is not None:
            CHECKS[name] = check
        if key is not None:
            KEY_PARTS[name] = key
        return fn

    return wrap


def stage_function(name: str) -> str:
    """``evaluate:zeroshot`` -> ``evaluate`` (the function and the YAML file of a labelled stage)."""
    return name.split(":", 1)[0]


def _load_stages() -> None:
    import eccflow.pipelines.stages  # noqa: F401  (registers the stage functions)


def default_cache_root() -> Path:
    """``$ECCFLOW_CACHE_DIR`` or ``<home>/mlruns/cache``."""
    chosen = os.environ.get("ECCFLOW_CACHE_DIR", "").strip()
    return Path(chosen) if chosen else store_dir("cache", create=False)


def file_digest(path: str | Path) -> str:
    return file_sha256(path)[:16]


def stage_key(name: str, config: dict[str, Any], inputs: dict[str, str]) -> str:
    """Cache key of a stage: its config, the shared config, its inputs' content, the package version."""
    keys = [k for k in SHARED_KEYS if not (k == "code" and stage_function(name) in CODE_INDEPENDENT)]
    shared = {k: config.get(k) for k in keys}
    stage_cfg = {k: v for k, v in config["stages"][name].items() if k not in TUNING_KEYS and k != "after"}  # inputs carry it
    digests = {k: file_digest(v) for k, v in sorted(inputs.items())}
    if stage_function(name) in KEY_PARTS:
        digests.update(KEY_PARTS[stage_function(name)](name, config))
    return config_hash(name, stage_cfg, shared, digests, __version__)


def _output_files(outputs: dict[str, Any]) -> dict[str, Path]:
    """The outputs that name files (absolute paths)."""
    return {k: Path(v) for k, v in outputs.items() if isinstance(v, str) and Path(v).is_absolute()}


DONE = "DONE.json"  # a cache entry's marker: written last, so an entry without it is unfinished


def _write_done(out_dir: Path, result: StageResult, key: str, run_id: str) -> None:
    """The entry's marker: outputs, metrics and the SHA-256 of every output file inside the entry's folder."""
    checksums = {k: file_sha256(f) for k, f in _output_files(result.outputs).items()
                 if f.is_file() and f.resolve().is_relative_to(out_dir.resolve())}
    atomic_write_text(out_dir / DONE, json.dumps({"key": key, "run_id": run_id, "outputs": result.outputs, "metrics": result.metrics,
                                        "state": result.state, "checksums": checksums,
                                        "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}, indent=2))


def verified_entry(out_dir: Path, log: Callable[[str], None]) -> dict[str, Any] | None:
    """The finished entry's marker if the entry is whole, else ``None`` (the stage runs).

    Whole: ``DONE.json`` parses, every output file exists (state a stage keeps outside its folder, such as the
    SAP library, included) and the files inside the folder match their recorded SHA-256. A damaged entry is moved
    aside (``<folder>.damaged-<time>``, with ``DAMAGED.txt`` saying why) so the stage rebuilds it."""
    done_file = out_dir / DONE
    if not done_file.is_file():
        return None
    try:
        done = json.loads(done_file.read_text())
        outputs, checksums = done["outputs"], done.get("checksums", {})
        done["metrics"], done["run_id"]
    except (json.JSONDecodeError, KeyError, TypeError):
        return _set_aside(out_dir, "DONE.json is unreadable (truncated or edited)", log)
    for name, path in {**_output_files(outputs), **_output_files(done.get("state") or {})}.items():
        if not path.exists():
            return _set_aside(out_dir, f"output {name!r} ({path}) is missing", log)
        if name in checksums and (not path.is_file() or file_sha256(path) != checksums[name]):
            return _set_aside(out_dir, f"output {name!r} ({path}) does not match its recorded SHA-256", log)
    return done


def _set_aside(out_dir: Path, why: str, log: Callable[[str], None]) -> None:
    stamp = f"{time.strftime('%Y%m%dT%H%M%S')}.{time.time_ns() // 1000 % 1_000_000:06d}"
    aside = out_dir.with_name(f"{out_dir.name}.damaged-{stamp}")
    out_dir.rename(aside)
    (aside / "DAMAGED.txt").write_text(f"{why}; moved aside by eccflow at {time.strftime('%Y-%m-%dT%H:%M:%S')}; "
                                       "the stage was run again in the original folder\n")
    out_dir.mkdir()
    log(f"cache entry {out_dir.name} is damaged ({why}): moved to {aside.name}, running the stage again")
    return None


@contextmanager
def entry_lock(out_dir: Path, log: Callable[[str], None]) -> Iterator[None]:
    """One process builds a cache entry at a time: a second identical pipeline waits here, then reuses the
    entry (the lock dies with its process, so a kill never leaves it held)."""
    with open(out_dir / ".lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"[{out_dir.name}] another process is building this entry: waiting for it")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def run_pipeline(
    code: str,
    pipeline: str = "neural_bp",
    profile: str = "quick",
    overrides: list[str] | tuple[str, ...] = (),
    cache_root: str | Path | None = None,
    tracking_uri: str | None = None,
    log: Callable[[str], None] = print,
    overrides_file: str | Path | None = None,
) -> dict[str, Any]:
    """Run ``pipeline`` on ``code``; returns {stage: {"outputs", "metrics", "cached"}} and the parent run id.

    ``overrides_file`` (e.g. a study's ``best_overrides.yaml``) is applied before ``overrides``.
    """
    import mlflow

    from eccflow.track import configure_mlflow, get_or_create_experiment, log_config, pipeline_run, stage_run, standard_tags
    from eccflow.track.stale import mark_stale_runs

    from eccflow.train import check_trainer, optimizer_settings

    _load_stages()
    config = compose(code, pipeline, profile, overrides, overrides_file)  # every config error surfaces here, before any work
    unknown = [s for s in config["stage_order"] if stage_function(s) not in STAGES]
    if unknown:
        raise ConfigError(f"pipeline {pipeline!r} lists unknown stages {unknown}; implemented: {sorted(STAGES)}")
    for name in config["stage_order"]:
        if stage_function(name) in CHECKS:
            CHECKS[stage_function(name)](name, config)
    check_trainer(config)
    for name in config["stage_order"]:  # the optimiser blocks (learning rate, recipe, warm-up) of the training stages
        if "adam" in config["stages"][name]:
            optimizer_settings(config, name)
    code_obj = get_code(config["code"])
    pipeline, profile = config["pipeline"], config["profile"]  # a user's file goes by its stem
    cache = Path(cache_root) if cache_root is not None else default_cache_root()
    uri = configure_mlflow(tracking_uri)
    for run_id in mark_stale_runs("pipeline start"):
        log(f"marked run {run_id} KILLED: its process was killed without closing it")
    experiment = config["tracking"]["experiment"]
    get_or_create_experiment(experiment)
    summary: dict[str, Any] = {"stages": {}}
    tags = standard_tags(code=code_obj.name, family=config["decoder"].get("family", ""), stage="pipeline", profile=profile)
    with pipeline_run(experiment, run_name=f"{pipeline}:{code_obj.name}", tags={**tags, "pipeline": pipeline}) as parent:
        summary["parent_run_id"] = parent.info.run_id
        log_config(config)
        inputs: dict[str, str] = {}
        after_stage: dict[str, dict[str, str]] = {}  # the inputs as they stood after each stage (branches)
        for name in config["stage_order"]:
            if config["stages"][name]["after"] is not None:
                inputs = dict(after_stage[config["stages"][name]["after"]])
            key = stage_key(name, config, inputs)
            out_dir = cache / f"{name.replace(':', '_')}-{key}"
            out_dir.mkdir(parents=True, exist_ok=True)
            stage_tags = {**tags, "stage": name, "cache_key": key}
            with entry_lock(out_dir, log), stage_run(name, tags=stage_tags) as run:
                done = verified_entry(out_dir, log) if config["cache"]["enabled"] else None
                if done is not None:
                    result = StageResult(outputs=done["outputs"], metrics=done["metrics"])
                    mlflow.set_tags({"cache": "hit", "cached_from_run": done["run_id"]})
                    if result.metrics:
                        mlflow.log_metrics(result.metrics)
                    log(f"[{name}] cached ({out_dir.name}), skipped")
                    if "report" in result.outputs and Path(result.outputs["report"]).is_file():
                        log(Path(result.outputs["report"]).read_text())
                    cached = True
                else:
                    mlflow.set_tag("cache", "miss")
                    log(f"[{name}] running in {out_dir}")
                    context = StageContext(name, config, code_obj, dict(inputs), out_dir, run.info.run_id, uri, log)
                    result = STAGES[stage_function(name)](context)
                    _write_done(out_dir, result, key, run.info.run_id)
                    cached = False
            inputs.update(result.outputs)
            after_stage[name] = dict(inputs)
            summary["stages"][name] = {"outputs": result.outputs, "metrics": result.metrics, "cached": cached}
    return summary
