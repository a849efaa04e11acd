"""BPSK over AWGN.

Convention (``shared/papers/README.md``): x_s = 1 - 2x, y = x_s + z, z ~ N(0, sigma^2),
sigma^2 = 1 / (2 R 10^(EbN0_dB / 10)), channel LLR = 2 y / sigma^2 (positive means bit 0).
"""
from __future__ import annotations

import math

import torch


def ebn0_db_to_sigma(ebn0_db: float | torch.Tensor, rate: float) -> float | torch.Tensor:
    """Noise standard deviation: sigma = (2 R 10^(EbN0/10))^(-1/2)."""
    if not 0 < rate <= 1:
        raise ValueError(f"code rate must lie in (0, 1], got {rate}")
    if isinstance(ebn0_db, torch.Tensor):
        return (2.0 * rate * torch.pow(10.0, ebn0_db / 10.0)).rsqrt()
    return 1.0 / math.sqrt(2.0 * rate * 10.0 ** (ebn0_db / 10.0))


def bpsk(bits: torch.Tensor) -> torch.Tensor:
    """BPSK symbols x_s = 1 - 2x."""
    return 1.0 - 2.0 * bits.to(torch.get_default_dtype())


def awgn_llr(
    bits: torch.Tensor,
    ebn0_db: float | torch.Tensor,
    rate: float,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Transmit codeword bits (B, n) over BPSK-AWGN; returns ``(y, llr)`` with llr = 2y / sigma^2.

    ``ebn0_db`` is a float or a per-word tensor of shape (B,).
    """
    sigma = ebn0_db_to_sigma(ebn0_db, rate)
    if isinstance(sigma, torch.Tensor):
        sigma = sigma.to(bits.device).reshape(-1, *([1] * (bits.dim() - 1)))
    x = bpsk(bits)
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    y = x + sigma * noise
    return y, 2.0 * y / sigma**2


def hard_decision(llr: torch.Tensor) -> torch.Tensor:
    """Bits from LLRs: 1 where llr < 0."""
    return (llr < 0).to(llr.dtype)
