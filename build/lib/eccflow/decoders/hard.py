"""Hard-decision decoding: the uncoded decision bin(L) = 1[L < 0] on every codeword bit, no correction."""
from __future__ import annotations

import torch
from torch import nn

from eccflow.channels import hard_decision
from eccflow.codes import Code
from eccflow.decoders.base import DecoderOutput
from eccflow.errors import ConfigError


class HardDecisionDecoder(nn.Module):
    """c_hat = 1[L < 0] (positive LLR = bit 0); the soft output is the channel LLR itself."""

    def __init__(self, code: Code) -> None:
        super().__init__()
        self.n = code.n

    def forward(self, llr: torch.Tensor) -> DecoderOutput:
        if llr.dim() != 2 or llr.shape[1] != self.n:
            raise ConfigError(f"hard-decision decoder of length {self.n} got LLRs of shape {tuple(llr.shape)}")
        return DecoderOutput(llr=llr, bits=hard_decision(llr))
