"""What every decoder returns."""
from __future__ import annotations

from dataclasses import dataclass

import torch


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
