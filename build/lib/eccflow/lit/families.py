"""Decoder families: each one registration of its network, LightningModule, default data stream and curve label.

Everything that depends on the family (the decoder a config builds, the module that trains it, the stream it
trains on, the label of its evaluation curve) looks it up here, so adding a family is one
:func:`register_family` call (README, "Adding a decoder family").
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import lightning as L
from torch import nn

from eccflow.codes import Code
from eccflow.compress.fisher import UnitMask, apply_mask
from eccflow.data import AWGNDataModule, BICMDataModule
from eccflow.errors import ConfigError
from eccflow.lit.base import DecoderLitModule

NetworkBuilder = Callable[[Code, dict[str, Any]], nn.Module]
LightningBuilder = Callable[[nn.Module, dict[str, Any], str, dict[str, Any], dict[str, Any]], DecoderLitModule]
DataBuilder = Callable[[Code, dict[str, Any], dict[str, Any]], L.LightningDataModule]


@dataclass(frozen=True)
class Family:
    """A decoder family.

    Parameters
    ----------
    name : the ``decoder.family`` value.
    network : ``(code, decoder config) -> nn.Module``, the decoder (``forward(llr (B, n)) -> DecoderOutput``).
    lightning : ``(network, decoder config, code name, stage config, common module options) -> LightningModule``;
        ``None`` for a family trained by a stage of its own.
    label : ``decoder config -> str``, the name of its curves in tables and plots.
    datamodule : ``(code, decoder config, stream options) -> LightningDataModule``; ``None``: the BPSK-AWGN stream.
    """

    name: str
    network: NetworkBuilder
    lightning: LightningBuilder | None
    label: Callable[[dict[str, Any]], str]
    datamodule: DataBuilder | None = None


FAMILIES: dict[str, Family] = {}


def register_family(family: Family) -> Family:
    if family.name in FAMILIES:
        raise ConfigError(f"decoder family {family.name!r} is registered already")
    FAMILIES[family.name] = family
    return family


def get_family(name: Any) -> Family:
    if name not in FAMILIES:
        raise ConfigError(f"unknown decoder family {name!r}; available: {sorted(FAMILIES)}")
    return FAMILIES[name]


def build_network(code: Code, net_config: dict[str, Any]) -> nn.Module:
    """The network ``net_config`` describes; a pruned backbone (``unit_mask``: the heads and FFN channels Fisher
    pruning kept) is built with its smaller blocks, so its checkpoint's tensors fit."""
    net = get_family(net_config.get("family")).network(code, net_config)
    if net_config.get("unit_mask"):
        apply_mask(net, UnitMask(**net_config["unit_mask"]))
    return net


def _keywords(cls: type[nn.Module]) -> NetworkBuilder:
    """``cls(code, **config)`` without ``family``; an unknown or missing key is a ConfigError naming the family."""
    def build(code: Code, config: dict[str, Any]) -> nn.Module:
        try:
            return cls(code, **{k: v for k, v in config.items() if k != "family"})
        except TypeError as err:
            raise ConfigError(f"decoder config for {config['family']}: {err}") from None
    return build


def _iterations_label(dec: dict[str, Any]) -> str:
    return f"{dec['family']} L={dec['iterations']}"


def _transformer_label(dec: dict[str, Any]) -> str:
    return f"{dec['family']} N={dec['layers']} d={dec['d_model']}"


def _with_multiloss(cls: type[DecoderLitModule]) -> LightningBuilder:
    return lambda net, dec, code, st, common: cls(net, dec, code, multiloss=st["multiloss"], **common)


def _plain(cls: type[DecoderLitModule]) -> LightningBuilder:
    return lambda net, dec, code, st, common: cls(net, dec, code, **common)


def _bicm_stream(code: Code, dec: dict[str, Any], stream: dict[str, Any]) -> L.LightningDataModule:
    """The BICM system the decoder declares (SBND), or BPSK-AWGN."""
    if dec.get("channel", "awgn") != "bicm":
        return AWGNDataModule(code, **stream)
    return BICMDataModule(code, modulation=dec.get("modulation", "qam"), order=int(dec.get("order", 16)),
                          demapping=dec.get("demapper", "exact"), interleaver_seed=int(dec.get("interleaver_seed", 0)),
                          **stream)


def _sbnd_label(dec: dict[str, Any]) -> str:
    return f"sbnd {dec.get('estimator', 'gru')} {dec.get('output', 'message')}-wise"


def _register_builtin() -> None:
    from eccflow.decoders.ewgnn import EWGNNDecoder
    from eccflow.decoders.neural_bp import NeuralBPDecoder
    from eccflow.decoders.sbnd import SBNDDecoder
    from eccflow.decoders.transformer import TransformerDecoder
    from eccflow.decoders.window import WindowDecoder
    from eccflow.lit.ewgnn import EWGNNLitModule
    from eccflow.lit.neural_bp import NeuralBPLitModule
    from eccflow.lit.sbnd import SBNDLitModule
    from eccflow.lit.transformer import TransformerLitModule

    register_family(Family("neural_bp", _keywords(NeuralBPDecoder), _with_multiloss(NeuralBPLitModule), _iterations_label))
    for name in ("ecct", "fecct", "aecct"):
        register_family(Family(name, TransformerDecoder, _plain(TransformerLitModule), _transformer_label))
    register_family(Family("ewgnn", _keywords(EWGNNDecoder), _with_multiloss(EWGNNLitModule), _iterations_label))
    register_family(Family("sbnd", SBNDDecoder, _plain(SBNDLitModule), _sbnd_label, datamodule=_bicm_stream))
    register_family(Family("nwd", _keywords(WindowDecoder), None, _iterations_label))  # trained by the nwd stage


_register_builtin()
