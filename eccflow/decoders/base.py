"""What every decoder returns."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from eccflow.channels import hard_decision
from eccflow.errors import ConfigError


@dataclass
class DecoderOutput:
    """Decoder result for a batch of B words of length n.

    LLR sign convention: positive means bit 0, ``bits = (llr < 0)``.

    Attributes:
        llr: final soft output, (B, n) float.
        bits: hard decisions, (B, n) float 0/1.
        llr_per_iteration: soft output after each iteration, (L, B, n), for iterative decoders that
            were asked for it (multiloss training), else ``None``.
        iterations: iterations each word used, (B,) int64, where the decoder iterates.
    """

    llr: torch.Tensor
    bits: torch.Tensor
    llr_per_iteration: torch.Tensor | None = None
    iterations: torch.Tensor | None = None


def bits_and_llr(output: DecoderOutput | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(hard decisions, posterior LLRs), each (B, n), of what a decoder returned: a :class:`DecoderOutput`,
    or bare posterior LLRs (decided as ``llr < 0``)."""
    llr = output if isinstance(output, torch.Tensor) else getattr(output, "llr", None)
    if not isinstance(llr, torch.Tensor):
        raise ConfigError(f"the decoder returned {type(output).__name__}: expected LLRs or an object with .llr")
    bits = getattr(output, "bits", None)
    return (hard_decision(llr) if bits is None else bits), llr
