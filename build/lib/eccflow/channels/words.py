"""What goes into the channel: codewords drawn on a generator's device, and the channel callable's type.

A channel maps codeword bits (B, n) at Eb/N0 (dB) and code rate R to channel LLRs (B, n), positive meaning bit 0;
:func:`bpsk_awgn_channel` is BPSK over AWGN, LLR = 2y / sigma^2.
"""
from __future__ import annotations

from typing import Callable

import torch

from eccflow.channels.awgn import awgn_llr
from eccflow.codes import Code
from eccflow.errors import ConfigError

Channel = Callable[[torch.Tensor, float, float, torch.Generator], torch.Tensor]
"""channel(bits (B, n), ebn0_db, rate, generator) -> channel LLRs (B, n)."""


def bpsk_awgn_channel(bits: torch.Tensor, ebn0_db: float, rate: float, generator: torch.Generator) -> torch.Tensor:
    """Default channel: BPSK over AWGN, LLR = 2y / sigma^2."""
    return awgn_llr(bits, ebn0_db, rate, generator)[1]


def draw_words(code: Code, count: int, codewords: str, generator: torch.Generator, G: torch.Tensor | None) -> torch.Tensor:
    """``count`` codewords (count, n) on the generator's device: all-zero or uniform random u G (mod 2)."""
    device = generator.device
    if codewords == "zero":
        return torch.zeros(count, code.n, device=device)
    if codewords == "random":
        messages = torch.randint(0, 2, (count, code.k), generator=generator, device=device).float()
        return torch.remainder(messages @ G.to(device), 2.0)
    raise ConfigError(f"codewords must be 'zero' or 'random', got {codewords!r}")
