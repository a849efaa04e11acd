"""Optuna search spaces and objectives declared in a stage's YAML.

``stages.<stage>.search_space`` maps a parameter name to its distribution::

    lr:          {type: float, low: 1.0e-4, high: 5.0e-2, log: true}     # key: stages.<stage>.lr
    weight_init: {type: float, low: 0.5, high: 1.0, key: decoder.weight_init}
    d_model:     {type: categorical, choices: [16, 32, 64], key: decoder.d_model}
    iterations:  {type: int, low: 3, high: 10, step: 1, key: decoder.iterations}

``key`` is the dotted config path the sampled value overrides (default ``stages.<stage>.<name>``); it
must already exist in the resolved config. ``stages.<stage>.study.objectives`` lists metric names,
each optionally suffixed ``:maximize`` / ``:minimize`` (otherwise inferred from the name).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from eccflow.errors import ConfigError

_TYPES = ("float", "int", "categorical")
_FIELDS = {
    "float": {"type", "low", "high", "log", "step", "key"},
    "int": {"type", "low", "high", "log", "step", "key"},
    "categorical": {"type", "choices", "key"},
}
DIRECTIONS = ("maximize", "minimize")
EVAL_METRIC = re.compile(r"^(neg_ln_ber|ber|fer)_(.+)dB$")
FIT_METRICS = ("decoder_params", "decoder_flops", "train_seconds")


@dataclass(frozen=True)
class SearchParam:
    """One searched hyperparameter: Optuna name, distribution and the config key it overrides."""

    name: str
    kind: str
    key: str
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: tuple[Any, ...] = ()

    def suggest(self, trial: Any) -> Any:
        """Draw this parameter from an ``optuna.Trial``."""
        if self.kind == "float":
            return trial.suggest_float(self.name, self.low, self.high, log=self.log, step=self.step)
        if self.kind == "int":
            return trial.suggest_int(self.name, self.low, self.high, log=self.log, step=self.step or 1)
        return trial.suggest_categorical(self.name, list(self.choices))


@dataclass(frozen=True)
class Objective:
    """A metric the study optimises and its direction (``maximize`` or ``minimize``)."""

    metric: str
    direction: str

    @property
    def needs_evaluation(self) -> bool:
        """Whether the metric comes from the Monte-Carlo evaluator (``neg_ln_ber_5dB``, ``ber_5dB``...)."""
        return bool(EVAL_METRIC.match(self.metric))


def config_has_key(config: Mapping[str, Any], dotted: str) -> bool:
    """Whether ``a.b.c`` names a value (not a section) in ``config``."""
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False
        node = node[part]
    return not (isinstance(node, Mapping) and node)


def _number(where: str, field: str, value: Any, integer: bool) -> float | int:
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok or not math.isfinite(value):
        raise ConfigError(f"{where}: {field} must be {'an integer' if integer else 'a finite number'}, got {value!r}")
    return int(value) if integer else float(value)


def _parse_entry(name: str, entry: Any, stage: str, config: Mapping[str, Any] | None) -> SearchParam:
    where = f"stages.{stage}.search_space.{name}"
    if not isinstance(entry, Mapping):
        raise ConfigError(f"{where}: expected a mapping like {{type: float, low: ..., high: ...}}, got {entry!r}")
    kind = entry.get("type")
    if kind not in _TYPES:
        raise ConfigError(f"{where}: unknown type {kind!r}; expected one of {list(_TYPES)}")
    extra = sorted(set(entry) - _FIELDS[kind])
    if extra:
        raise ConfigError(f"{where}: unknown field(s) {extra} for type {kind}; allowed: {sorted(_FIELDS[kind])}")
    key = entry.get("key", f"stages.{stage}.{name}")
    if not isinstance(key, str) or not key or not all(key.split(".")):
        raise ConfigError(f"{where}: key must be a dotted config path like 'decoder.weight_init', got {key!r}")
    if config is not None and not config_has_key(config, key):
        raise ConfigError(f"{where}: key {key!r} is not a value in the config (a typo, or a section rather than a value)")
    if kind == "categorical":
        choices = entry.get("choices")
        if not isinstance(choices, (list, tuple)) or not choices:
            raise ConfigError(f"{where}: categorical needs a non-empty 'choices' list, got {choices!r}")
        bad = [c for c in choices if c is not None and not isinstance(c, (bool, int, float, str))]
        if bad:
            raise ConfigError(f"{where}: choices must be None, bool, int, float or str, got {bad}")
        return SearchParam(name, kind, key, choices=tuple(choices))
    for field in ("low", "high"):
        if field not in entry:
            raise ConfigError(f"{where}: type {kind} needs 'low' and 'high' (missing {field!r})")
    integer = kind == "int"
    low, high = (_number(where, f, entry[f], integer) for f in ("low", "high"))
    if not low < high:
        raise ConfigError(f"{where}: low must be below high, got low={low}, high={high}")
    log = entry.get("log", False)
    if not isinstance(log, bool):
        raise ConfigError(f"{where}: log must be true or false, got {log!r}")
    step = entry.get("step")
    if step is not None:
        step = _number(where, "step", step, integer)
        if step <= 0 or log:
            raise ConfigError(f"{where}: step must be positive and cannot be combined with log: true")
    if log and low <= 0:
        raise ConfigError(f"{where}: log: true needs low > 0, got {low}")
    return SearchParam(name, kind, key, low=low, high=high, log=log, step=step)


def parse_search_space(space: Any, stage: str, config: Mapping[str, Any] | None = None) -> list[SearchParam]:
    """Validate ``stages.<stage>.search_space``; with ``config``, every ``key`` must exist in it."""
    if not isinstance(space, Mapping) or not space:
        raise ConfigError(f"stages.{stage}.search_space must be a non-empty mapping of name -> {{type: ..., ...}}, "
                          f"got {space!r}")
    params = [_parse_entry(str(name), entry, stage, config) for name, entry in space.items()]
    keys = [p.key for p in params]
    duplicated = sorted({k for k in keys if keys.count(k) > 1})
    if duplicated:
        raise ConfigError(f"stages.{stage}.search_space: several entries override the same key(s) {duplicated}")
    return params


def infer_direction(metric: str) -> str | None:
    """``maximize`` for -ln(BER) metrics, ``minimize`` for error rates, cost and NVE; else ``None``."""
    leaf = metric.rsplit("/", 1)[-1]
    if leaf.startswith("neg_ln_ber"):
        return "maximize"
    if leaf.startswith(("ber_", "fer_", "nve", "loss")) or leaf in FIT_METRICS or "nve" in leaf or "loss" in leaf:
        return "minimize"
    return None


def parse_objectives(entries: Any, stage: str, field: str, monitor: str, eval_ebn0_db: Sequence[float]) -> list[Objective]:
    """``["neg_ln_ber_5dB", "decoder_flops:minimize"]`` -> objectives, each metric checked to be produced.

    Producible: ``neg_ln_ber|ber|fer_<x>dB`` for x in ``eval_ebn0_db`` (Monte-Carlo after training),
    ``decoder_params``, ``decoder_flops``, ``train_seconds``, ``best_<monitor>`` (from training) and any
    ``val/...`` metric the LightningModule logs (its last value).
    """
    where = f"stages.{stage}.study.{field}"
    if not isinstance(entries, (list, tuple)) or not entries:
        raise ConfigError(f"{where} must be a non-empty list of metric names, got {entries!r}")
    points = {f"{float(x):g}" for x in eval_ebn0_db}
    best = f"best_{monitor.replace('/', '_')}"
    objectives = []
    for entry in entries:
        if not isinstance(entry, str) or not entry.strip():
            raise ConfigError(f"{where}: each entry must be a metric name, got {entry!r}")
        metric, _, direction = entry.strip().partition(":")
        direction = direction or infer_direction(metric) or ""
        if direction not in DIRECTIONS:
            raise ConfigError(f"{where}: cannot tell the direction of {entry!r}; write '{metric}:maximize' or "
                              f"'{metric}:minimize'")
        match = EVAL_METRIC.match(metric)
        if match and match.group(2) not in points:
            raise ConfigError(f"{where}: {metric!r} needs Eb/N0 {match.group(2)} dB in stages.{stage}.study.eval.ebn0_db "
                              f"(now {sorted(points)})")
        if not (match or metric in FIT_METRICS or metric == best or metric.startswith("val/")):
            raise ConfigError(f"{where}: unknown metric {metric!r}; use neg_ln_ber_<x>dB / ber_<x>dB / fer_<x>dB, "
                              f"{', '.join(FIT_METRICS)}, {best} or a val/... metric")
        objectives.append(Objective(metric, direction))
    names = [o.metric for o in objectives]
    if len(set(names)) != len(names):
        raise ConfigError(f"{where}: a metric appears twice in {names}")
    return objectives
