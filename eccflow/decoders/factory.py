"""Classical decoders by name, as the CLI and configs refer to them."""
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


TRANSFORMER_FAMILIES = ("ecct", "fecct", "aecct")


def _from_keywords(cls: type[nn.Module], code: Code, config: dict) -> nn.Module:
    """``cls(code, **config)`` without ``family``; an unknown or missing key is a ConfigError naming the family."""
    try:
        return cls(code, **{k: v for k, v in config.items() if k != "family"})
    except TypeError as err:
        raise ConfigError(f"decoder config for {config['family']}: {err}") from None


def build_decoder(code: Code, config: dict) -> nn.Module:
    """A trainable decoder network from its ``decoder:`` config block (``family`` picks the class)."""
    family = config.get("family")
    if family == "neural_bp":
        from eccflow.decoders.neural_bp import build_decoder as build_neural_bp

        return build_neural_bp(code, config)
    if family in TRANSFORMER_FAMILIES:
        from eccflow.decoders.transformer import TransformerDecoder

        return TransformerDecoder(code, config)
    if family == "ewgnn":
        from eccflow.decoders.ewgnn import EWGNNDecoder

        return _from_keywords(EWGNNDecoder, code, config)
    if family == "sbnd":
        from eccflow.decoders.sbnd import SBNDDecoder

        return SBNDDecoder(code, config)
    if family == "nwd":
        from eccflow.decoders.window import WindowDecoder

        return _from_keywords(WindowDecoder, code, config)
    raise ConfigError(f"unknown decoder family {family!r}; available: {['neural_bp', 'ewgnn', 'nwd', 'sbnd', *TRANSFORMER_FAMILIES]}")
