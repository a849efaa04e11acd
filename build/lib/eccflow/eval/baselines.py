"""Classical baselines by spec string, as evaluate stages and ``eccflow eval`` name them.

A spec is ``<decoder>[:<parameter>]``: ``hard`` (hard decision), ``bp:50`` (sum-product BP, 50 iterations),
``minsum:5``, ``osd:2`` (OSD order 2); a bare ``bp`` / ``minsum`` / ``osd`` takes the iterations / order given
by the caller. OSD runs only on codes short enough for it: dimension k <= ``osd_max_k`` (``stages.evaluate.osd_max_k``,
128: order 2 tries 1 + k + k(k-1)/2 patterns per frame, 8,257 at k = 128; measured 5,100 frames/s at k = 64 on
one CPU thread).
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from eccflow.codes import Code
from eccflow.errors import ConfigError

KINDS = ("hard", "bp", "minsum", "osd")


@dataclass(frozen=True)
class Baseline:
    """A parsed baseline spec: ``kind`` and its iterations (BP, min-sum) or order (OSD)."""

    kind: str
    parameter: int | None

    @property
    def label(self) -> str:
        """Curve and table label: ``hard decision``, ``bp L=50``, ``osd order 2``."""
        if self.kind == "hard":
            return "hard decision"
        if self.kind == "osd":
            return f"osd order {self.parameter}"
        return f"{self.kind} L={self.parameter}"

    @property
    def prefix(self) -> str:
        """MLflow metric prefix: ``hard_``, ``bp50_``, ``osd2_``."""
        return f"{self.kind}{self.parameter if self.parameter is not None and self.kind != 'hard' else ''}_"

    def too_long(self, code: Code, osd_max_k: int) -> str | None:
        """Why this baseline cannot run on ``code`` (OSD on a code of dimension above ``osd_max_k``), or None."""
        if self.kind == "osd" and code.k > osd_max_k:
            return (f"OSD order {self.parameter} skipped on {code.name}: k = {code.k} > {osd_max_k} "
                    f"(stages.evaluate.osd_max_k), too long for OSD")
        return None

    def build(self, code: Code, **options) -> nn.Module:
        """The decoder; ``options`` (``normalization``, ``offset``, ``early_stop``) reach
        :func:`~eccflow.decoders.factory.build_classical_decoder`, which uses them for BP and min-sum."""
        from eccflow.decoders.factory import build_classical_decoder

        if self.kind == "osd":
            return build_classical_decoder("osd", code, order=self.parameter)
        return build_classical_decoder(self.kind, code, iterations=self.parameter or 1, **options)


def parse_baseline(spec: object, iterations: int = 5, order: int = 2) -> Baseline:
    """``hard``, ``bp:50``, ``osd:2``, ... (a bare ``bp`` / ``osd`` takes ``iterations`` / ``order``)."""
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError(f"a baseline is a string like 'hard', 'bp:50' or 'osd:2', got {spec!r}")
    kind, _, parameter = spec.strip().partition(":")
    if kind not in KINDS:
        raise ConfigError(f"unknown baseline {spec!r}; choose one of {list(KINDS)} (e.g. 'bp:50', 'osd:2')")
    if kind == "hard":
        if parameter:
            raise ConfigError(f"baseline 'hard' takes no parameter, got {spec!r}")
        return Baseline("hard", None)
    if not parameter:
        return Baseline(kind, int(order if kind == "osd" else iterations))
    try:
        value = int(parameter)
    except ValueError:
        raise ConfigError(f"baseline {spec!r}: the part after ':' must be an integer") from None
    if kind == "osd" and value not in (0, 1, 2):
        raise ConfigError(f"baseline {spec!r}: OSD order must be 0, 1 or 2")
    if kind != "osd" and value < 1:
        raise ConfigError(f"baseline {spec!r}: iterations must be at least 1")
    return Baseline(kind, value)
