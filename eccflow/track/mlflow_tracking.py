"""MLflow side of experiment tracking: store location, metric names, configs, runs and the model registry.

Store: ``$MLFLOW_TRACKING_URI`` or the embedded SQLite database ``<home>/mlruns/mlflow.db`` (:mod:`eccflow.home`). With a SQLite
store, experiments created here keep their artifacts in ``artifacts/`` beside the database file (so
``<home>/mlruns/artifacts`` for the default store); a tracking server decides for itself.

Runs: one parent run per pipeline invocation (:func:`pipeline_run`), one nested run per stage
(:func:`stage_run`), both tagged with :func:`standard_tags`.

Registry: :func:`register_checkpoint` logs a checkpoint as a pyfunc MLflow Model named
``eccflow-<family>-<code>``, moves the ``candidate`` alias to it and the ``champion`` alias only when it
beats the current champion; :func:`load_registered_decoder` gives the torch module back.
"""
from __future__ import annotations

import fcntl
import json
import math
import os
import posixpath
import re
import subprocess
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import mlflow
import mlflow.artifacts
import mlflow.pyfunc
import numpy as np
import torch
import yaml
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.models import Model, ModelSignature
from mlflow.types import Schema, TensorSpec
from torch import nn

from eccflow.decoders.base import bits_and_llr
from eccflow.errors import ConfigError
from eccflow.home import PACKAGE_DIR, store_dir
from eccflow.track.stale import OWNER_TAG, owner

NEG_LN_BER_CAP = 50.0
"""Logged in place of -ln(BER) = +inf (no bit error observed): MLflow refuses non-finite values, and a
finite stand-in keeps the metric present for comparisons and champion selection. 50 is BER ~ 2e-22, far
beyond any Monte-Carlo run; ``ber_<x>dB`` = 0 tells a capped value from a measured one."""

CANDIDATE_ALIAS = "candidate"
CHAMPION_ALIAS = "champion"
# The MLflow 3 UI opens an experiment on its GenAI overview unless it is marked as model training.
EXPERIMENT_KIND_TAG, EXPERIMENT_KIND = "mlflow.experimentKind", "custom_model_development"
STANDARD_TAG_KEYS = ("code", "family", "stage", "profile", "git_commit")

# MLflow 3.17 limits: parameter value length, key length, params per batch call.
_MAX_PARAM_VALUE_LENGTH = 6000
_MAX_KEY_LENGTH = 250
_MAX_PARAMS_PER_BATCH = 100
_KEY_PATTERN = re.compile(r"^[\w./ -]+$")  # what MLflow accepts on every OS (no colon)
_MODEL_NAME_PATTERN = re.compile(r"^[A-Za-z0-9_.-]+$")
_CHECKPOINT_ARTIFACT = "checkpoint"


# ----------------------------------------------------------------------------------------------- store
def default_tracking_uri() -> str:
    """``$MLFLOW_TRACKING_URI`` if set, else ``sqlite:///<home>/mlruns/mlflow.db`` (creates ``mlruns/``)."""
    from_env = os.environ.get("MLFLOW_TRACKING_URI", "").strip()
    if from_env:
        return from_env
    return f"sqlite:///{store_dir() / 'mlflow.db'}"


def _sqlite_path(uri: str) -> Path | None:
    """Database file of a ``sqlite:///`` URI (absolute when the URI has four slashes), else ``None``."""
    if not uri.startswith("sqlite:///"):
        return None
    path = uri[len("sqlite:///"):].split("?", 1)[0]
    return None if path in ("", ":memory:") else Path(path).resolve()


def configure_mlflow(uri: str | None = None) -> str:
    """Point MLflow's tracking and registry at ``uri`` (default: :func:`default_tracking_uri`); returns it.

    MLflow also exports it as ``$MLFLOW_TRACKING_URI``, so subprocesses started afterwards inherit it.
    """
    if uri is None:
        uri = default_tracking_uri()
    if not isinstance(uri, str) or not uri.strip():
        raise ConfigError(f"the MLflow tracking URI must be a non-empty string, got {uri!r}")
    uri = uri.strip()
    database = _sqlite_path(uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    if database is not None:
        database.parent.mkdir(parents=True, exist_ok=True)
        # A new SQLite store creates its tables on first use; two processes doing that at once collide
        # ("table ... already exists"), so the first use happens under a lock beside the database.
        with open(database.with_name(f".{database.name}.lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                MlflowClient(uri).search_experiments(max_results=1)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
    return uri


def _check_name(kind: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{kind} must be a non-empty string, got {value!r}")
    return value


def get_or_create_experiment(name: str) -> str:
    """Id of the experiment called ``name``, created (or restored from deletion) when needed."""
    _check_name("experiment name", name)
    client = MlflowClient()
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        if experiment.lifecycle_stage == "deleted":
            client.restore_experiment(experiment.experiment_id)
        if experiment.tags.get(EXPERIMENT_KIND_TAG) != EXPERIMENT_KIND:
            client.set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
        return experiment.experiment_id
    database = _sqlite_path(mlflow.get_tracking_uri())
    location = None
    if database is not None:
        location = (database.parent / "artifacts" / re.sub(r"[^\w.-]+", "_", name)).as_uri()
    try:
        return client.create_experiment(name, artifact_location=location, tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND})
    except MlflowException as error:  # another process created it in between
        if error.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
        return client.get_experiment_by_name(name).experiment_id


# --------------------------------------------------------------------------------------------- metrics
def _check_key(kind: str, key: str) -> str:
    if len(key) > _MAX_KEY_LENGTH:
        raise ConfigError(f"{kind} {key[:40]!r}... is {len(key)} characters; MLflow allows {_MAX_KEY_LENGTH}")
    if not _KEY_PATTERN.match(key) or posixpath.normpath(key) != key:
        raise ConfigError(
            f"{kind} {key!r} is not a valid MLflow key: use letters, digits, '_', '-', '.', ' ' and '/', "
            "without empty, '.' or '..' path parts"
        )
    return key


def point_metrics(results: Sequence[Any], prefix: str = "") -> dict[str, float]:
    """``{prefix}neg_ln_ber_<x>dB``, ``{prefix}ber_<x>dB``, ``{prefix}fer_<x>dB`` for each Eb/N0 x (``:g``).

    ``results`` holds objects with ``ebn0_db, ber, fer, neg_ln_ber`` (e.g. ``PointResult``). An infinite
    -ln(BER) (zero bit errors) is logged as :data:`NEG_LN_BER_CAP`.
    """
    if not isinstance(prefix, str):
        raise ConfigError(f"metric prefix must be a string, got {prefix!r}")
    metrics: dict[str, float] = {}
    for result in results:
        try:
            ebn0, ber, fer, neg_ln_ber = (float(getattr(result, a)) for a in ("ebn0_db", "ber", "fer", "neg_ln_ber"))
        except (AttributeError, TypeError, ValueError):
            raise ConfigError(f"expected a result with numeric ebn0_db, ber, fer, neg_ln_ber, got {result!r}") from None
        if not math.isfinite(ebn0):
            raise ConfigError(f"Eb/N0 must be finite, got {ebn0}")
        for label, rate in (("BER", ber), ("FER", fer)):
            if not 0.0 <= rate <= 1.0:
                raise ConfigError(f"{label} at {ebn0:g} dB must lie in [0, 1], got {rate}")
        if math.isnan(neg_ln_ber) or neg_ln_ber < 0:
            raise ConfigError(f"-ln(BER) at {ebn0:g} dB must be >= 0, got {neg_ln_ber}")
        point = {
            f"{prefix}neg_ln_ber_{ebn0:g}dB": min(neg_ln_ber, NEG_LN_BER_CAP),
            f"{prefix}ber_{ebn0:g}dB": ber,
            f"{prefix}fer_{ebn0:g}dB": fer,
        }
        for key in point:
            if key in metrics:
                raise ConfigError(f"Eb/N0 {ebn0:g} dB appears twice in the results")
            _check_key("metric name", key)
        metrics.update(point)
    return metrics


def paired_metrics(differences: Sequence[Any], prefixes: Mapping[str, str]) -> dict[str, float]:
    """Metrics of decoder-vs-baseline differences: ``vs_<p>d_neg_ln_ber_<x>dB`` with ``..._lo`` / ``..._hi``,
    ``vs_<p>d_fer_<x>dB`` likewise, and ``vs_<p>ber_verdict_<x>dB`` / ``vs_<p>fer_verdict_<x>dB`` (+1 better,
    -1 worse, 0 not resolved), where ``<p>`` is ``prefixes[baseline label]`` (e.g. ``bp50_``). Undefined
    differences (a decoder without bit errors) are left out; their verdict is 0."""
    from eccflow.eval.intervals import Verdict

    metrics: dict[str, float] = {}
    for d in differences:
        head, x = f"vs_{prefixes[d.baseline]}", f"{d.ebn0_db:g}dB"
        for name, value, (lo, hi) in (("d_neg_ln_ber", d.d_neg_ln_ber, d.d_neg_ln_ber_ci95), ("d_fer", d.d_fer, d.d_fer_ci95)):
            if math.isfinite(value) and math.isfinite(lo) and math.isfinite(hi):
                metrics.update({f"{head}{name}_{x}": value, f"{head}{name}_lo_{x}": lo, f"{head}{name}_hi_{x}": hi})
        metrics[f"{head}ber_verdict_{x}"] = Verdict.sign(d.ber_verdict)
        metrics[f"{head}fer_verdict_{x}"] = Verdict.sign(d.fer_verdict)
    for key in metrics:
        _check_key("metric name", key)
    return metrics


# ---------------------------------------------------------------------------------------------- config
def _param_value(value: Any) -> str:
    if isinstance(value, str):
        text = value
    elif isinstance(value, (list, tuple)):
        text = json.dumps(list(value), default=str)
    elif value is None or isinstance(value, (bool, int, float)):
        text = json.dumps(value)
    else:
        text = str(value)
    if len(text) > _MAX_PARAM_VALUE_LENGTH:
        text = text[: _MAX_PARAM_VALUE_LENGTH - 3] + "..."
    return text


def flatten_config(cfg: Mapping[str, Any]) -> dict[str, str]:
    """Dotted keys -> string values: lists as JSON, None/bool/numbers as JSON scalars, long values cut
    to MLflow's 6000 characters (ending in ``...``); an empty mapping becomes ``"{}"``; ``:`` in a
    key (a labelled stage) becomes ``/``."""
    if not isinstance(cfg, Mapping):
        raise ConfigError(f"a config must be a mapping, got {type(cfg).__name__}")
    flat: dict[str, str] = {}

    def walk(node: Mapping[Any, Any], prefix: str) -> None:
        for key, value in node.items():
            name = str(key).replace(":", "/")  # labelled stage instances: "evaluate:zeroshot" -> "evaluate/zeroshot"
            if not name:
                raise ConfigError(f"empty key in the config under {prefix.rstrip('.') or 'the top level'!r}")
            dotted = prefix + name
            if isinstance(value, Mapping) and value:
                walk(value, dotted + ".")
            else:
                flat[_check_key("config key", dotted)] = "{}" if isinstance(value, Mapping) else _param_value(value)

    walk(cfg, "")
    return flat


def _active_run(purpose: str) -> mlflow.ActiveRun:
    run = mlflow.active_run()
    if run is None:
        raise ConfigError(f"{purpose} needs an active MLflow run: call it inside pipeline_run()/stage_run()")
    return run


def log_config(cfg: Mapping[str, Any], artifact_name: str = "config.yaml") -> dict[str, str]:
    """Log ``cfg`` to the active run: flattened params (<= 100 per call) and a YAML artifact.

    Returns the flattened params.
    """
    _active_run("log_config")
    _check_name("artifact name", artifact_name)
    if Path(artifact_name).is_absolute() or ".." in Path(artifact_name).parts:
        raise ConfigError(f"artifact name must be a relative path inside the run, got {artifact_name!r}")
    flat = flatten_config(cfg)
    try:
        text = yaml.safe_dump(dict(cfg), sort_keys=False)
    except yaml.YAMLError as error:
        raise ConfigError(f"the config holds a value YAML cannot represent: {error}") from None
    items = list(flat.items())
    for start in range(0, len(items), _MAX_PARAMS_PER_BATCH):
        try:
            mlflow.log_params(dict(items[start : start + _MAX_PARAMS_PER_BATCH]))
        except MlflowException as error:
            if error.error_code != "INVALID_PARAMETER_VALUE":
                raise
            raise ConfigError(f"MLflow refused the config params (a param cannot change within a run): {error.message}") from None
    mlflow.log_text(text, artifact_name)
    return flat


# ------------------------------------------------------------------------------------------------ runs
def git_commit(directory: str | Path | None = None) -> str:
    """``git rev-parse HEAD`` in ``directory`` (default: the package's folder), or ``"unknown"`` outside git."""
    where = Path(directory) if directory is not None else PACKAGE_DIR
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else "unknown"


def standard_tags(code: str, family: str, stage: str, profile: str) -> dict[str, str]:
    """Tags every run carries: ``code``, ``family``, ``stage``, ``profile``, ``git_commit``."""
    values = {"code": code, "family": family, "stage": stage, "profile": profile}
    for key, value in values.items():
        _check_name(key, value)
    return {**values, "git_commit": git_commit()}


def _check_tags(tags: Mapping[str, Any] | None) -> dict[str, str]:
    if tags is None:
        return {}
    if not isinstance(tags, Mapping):
        raise ConfigError(f"tags must be a mapping of names to values, got {type(tags).__name__}")
    return {_check_key("tag name", str(key)): str(value) for key, value in tags.items()}


@contextmanager
def pipeline_run(experiment: str, run_name: str, tags: Mapping[str, Any] | None = None) -> Iterator[mlflow.ActiveRun]:
    """Top-level run for one pipeline invocation in ``experiment`` (created if needed).

    The run ends FAILED when the block raises, FINISHED otherwise.
    """
    _check_name("run name", run_name)
    run_tags = _check_tags(tags)
    active = mlflow.active_run()
    if active is not None:
        raise ConfigError(f"run {active.info.run_id} is still active: a pipeline run must be top-level (use stage_run)")
    experiment_id = get_or_create_experiment(experiment)
    run_tags[OWNER_TAG] = owner()  # a kill leaves it RUNNING: eccflow.track.stale finds it by this
    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=run_tags) as run:
        yield run


@contextmanager
def stage_run(stage_name: str, tags: Mapping[str, Any] | None = None) -> Iterator[mlflow.ActiveRun]:
    """Nested run for one stage under the active run, in the same experiment.

    It inherits the parent's standard tags; ``tags`` override them and ``stage`` is ``stage_name``.
    """
    _check_name("stage name", stage_name)
    extra = _check_tags(tags)
    parent = _active_run("stage_run")
    parent_tags = MlflowClient().get_run(parent.info.run_id).data.tags
    inherited = {key: parent_tags[key] for key in STANDARD_TAG_KEYS if key in parent_tags}
    run_tags = {**inherited, **extra, "stage": stage_name, OWNER_TAG: owner()}
    with mlflow.start_run(
        experiment_id=parent.info.experiment_id, run_name=stage_name, nested=True, tags=run_tags
    ) as run:
        yield run


# -------------------------------------------------------------------------------------------- registry
def registered_model_name(family: str, code: str) -> str:
    """``eccflow-<family lower-case>-<code>``; letters, digits, '-', '_' and '.' only."""
    name = f"eccflow-{_check_name('family', family).strip().lower()}-{_check_name('code', code).strip()}"
    if not _MODEL_NAME_PATTERN.match(name):
        raise ConfigError(f"registered model name {name!r} may only hold letters, digits, '-', '_' and '.'")
    return name


LOADERS = frozenset({"eccflow.lit:load_decoder", "eccflow.lit.checkpoint:load_decoder"})  # the same function


def resolve_loader(loader: str) -> Callable[[Path], nn.Module]:
    """The function that turns a checkpoint path into a decoder: one of eccflow's own (:data:`LOADERS`), never
    an import string taken from the store (whoever can register a model would run code on every reader)."""
    if loader not in LOADERS:
        raise ConfigError(f"loader {loader!r} is not one of eccflow's own {sorted(LOADERS)}; a registered model "
                          "may not name other code")
    from eccflow.lit.checkpoint import load_decoder

    return load_decoder


def _load_decoder(loader: str, checkpoint: Path) -> nn.Module:
    decoder = resolve_loader(loader)(checkpoint)
    if not isinstance(decoder, nn.Module):
        raise ConfigError(f"loader {loader!r} returned {type(decoder).__name__}, expected a torch.nn.Module")
    return decoder.eval()


class CheckpointDecoderModel(mlflow.pyfunc.PythonModel):
    """pyfunc wrapper: a checkpoint artifact plus the loader recorded in the model config.

    ``predict`` takes channel LLRs (B, n) (positive means bit 0) and returns ``{"bits": (B, n) uint8,
    "llr": (B, n) float32}``: the hard decisions and the decoder's posterior LLRs (same sign convention).
    """

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        self.checkpoint_path = Path(context.artifacts[_CHECKPOINT_ARTIFACT])
        self.decoder = _load_decoder(context.model_config["loader"], self.checkpoint_path)

    def predict(self, context: mlflow.pyfunc.PythonModelContext, model_input: np.ndarray,
                params: dict | None = None) -> dict[str, np.ndarray]:
        llr = torch.as_tensor(np.asarray(model_input, dtype=np.float32))
        if llr.ndim != 2:
            raise ConfigError(f"expected LLRs of shape (batch, n), got shape {tuple(llr.shape)}")
        with torch.no_grad():
            bits, posterior = bits_and_llr(self.decoder(llr))
        return {"bits": bits.to(torch.uint8).cpu().numpy(), "llr": posterior.to(torch.float32).cpu().numpy()}


PYFUNC_CODE = Path(__file__).with_name("pyfunc_model.py")


def _checkpoint_code(checkpoint: Path) -> str | None:
    """The code a decoder checkpoint names, or ``None`` when it does not say."""
    from eccflow.errors import EccflowError
    from eccflow.lit.base import read_checkpoint

    try:
        code = read_checkpoint(checkpoint)["hyper_parameters"]["code"]
    except (EccflowError, KeyError, TypeError):
        return None
    return code if isinstance(code, str) else None


def load_checkpoint_length(checkpoint: Path) -> int | None:
    """Code length n of a decoder checkpoint (for the signature), or ``None`` when it does not say."""
    from eccflow.codes import get_code
    from eccflow.errors import EccflowError

    code = _checkpoint_code(checkpoint)
    try:
        return None if code is None else get_code(code).n
    except EccflowError:
        return None


def decoder_signature(n: int | None) -> ModelSignature:
    """Channel LLRs (B, n) float32 in (positive means bit 0); out, hard decisions ``bits`` (B, n) uint8 and
    posterior ``llr`` (B, n) float32."""
    width = -1 if n is None else n
    return ModelSignature(inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, width))]),
                          outputs=Schema([TensorSpec(np.dtype(np.uint8), (-1, width), "bits"),
                                          TensorSpec(np.dtype(np.float32), (-1, width), "llr")]))


def _pip_requirements() -> list[str]:
    return [
        f"mlflow=={mlflow.__version__}",
        f"torch=={torch.__version__.split('+')[0]}",
        f"numpy=={np.__version__}",
    ]


@dataclass(frozen=True)
class RegisteredDecoder:
    """A registered model version and what registration did with the aliases."""

    name: str
    version: str
    run_id: str
    model_uri: str
    champion: bool


def _check_metrics(metrics: Mapping[str, Any], champion_metric: str) -> dict[str, float]:
    if not isinstance(metrics, Mapping) or not metrics:
        raise ConfigError(f"metrics must be a non-empty mapping of names to numbers, got {metrics!r}")
    checked = {}
    for key, value in metrics.items():
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"metric {key!r} must be a number, got {value!r}") from None
        if not math.isfinite(number):
            raise ConfigError(f"metric {key!r} must be finite, got {value!r}")
        checked[_check_key("metric name", str(key))] = number
    if champion_metric not in checked:
        raise ConfigError(f"champion metric {champion_metric!r} is not among the metrics {sorted(checked)}")
    return checked


def _beats(client: MlflowClient, name: str, value: float, metric: str, higher_is_better: bool) -> bool:
    """Whether ``value`` beats the champion's ``metric`` (no champion, or one without it: yes)."""
    champion_version = client.get_registered_model(name).aliases.get(CHAMPION_ALIAS)
    if champion_version is None:
        return True
    champion = client.get_model_version(name, champion_version)
    best = client.get_run(champion.run_id).data.metrics.get(metric)
    if best is None:
        return True
    return value > best if higher_is_better else value < best


def register_checkpoint(
    checkpoint_path: str | Path,
    family: str,
    code: str,
    metrics: Mapping[str, float],
    champion_metric: str,
    higher_is_better: bool = True,
    *,
    loader: str,
) -> RegisteredDecoder:
    """Log ``metrics`` and the checkpoint (as a pyfunc model) to the active run and register it.

    The new version gets alias ``candidate``; it takes ``champion`` only when its ``champion_metric``
    strictly beats the champion's value in the champion's source run (the first version always does).
    ``loader`` ("module:function") turns the checkpoint path into the decoder module when loading.
    """
    checkpoint = Path(checkpoint_path)
    if not checkpoint.is_file():
        raise ConfigError(f"checkpoint {str(checkpoint)!r} is not a file")
    name = registered_model_name(family, code)
    checked = _check_metrics(metrics, champion_metric)
    resolve_loader(loader)
    run = _active_run("register_checkpoint")
    mlflow.log_metrics(checked)
    info = mlflow.pyfunc.log_model(
        name="decoder",
        python_model=str(PYFUNC_CODE),  # models-from-code: loading runs our file, nothing is unpickled
        artifacts={_CHECKPOINT_ARTIFACT: str(checkpoint)},
        model_config={"loader": loader},
        signature=decoder_signature(load_checkpoint_length(checkpoint)),
        pip_requirements=_pip_requirements(),
    )
    version = mlflow.register_model(
        info.model_uri,
        name,
        tags={"loader": loader, "family": family, "code": code, "champion_metric": champion_metric},
    )
    client = MlflowClient()
    promote = _beats(client, name, checked[champion_metric], champion_metric, higher_is_better)
    client.set_registered_model_alias(name, CANDIDATE_ALIAS, version.version)
    if promote:
        client.set_registered_model_alias(name, CHAMPION_ALIAS, version.version)
    return RegisteredDecoder(
        name=name,
        version=str(version.version),
        run_id=run.info.run_id,
        model_uri=f"models:/{name}/{version.version}",
        champion=promote,
    )


def register_backbone(checkpoint_path: str | Path, name: str, sha256: str, metrics: Mapping[str, float]) -> str:
    """Register a backbone's weights as ``eccflow-fecct-<name>`` once per SHA-256 (tag ``sha256``) from the active
    run; later calls find that version. ``champion`` goes to the backbone trained on the most words."""
    model = registered_model_name("fecct", name)
    client = MlflowClient()
    for version in client.search_model_versions(f"name = '{model}'"):
        if version.tags.get("sha256") == sha256:
            return f"registered as {model} version {version.version}"
    registered = register_checkpoint(checkpoint_path, "fecct", name, {"words": 0.0, **metrics}, "words",
                                     loader="eccflow.lit:load_decoder")
    client.set_model_version_tag(model, registered.version, "sha256", sha256)
    return f"registered now as {model} version {registered.version}"


def load_registered_decoder(family: str, code: str, alias: str = CANDIDATE_ALIAS) -> nn.Module:
    """Download the checkpoint of ``eccflow-<family>-<code>@alias`` and build the decoder (eval mode)
    with the loader recorded in the model."""
    name = registered_model_name(family, code)
    _check_name("alias", alias)
    client = MlflowClient()
    try:
        aliases = client.get_registered_model(name).aliases
    except MlflowException as error:
        if error.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        raise ConfigError(f"no registered model {name!r}") from None
    if alias not in aliases:
        raise ConfigError(f"{name!r} has no alias {alias!r}; it has {sorted(aliases)}")
    return load_model_uri(f"models:/{name}/{aliases[alias]}")[0]


def load_model_uri(model_uri: str) -> tuple[nn.Module, str | None]:
    """The decoder (eval mode) of a model logged by :func:`register_checkpoint`, by its MLflow URI
    (``models:/NAME@ALIAS``, ``models:/NAME/VERSION``, ``runs:/...``), built by its allow-listed loader, and
    the name of the code its checkpoint was trained on (``None`` when it does not say)."""
    with tempfile.TemporaryDirectory(prefix="eccflow-model-") as scratch:
        try:
            local = Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=scratch))
        except MlflowException as error:
            raise ConfigError(f"{model_uri}: {error.message}") from None
        flavor = Model.load(str(local)).flavors.get("python_function", {})
        try:
            loader = flavor["config"]["loader"]
            relative = flavor["artifacts"][_CHECKPOINT_ARTIFACT]["path"]
        except (KeyError, TypeError):
            raise ConfigError(f"{model_uri} was not logged by register_checkpoint") from None
        return _load_decoder(loader, local / relative), _checkpoint_code(local / relative)
