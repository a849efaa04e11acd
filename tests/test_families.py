"""A decoder family is one registration: a toy family defined and registered here alone trains and evaluates
through the standard pipeline (network built, LightningModule, stream, curve label, registry round trip)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from eccflow.codes import Code
from eccflow.decoders.base import DecoderOutput
from eccflow.errors import ConfigError
from eccflow.lit.base import DecoderLitModule
from eccflow.lit.families import FAMILIES, Family, build_network, get_family, register_family
from eccflow.pipelines import run_pipeline
from conftest import shrunk


# --- the whole toy family --------------------------------------------------------------------------------------
class ScaledLLR(nn.Module):
    """A learned scale per position on the channel LLR (B, n); positive means bit 0."""

    def __init__(self, code: Code, config: dict) -> None:
        super().__init__()
        self.code, self.scale = code, nn.Parameter(torch.ones(code.n))

    def forward(self, llr: torch.Tensor) -> DecoderOutput:
        out = llr * self.scale
        return DecoderOutput(llr=out, bits=(out < 0).to(llr.dtype))


class ScaledLLRLit(DecoderLitModule):
    def model_step(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, DecoderOutput]:
        out = self.net(batch["llr"])
        return F.binary_cross_entropy_with_logits(-out.llr, batch["bits"]), out


TOY = Family("toy", ScaledLLR, lambda net, dec, code, st, common: ScaledLLRLit(net, dec, code, **common),
             label=lambda dec: "toy scaled LLR")
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture
def toy_family():
    register_family(TOY)
    yield TOY
    FAMILIES.pop(TOY.name)


@pytest.mark.usefixtures("isolated_mlflow")
def test_a_family_registered_in_one_place_trains_and_evaluates(toy_family):
    overrides = shrunk("decoder.family=toy", "data.batches_per_epoch=1", "stages.evaluate.max_frames=500",
                       "stages.evaluate.batch_size=500")
    summary = run_pipeline("BCH_n15_k7", "neural_bp", overrides=overrides, log=lambda _: None)
    assert summary["stages"]["train"]["metrics"]["decoder_params"] == 15
    evaluate = summary["stages"]["evaluate"]
    assert "toy scaled LLR" in open(evaluate["outputs"]["report"]).read() and "bp5_neg_ln_ber_5dB" in evaluate["metrics"]
    from eccflow.track import load_registered_decoder

    assert isinstance(load_registered_decoder("toy", "BCH_n15_k7"), ScaledLLR)


def test_family_lookups_are_clear_errors():
    with pytest.raises(ConfigError, match=r"unknown decoder family 'nope'; available: \['aecct', 'ecct'"):
        get_family("nope")
    with pytest.raises(ConfigError, match="registered already"):
        register_family(FAMILIES["ecct"])
    assert {"neural_bp", "ecct", "fecct", "aecct", "ewgnn", "sbnd", "nwd"} <= set(FAMILIES)
    with pytest.raises(ConfigError, match="decoder config for ewgnn"):
        build_network(None, {"family": "ewgnn", "clipp": 0.9})
