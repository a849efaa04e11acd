"""Classical decoders by name, as the CLI and configs refer to them (trainable families: eccflow.lit.families)."""
from __future__ import annotations

from enum import Enum

from torch import nn

from eccflow.codes import Code
from eccflow.errors import ConfigError


class ClassicalDecoder(str, Enum):
    BP = "bp"
    MINSUM = "minsum"
    OSD = "osd"
    HARD = "hard"


def build_classical_decoder(
    name: str,
    code: Code,
    iterations: int = 5,
    order: int = 2,
    normalization: float | None = None,
    offset: float = 0.0,
    early_stop: bool = False,
) -> nn.Module:
    """``bp`` (sum-product), ``minsum`` (normalised/offset min-sum; default factor 1), ``osd`` (order 0-2) or
    ``hard`` (hard decisions, no decoding)."""
    try:
        kind = ClassicalDecoder(name)
    except ValueError:
        raise ConfigError(f"unknown decoder {name!r}; choose one of {[d.value for d in ClassicalDecoder]}") from None
    if kind is ClassicalDecoder.OSD:
        from eccflow.decoders.osd import OSDDecoder

        return OSDDecoder(code, order=order)
    if kind is ClassicalDecoder.HARD:
        from eccflow.decoders.hard import HardDecisionDecoder

        return HardDecisionDecoder(code)
    from eccflow.decoders.message_passing import BeliefPropagationDecoder

    rule = "sum-product" if kind is ClassicalDecoder.BP else "min-sum"
    return BeliefPropagationDecoder(
        code,
        iterations=iterations,
        check_update=rule,
        normalization=1.0 if normalization is None else normalization,
        offset=offset,
        early_stop=early_stop,
    )
