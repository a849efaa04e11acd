"""Bit-interleaved coded modulation (BICM) over complex AWGN.

Chain for codeword bits c (B, n): random interleaver pi -> Gray mapper (b bits per symbol) ->
y = x + w, w ~ CN(0, N0) -> bit-LLR demapper (exact log-MAP or max-log) -> pi^{-1} -> LLRs (B, n),
positive means bit 0 (as for BPSK, ``eccflow.channels.awgn``).

Eb/N0 convention: E_s = 1 and E_s / N0 = R b Eb/N0, so N0 = 1 / (R b 10^(EbN0_dB / 10)).
For BPSK (M = 2) this gives N0 / 2 = sigma^2 = 1 / (2 R 10^(EbN0_dB / 10)) and LLR = 2 Re(y) / sigma^2,
the same as ``awgn_llr``.
"""
from __future__ import annotations

import math

import torch

from eccflow.channels.modulation import Constellation, Demapping, check_noise_variance, parse_demapping
from eccflow.errors import ConfigError


def ebn0_db_to_n0(ebn0_db: float | torch.Tensor, rate: float, bits_per_symbol: int) -> float | torch.Tensor:
    """Complex noise variance N0 = 1 / (R b 10^(EbN0_dB / 10)) for unit symbol energy.

    Returns a float, or a tensor shaped like ``ebn0_db`` when that is a tensor.
    """
    if not 0 < rate <= 1:
        raise ConfigError(f"code rate must lie in (0, 1], got {rate!r}")
    if isinstance(bits_per_symbol, bool) or not isinstance(bits_per_symbol, int) or bits_per_symbol < 1:
        raise ConfigError(f"bits_per_symbol must be a positive integer, got {bits_per_symbol!r}")
    finite = bool(torch.isfinite(ebn0_db).all()) if isinstance(ebn0_db, torch.Tensor) else math.isfinite(ebn0_db)
    if not finite:
        raise ConfigError(f"Eb/N0 must be finite (dB), got {ebn0_db!r}")
    if isinstance(ebn0_db, torch.Tensor):
        n0 = 1.0 / (rate * bits_per_symbol * torch.pow(10.0, ebn0_db / 10.0))
    else:
        n0 = 1.0 / (rate * bits_per_symbol * 10.0 ** (ebn0_db / 10.0))
    check_noise_variance(n0)
    return n0


def complex_awgn(
    symbols: torch.Tensor, n0: float | torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """y = x + w, w ~ CN(0, N0) (N0 / 2 per real dimension); x complex (...), n0 float or a broadcastable tensor."""
    if not torch.is_complex(symbols):
        raise ConfigError(f"symbols must be a complex tensor, got dtype {symbols.dtype}")
    check_noise_variance(n0)
    noise = torch.randn(symbols.shape, generator=generator, device=symbols.device, dtype=symbols.dtype)
    scale = n0.to(symbols.real.dtype).sqrt() if isinstance(n0, torch.Tensor) else math.sqrt(n0)
    return symbols + scale * noise


class RandomInterleaver:
    """A fixed random permutation pi of ``length`` positions, drawn from ``seed``.

    ``interleave(x)[..., i] = x[..., pi[i]]``;  ``deinterleave`` applies pi^{-1}. Both act on the last axis.
    """

    def __init__(self, length: int, seed: int = 0) -> None:
        if isinstance(length, bool) or not isinstance(length, int) or length < 1:
            raise ConfigError(f"interleaver length must be a positive integer, got {length!r}")
        self.length = length
        self.permutation = torch.randperm(length, generator=torch.Generator().manual_seed(seed))
        self.inverse = torch.argsort(self.permutation)

    def _check(self, x: torch.Tensor) -> None:
        if x.dim() == 0 or x.shape[-1] != self.length:
            raise ConfigError(f"interleaver of length {self.length} got a tensor of shape {tuple(x.shape)}")

    def interleave(self, x: torch.Tensor) -> torch.Tensor:
        """(..., length) -> (..., length), entry i taken from position pi[i]."""
        self._check(x)
        return x[..., self.permutation.to(x.device)]

    def deinterleave(self, x: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`interleave`."""
        self._check(x)
        return x[..., self.inverse.to(x.device)]


class BICMChannel:
    """Codeword bits (B, n) -> interleave -> map -> complex AWGN -> demap -> deinterleave -> LLRs (B, n).

    When n is not a multiple of b = log2 M, the interleaved word is padded at its end with
    ceil(n / b) b - n uniformly random bits (drawn from the same generator) so that the last symbol is a
    uniformly distributed point like every other; their LLRs are dropped. N0 is set from the code rate
    alone (the filler's energy is not charged to Eb). Call signature matches the
    Monte-Carlo channel protocol ``channel(bits, ebn0_db, rate, generator) -> llr``.
    """

    def __init__(
        self,
        constellation: Constellation,
        interleaver: RandomInterleaver,
        demapping: str | Demapping = Demapping.EXACT,
    ) -> None:
        self.constellation = constellation
        self.interleaver = interleaver
        self.demapping = parse_demapping(demapping)

    @property
    def n(self) -> int:
        """Codeword length the channel accepts."""
        return self.interleaver.length

    def __call__(
        self,
        bits: torch.Tensor,
        ebn0_db: float | torch.Tensor,
        rate: float,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Bit-LLRs (B, n) of codeword bits (B, n); ``ebn0_db`` is a float or a per-word tensor (B,)."""
        if bits.dim() != 2 or bits.shape[1] != self.n:
            raise ConfigError(f"BICM channel expects codeword bits of shape (B, {self.n}), got {tuple(bits.shape)}")
        batch = bits.shape[0]
        if isinstance(ebn0_db, torch.Tensor):
            if ebn0_db.dim() > 1 or (ebn0_db.dim() == 1 and ebn0_db.shape[0] != batch):
                raise ConfigError(
                    f"per-word Eb/N0 must be a scalar or have shape ({batch},), got {tuple(ebn0_db.shape)}"
                )
            ebn0_db = ebn0_db.to(device=bits.device, dtype=torch.float32).reshape(-1, 1)
        b = self.constellation.bits_per_symbol
        n0 = ebn0_db_to_n0(ebn0_db, rate, b)
        interleaved = self.interleaver.interleave(bits)
        pad = -self.n % b
        if pad:
            filler = torch.randint(0, 2, (batch, pad), generator=generator, device=bits.device).to(bits.dtype)
            interleaved = torch.cat([interleaved, filler], dim=1)
        y = complex_awgn(self.constellation.map(interleaved), n0, generator)
        llr = self.constellation.demap(y, n0, self.demapping)[:, : self.n]
        return self.interleaver.deinterleave(llr)
