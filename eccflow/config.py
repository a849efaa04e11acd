"""Config composition: ``conf/`` YAML files, one per code family, decoder, stage, pipeline, profile.

``conf/`` is package data (``eccflow/conf/``), so a checkout and a non-editable install read the same files.

A resolved config is built in this order (later wins, by deep merge):

1. ``conf/defaults.yaml``                         seed, trainer, tracking, cache
2. ``conf/codes/<family>.yaml``                   code-family defaults (training Eb/N0 range...)
3. ``decoder:`` <- ``conf/decoders/<name>.yaml``  the pipeline names the decoder
4. ``stages.<s>:`` <- ``conf/stages/<s>.yaml``    for each stage the pipeline lists
5. ``conf/pipelines/<pipeline>.yaml``             pipeline-specific values (``stage_settings:``
                                                  holds per-stage values, ``stages:`` the order)
6. ``conf/profiles/<profile>.yaml``               quick (CPU minutes) or paper budgets, then the
                                                  profile's ``pipelines.<pipeline>:`` section; a profile
                                                  with ``extends: <other>`` patches that profile
7. an overrides file (``--overrides-file``)        YAML mapping of dotted keys to values, e.g. the
                                                  ``best_overrides.yaml`` an Optuna study writes
8. overrides ``a.b=c``                             values parsed as YAML

Profiles and overrides may only set keys that already exist: a typo is an error before any work.
"""
from __future__ import annotations

import copy
import hashlib
import json
import math
import re
from pathlib import Path
from typing import Any

import yaml

from eccflow.errors import ConfigError

CONF_DIR = Path(__file__).resolve().parent / "conf"  # package data: found the same in a checkout and an install
REPLACED_WHOLE = frozenset({"search_space"})  # a pipeline declares its own search space, not a patch of the default


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({err})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    return data


def _available(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def is_config_path(name: str) -> bool:
    """A pipeline or profile given as a YAML file of the user's rather than a name in ``conf/``."""
    return name.endswith((".yaml", ".yml"))


def config_name(name: str) -> str:
    """The name a pipeline or profile goes by: a shipped name as is, a user's file by its stem."""
    return Path(name).stem if is_config_path(name) else name


def read_group(group: str, name: str) -> dict[str, Any]:
    """``conf/<group>/<name>.yaml`` or, for a name ending in ``.yaml``, that file of the user's; else a clear
    error listing the available names."""
    kind = group[:-1] if group.endswith("s") else group
    if is_config_path(name):
        path = Path(name).expanduser()
        if not path.is_file():
            raise ConfigError(f"{kind} file {name} does not exist")
        return _read_yaml(path)
    path = CONF_DIR / group / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(f"unknown {kind} {name!r}; available: {_available(group)} (or the path of a .yaml file)")
    return _read_yaml(path)


def stage_settings(name: str) -> dict[str, Any]:
    """``conf/stages/<name>.yaml``; a stage naming an ``optim:`` group takes that group's settings
    (``conf/optim/<group>.yaml``) under its own, so the shared optimiser defaults live in one file."""
    settings = read_group("stages", name)
    group = settings.pop("optim", None)
    if group is None:
        return settings
    return {**read_group("optim", str(group)), **settings}


def read_profile(name: str, seen: tuple[str, ...] = ()) -> dict[str, Any]:
    """``eccflow/conf/profiles/<name>.yaml``; with ``extends: <other>``, that profile (resolved the same way) patched by it."""
    profile = read_group("profiles", name)
    parent = profile.pop("extends", None)
    if parent is None:
        return profile
    if parent in (*seen, name):
        raise ConfigError(f"profile {name!r} extends {parent!r}, which extends it back ({' -> '.join((*seen, name, parent))})")
    return deep_merge(read_profile(str(parent), (*seen, name)), profile, strict=False)


def deep_merge(base: dict[str, Any], update: dict[str, Any], strict: bool, where: str = "") -> dict[str, Any]:
    """Merge ``update`` into a copy of ``base``; with ``strict`` every key must already exist."""
    out = copy.deepcopy(base)
    for key, value in update.items():
        dotted = f"{where}{key}"
        if strict and key not in out:
            raise ConfigError(f"unknown config key {dotted!r}; known keys here: {sorted(out)}")
        if isinstance(value, dict) and isinstance(out.get(key), dict) and key not in REPLACED_WHOLE:
            out[key] = deep_merge(out[key], value, strict, f"{dotted}.")
        else:
            if strict:
                check_type(dotted, out[key], value)
            out[key] = copy.deepcopy(value)
    return out


UNION_TYPED = frozenset({"trainer.compile"})  # true / false or a backend name


def check_type(key: str, default: Any, value: Any) -> None:
    """A value must have the type of the default it replaces: a number for a number (an integer where the
    default is one: no silent float-to-int), a finite one, a boolean for a boolean, a list for a list, text
    for text. A null default, a null value and the keys of :data:`UNION_TYPED` take anything."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{key} must be a finite number, got {value!r}")
    if default is None or value is None or key in UNION_TYPED:
        return
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, bool):
        ok, kind = isinstance(value, bool), "true or false"
    elif isinstance(default, int):
        ok, kind = number and isinstance(value, int), f"an integer (like {default})"
    elif isinstance(default, float):
        ok, kind = number, f"a number (like {default:g})"
    elif isinstance(default, list):
        ok, kind = isinstance(value, list), f"a list (like {default})"
    elif isinstance(default, dict):
        ok, kind = isinstance(value, dict), "a mapping"
    elif isinstance(default, str):
        ok, kind = isinstance(value, str), f"text (like {default!r})"
    else:
        return
    if not ok:
        raise ConfigError(f"{key} must be {kind}, got {value!r}")


def parse_override(text: str) -> dict[str, Any]:
    """``"stages.train.lr=3e-4"`` -> ``{"stages": {"train": {"lr": 3e-4}}}`` (value parsed as YAML)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like key.sub=value")
    key, raw = text.split("=", 1)
    if not all(key.strip().split(".")):
        raise ConfigError(f"override {text!r} has an empty key part")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as err:
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"override {text!r}: the value is not valid YAML ({problem}); quote text, "
                          f"close lists like [4.0, 5.0]") from None
    return nest_dotted(key, value)


def nest_dotted(key: str, value: Any) -> dict[str, Any]:
    """``("a.b.c", v)`` -> ``{"a": {"b": {"c": v}}}``."""
    parts = str(key).strip().split(".")
    if not all(parts):
        raise ConfigError(f"key {key!r} has an empty part")
    nested: dict[str, Any] = {parts[-1]: value}
    for part in reversed(parts[:-1]):
        nested = {part: nested}
    return nested


def read_overrides_file(path: str | Path) -> dict[str, Any]:
    """A YAML mapping of dotted keys (``stages.train.lr: 3e-3``) or nested mappings -> one nested dict."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"overrides file {str(path)!r} does not exist")
    merged: dict[str, Any] = {}
    for key, value in _read_yaml(path).items():
        try:
            merged = deep_merge(merged, nest_dotted(key, value), strict=False)
        except ConfigError as err:
            raise ConfigError(f"{path}: {err}") from None
    return merged


def compose(code: str, pipeline: str, profile: str = "quick", overrides: list[str] | tuple[str, ...] = (),
            overrides_file: str | Path | None = None) -> dict[str, Any]:
    """The resolved config of ``pipeline`` on ``code`` under ``profile``, ``overrides_file`` and ``overrides``."""
    from eccflow.codes import get_code

    code_obj = get_code(code)  # unknown code: clear error before anything else
    pipe = read_group("pipelines", pipeline)
    if "stages" not in pipe or not isinstance(pipe["stages"], list) or not pipe["stages"]:
        raise ConfigError(f"pipeline {pipeline!r} must list its stages under 'stages:'")
    cfg = _read_yaml(CONF_DIR / "defaults.yaml")
    family_file = CONF_DIR / "codes" / f"{code_obj.family.lower()}.yaml"
    cfg = deep_merge(cfg, _read_yaml(family_file if family_file.is_file() else CONF_DIR / "codes" / "default.yaml"), strict=False)
    cfg["code"] = code_obj.name
    cfg["family"] = code_obj.family
    cfg["pipeline"] = pipeline = config_name(pipeline)
    cfg["profile"] = config_name(profile)
    decoder = read_group("decoders", pipe.get("decoder", "neural_bp"))
    cfg["decoder"] = expand_size(decoder, decoder.get("family"), "decoder file")
    cfg["stages"] = {}
    for stage in pipe["stages"]:
        # "evaluate:zeroshot" reads evaluate.yaml; every stage may take its inputs from an earlier one (after:)
        cfg["stages"][stage] = {"after": None, **stage_settings(stage.split(":", 1)[0])}
    cfg["stage_order"] = list(pipe["stages"])
    cfg = deep_merge(cfg, {k: v for k, v in pipe.items() if k not in ("stages", "decoder", "stage_settings")}, strict=True)
    cfg["stages"] = merge_stage_settings(cfg["stages"], pipe.get("stage_settings") or {}, must_match=True)
    prof = read_profile(profile)
    per_pipeline = prof.pop("pipelines", {}) or {}
    _check_profile_names(config_name(profile), per_pipeline, prof.get("stages") or {})
    cfg["stages"] = merge_stage_settings(cfg["stages"], prof.pop("stages", {}) or {}, must_match=False)
    cfg = _apply(cfg, prof)
    cfg = _apply(cfg, per_pipeline.get(pipeline, {}))
    if overrides_file is not None:
        try:
            cfg = _apply(cfg, read_overrides_file(overrides_file))
        except ConfigError as err:
            raise ConfigError(f"overrides file {str(overrides_file)!r}: {err}") from None
    for text in overrides:
        cfg = _apply(cfg, parse_override(text))
    _check_branches(cfg["stage_order"], cfg["stages"])
    check_values(cfg)
    return cfg


EBN0_DB_RANGE = (-30.0, 50.0)  # Eb/N0 eccflow accepts anywhere: beyond 50 dB no channel error is ever drawn
POSITIVE_INTEGERS = frozenset({  # counts that must be >= 1 wherever they appear (null: the documented default)
    "batch_size", "batches_per_epoch", "val_frames", "max_frames", "max_epochs", "devices", "num_nodes",
    "calibration_frames", "calibration_batch_size", "candidate_batch_size", "frames_per_snr",
    "max_candidates_per_snr", "min_frame_errors", "passes", "samples", "iterations", "layers", "d_model", "heads",
    "checkpoint_every_n_steps"})


def check_ebn0(key: str, value: Any) -> None:
    """An Eb/N0 setting: a number or a non-empty list of numbers, each finite and inside :data:`EBN0_DB_RANGE`."""
    values = value if isinstance(value, list) else [value]
    if not values:
        raise ConfigError(f"{key} is an empty list: give at least one Eb/N0 in dB")
    low, high = EBN0_DB_RANGE
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not low <= v <= high:
            raise ConfigError(f"{key}: Eb/N0 values must be numbers of dB in [{low:g}, {high:g}], got {v!r}")


def check_values(config: dict[str, Any]) -> None:
    """Ranges that hold in every pipeline, checked on the composed config before any work: Eb/N0 settings
    (keys ending in ``ebn0_db``), counts (:data:`POSITIVE_INTEGERS`), and a champion metric that the
    registering evaluation measures (``neg_ln_ber_6dB`` needs 6 dB in its ``ebn0_db``)."""
    def walk(node: Any, where: str) -> None:
        for key, value in node.items():
            dotted = f"{where}{key}"
            if key in ("search_space", "study"):
                continue  # a tuning declaration, checked by the study
            if isinstance(value, dict):
                walk(value, f"{dotted}.")
            elif str(key).endswith("ebn0_db") and value is not None:
                check_ebn0(dotted, value)
            elif key in POSITIVE_INTEGERS and value is not None and (
                    isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ConfigError(f"{dotted} must be a positive integer, got {value!r}")

    walk(config, "")
    metric = str(config["tracking"]["champion_metric"])
    point = re.search(r"_(-?\d+(?:\.\d+)?)dB$", metric)
    if not (config["tracking"]["register"] and point):
        return
    for name in config["stage_order"]:
        stage = config["stages"][name]
        if name.split(":", 1)[0] == "evaluate" and stage.get("register", False):
            measured = [float(e) for e in stage["ebn0_db"]]
            if float(point.group(1)) not in measured:
                raise ConfigError(f"tracking.champion_metric={metric} is measured at {point.group(1)} dB, but "
                                  f"stages.{name}.ebn0_db={stage['ebn0_db']} does not include it; add it, or set "
                                  f"tracking.champion_metric to a metric of those points (e.g. neg_ln_ber_"
                                  f"{measured[-1]:g}dB)")


def _check_profile_names(profile: str, per_pipeline: dict[str, Any], stages: dict[str, Any]) -> None:
    """A profile serves every pipeline, so its names are checked against what exists, not against this pipeline:
    ``pipelines.<p>`` must be a file in ``eccflow/conf/pipelines/``, ``stages.<s>`` (or ``<s>:<label>``) in ``eccflow/conf/stages/``."""
    pipelines = _available("pipelines")
    unknown = sorted(set(per_pipeline) - set(pipelines))
    if unknown:
        raise ConfigError(f"profile {profile!r} sizes unknown pipelines {unknown}; pipelines: {pipelines}")
    known_stages = _available("stages")
    unknown = sorted(k for k in stages if str(k).split(":", 1)[0] not in known_stages)
    if unknown:
        raise ConfigError(f"profile {profile!r} sets unknown stages {unknown}; stages: {known_stages}")


def _check_branches(order: list[str], stages: dict[str, Any]) -> None:
    """``stages.<s>.after`` must name a stage listed before ``s`` (its inputs are that stage's outputs)."""
    for position, name in enumerate(order):
        after = stages[name]["after"]
        if after is not None and after not in order[:position]:
            raise ConfigError(f"stages.{name}.after must name a stage listed before {name!r} "
                              f"(one of {order[:position]}), got {after!r}")


def expand_size(decoder: dict[str, Any], family: str | None, where: str) -> dict[str, Any]:
    """A decoder block's ``size: <name>`` replaced by that size's keys (``conf/sizes.yaml``), under the keys
    written beside it."""
    if "size" not in decoder:
        return decoder
    rest = {k: v for k, v in decoder.items() if k != "size"}
    sizes = _read_yaml(CONF_DIR / "sizes.yaml")
    name = decoder["size"]
    if name not in sizes:
        raise ConfigError(f"{where}: unknown decoder.size {name!r}; sizes: {sorted(sizes)}")
    if family not in sizes[name]:
        raise ConfigError(f"{where}: decoder.size applies to {sorted(sizes[name])}, not to the {family} decoder")
    return {**sizes[name][family], **rest}


def decoder_preset(decoder: str, size: str | None = None) -> dict[str, Any]:
    """The decoder block of ``conf/decoders/<decoder>.yaml``, at the named ``size`` of ``conf/sizes.yaml``
    when given (else the file's own); what benchmarks build their models from."""
    block = read_group("decoders", decoder)
    if size is not None:
        block = {**block, "size": size}
    return expand_size(block, block.get("family"), f"decoder {decoder!r}")


def _apply(cfg: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Strict merge of ``update`` into ``cfg``; its ``stages`` part by :func:`merge_stage_settings`, a
    ``decoder.size`` expanded in place (:func:`expand_size`)."""
    update = dict(update)
    if isinstance(update.get("decoder"), dict):
        update["decoder"] = expand_size(update["decoder"], cfg["decoder"].get("family"), "decoder.size")
    stages = update.pop("stages", None) or {}
    cfg = deep_merge(cfg, update, strict=True)
    cfg["stages"] = merge_stage_settings(cfg["stages"], stages, must_match=True)
    return cfg


def merge_stage_settings(stages: dict[str, Any], settings: dict[str, Any], must_match: bool) -> dict[str, Any]:
    """Apply per-stage settings (a pipeline's ``stage_settings:``, a profile's ``stages:``, dotted overrides):
    ``evaluate`` reaches every ``evaluate`` and ``evaluate:<label>`` stage of the pipeline, ``evaluate:fp`` only
    that one, after the unlabelled settings (the more specific wins). A key no stage matches is an error when
    ``must_match`` (a pipeline's own section, an override), else ignored (a profile serves every pipeline)."""
    out = copy.deepcopy(stages)
    for key, value in sorted(settings.items(), key=lambda item: ":" in item[0]):
        targets = [name for name in out if name == key or (":" not in key and name.split(":", 1)[0] == key)]
        if not targets and must_match:
            raise ConfigError(f"unknown config key 'stages.{key}'; stages of this pipeline: {sorted(out)}")
        for name in targets:
            out[name] = deep_merge(out[name], value, strict=True, where=f"stages.{name}.")
    return out


def config_hash(*parts: Any) -> str:
    """Stable short hash of JSON-serialisable parts (cache keys)."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def file_sha256(path: str | Path) -> str:
    """SHA-256 (hex) of a file's bytes, read in 1 MiB blocks (cache keys, backbone manifests)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def dataclass_from_dict(cls: type, values: dict[str, Any], kind: str, ignored: tuple[str, ...] = ("family", "name")) -> Any:
    """``cls(**values)`` for a config dataclass with a ``validate()`` method; a key that is neither a field nor
    in ``ignored`` is a ConfigError naming the ``kind`` of config and the known keys."""
    from dataclasses import fields

    known = {f.name for f in fields(cls)}
    extra = sorted(set(values) - known - set(ignored))
    if extra:
        raise ConfigError(f"unknown {kind} keys {extra}; known: {sorted(known)}")
    config = cls(**{k: v for k, v in values.items() if k in known})
    config.validate()
    return config
