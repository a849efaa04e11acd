"""Published -ln(BER) values (ECCT, AECCT and the BP rows they quote), shipped as ``eval/data/published.csv``.

Each row: paper (``source``), ``table``, ``code`` (registry name), ``method`` (``BP``, ``AR BP``, ``ECCT``,
``ECCT (Post-LN)``, ``AECCT``), model size (``layers`` N, ``d_model`` d) or ``iterations`` L, ``ebn0_db`` and
``neg_ln_ber``, with an optional ``note``. :func:`published_for` finds the rows that match a decoder of ours.
"""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

from eccflow.errors import ConfigError

COLUMNS = ("source", "table", "code", "method", "layers", "d_model", "iterations", "ebn0_db", "neg_ln_ber", "note")


@dataclass(frozen=True)
class PublishedValue:
    source: str
    table: str
    code: str
    method: str
    layers: int | None
    d_model: int | None
    iterations: int | None
    ebn0_db: float
    neg_ln_ber: float
    note: str = ""

    @property
    def label(self) -> str:
        """E.g. ``ECCT N=2 d=32 (DDECC Table 1)`` or ``BP L=50 (AECCT Table 1)``."""
        size = f" N={self.layers} d={self.d_model}" if self.layers is not None else ""
        size += f" L={self.iterations}" if self.iterations is not None else ""
        return f"{self.method}{size} ({self.table})"


def _optional_int(text: str, column: str, where: str) -> int | None:
    if text.strip() == "":
        return None
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"{where}: column {column!r} must be an integer or empty, got {text!r}") from None


def _parse_row(row: list[str], where: str) -> PublishedValue:
    if len(row) != len(COLUMNS):
        raise ConfigError(f"{where}: expected {len(COLUMNS)} columns ({', '.join(COLUMNS)}), got {len(row)}")
    values = dict(zip(COLUMNS, row))
    for column in ("source", "table", "code", "method"):
        if not values[column].strip():
            raise ConfigError(f"{where}: column {column!r} is empty")
    try:
        ebn0, value = float(values["ebn0_db"]), float(values["neg_ln_ber"])
    except ValueError:
        raise ConfigError(f"{where}: ebn0_db and neg_ln_ber must be numbers, got {values['ebn0_db']!r} and "
                          f"{values['neg_ln_ber']!r}") from None
    if not (math.isfinite(ebn0) and math.isfinite(value) and value > 0):
        raise ConfigError(f"{where}: need a finite Eb/N0 and a positive -ln(BER), got {ebn0} and {value}")
    return PublishedValue(
        source=values["source"], table=values["table"], code=values["code"], method=values["method"],
        layers=_optional_int(values["layers"], "layers", where), d_model=_optional_int(values["d_model"], "d_model", where),
        iterations=_optional_int(values["iterations"], "iterations", where), ebn0_db=ebn0, neg_ln_ber=value,
        note=values["note"])


def load_published(path: str | Path | None = None) -> tuple[PublishedValue, ...]:
    """Rows of a published-values CSV (default: the one shipped with eccflow); ``#`` lines are comments.
    A malformed row is a :class:`ConfigError` naming the file and line."""
    if path is None:
        return _shipped()
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"published-values file {path} does not exist")
    return _parse(path.read_text(), str(path))


@lru_cache(maxsize=1)
def _shipped() -> tuple[PublishedValue, ...]:
    text = resources.files("eccflow.eval").joinpath("data/published.csv").read_text()
    return _parse(text, "eccflow/eval/data/published.csv")


def _parse(text: str, name: str) -> tuple[PublishedValue, ...]:
    lines = [(i, line) for i, line in enumerate(text.splitlines(), start=1) if line.strip() and not line.startswith("#")]
    if not lines:
        raise ConfigError(f"{name}: no header row")
    header_line, header = lines[0]
    if [c.strip() for c in next(csv.reader([header]))] != list(COLUMNS):
        raise ConfigError(f"{name}:{header_line}: header must be {','.join(COLUMNS)}")
    return tuple(_parse_row(next(csv.reader([line])), f"{name}:{i}") for i, line in lines[1:])


def published_for(code: str, method: str, *, layers: int | None = None, d_model: int | None = None,
                  iterations: int | None = None, rows: tuple[PublishedValue, ...] | None = None) -> list[PublishedValue]:
    """Published rows for ``code`` and ``method`` with exactly this model size / iteration count, in file order."""
    rows = _shipped() if rows is None else rows
    return [r for r in rows if r.code == code and r.method == method and r.layers == layers and r.d_model == d_model
            and r.iterations == iterations]


def published_method(decoder: dict) -> tuple[str, dict] | None:
    """The published method a decoder config corresponds to, as (method, size keywords), or None.

    ECCT presets -> ``ECCT`` (N, d); AECCT -> ``AECCT`` (N, d). FECCT has no verified published table, neural
    BP, EW-GNN, SBND and NWD no row in the shipped tables.
    """
    family = decoder.get("family")
    if family in ("ecct", "aecct") and "layers" in decoder and "d_model" in decoder:
        return family.upper(), {"layers": int(decoder["layers"]), "d_model": int(decoder["d_model"])}
    return None


def baseline_method(name: str, iterations: int | None) -> tuple[str, dict] | None:
    """The published method of a classical baseline: sum-product BP with L iterations -> ``BP`` (L)."""
    if name == "bp" and iterations is not None:
        return "BP", {"iterations": int(iterations)}
    return None


def published_comparison(code: str, methods: dict[str, tuple[str, dict] | None], curves: dict) -> list[dict]:
    """For each decoder label with a published method (``methods[label]``), every published row of ``code``
    at an Eb/N0 we measured: ours, theirs and the gap (ours - published, in -ln(BER))."""
    rows = []
    for label, method in methods.items():
        if method is None or label not in curves:
            continue
        name, size = method
        for value in published_for(code, name, **size):
            ours = next((p for p in curves[label] if p.ebn0_db == value.ebn0_db), None)
            if ours is None:
                continue
            rows.append({"decoder": label, "published": value.label, "source": value.source, "ebn0_db": value.ebn0_db,
                         "published_neg_ln_ber": value.neg_ln_ber, "neg_ln_ber": ours.neg_ln_ber,
                         "neg_ln_ber_ci95": list(ours.neg_ln_ber_ci95), "gap": ours.neg_ln_ber - value.neg_ln_ber,
                         "flagged": ours.flagged, "note": value.note})
    return rows


def published_table(rows: list[dict]) -> str:
    """Markdown: ours beside the published value, with the gap."""
    if not rows:
        return "No published value for these decoders on this code in the shipped table.\n"
    lines = ["| decoder | published | Eb/N0 (dB) | ours -ln(BER) [95% CI] | published | gap | source |",
             "|---|---|---:|---|---:|---:|---|"]
    for r in rows:
        lo, hi = r["neg_ln_ber_ci95"]
        flag = " (flagged)" if r["flagged"] else ""
        lines.append(f"| {r['decoder']} | {r['published']} | {r['ebn0_db']:g} | {r['neg_ln_ber']:.2f} [{lo:.2f}, {hi:.2f}]"
                     f"{flag} | {r['published_neg_ln_ber']:.2f} | {r['gap']:+.2f} | {r['source']}"
                     f"{' (' + r['note'] + ')' if r['note'] else ''} |")
    return "\n".join(lines) + "\n"
