"""Monte-Carlo BER/FER estimation with a frame-error stopping rule.

For each Eb/N0: draw words (random codewords u G, or the all-zero word), send them over the channel,
decode, count errors over all n bits; stop after ``min_frame_errors`` frame errors or ``max_frames``
frames, whichever comes first. Each point is seeded from (seed, point index), so results are
reproducible and independent of the other points in the list.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from enum import Enum
from typing import Callable, Sequence

import torch
from tqdm.auto import tqdm

from eccflow.channels import awgn_llr
from eccflow.codes import Code
from eccflow.decoders.base import DecoderOutput
from eccflow.errors import ConfigError
from eccflow.eval.metrics import BitErrorRate, FrameErrorRate

Channel = Callable[[torch.Tensor, float, float, torch.Generator], torch.Tensor]
"""channel(bits (B, n), ebn0_db, rate, generator) -> channel LLRs (B, n)."""


class Codewords(str, Enum):
    RANDOM = "random"
    ZERO = "zero"


@dataclass
class PointResult:
    """Error statistics at one Eb/N0. Intervals are Wilson 95%."""

    ebn0_db: float
    ber: float
    fer: float
    frames: int
    bit_errors: int
    frame_errors: int
    ber_ci95: tuple[float, float]
    fer_ci95: tuple[float, float]
    neg_ln_ber: float
    neg_ln_ber_ci95: tuple[float, float]
    seconds: float

    def to_dict(self) -> dict:
        return asdict(self)


def _neg_ln(p: float) -> float:
    return -math.log(p) if p > 0 else math.inf


def bpsk_awgn_channel(bits: torch.Tensor, ebn0_db: float, rate: float, generator: torch.Generator) -> torch.Tensor:
    """Default channel: BPSK over AWGN, LLR = 2y / sigma^2."""
    return awgn_llr(bits, ebn0_db, rate, generator)[1]


def _check_positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value != int(value) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def validate_ebn0_list(ebn0_db: Sequence[float]) -> list[float]:
    """Eb/N0 values as floats; the list must be non-empty and finite."""
    values = [float(v) for v in ebn0_db]
    if not values:
        raise ConfigError("the Eb/N0 list is empty: give at least one value in dB, e.g. 4 5 6")
    if not all(math.isfinite(v) for v in values):
        raise ConfigError(f"Eb/N0 values must be finite numbers, got {values}")
    return values


@torch.no_grad()
def evaluate(
    decoder: Callable[[torch.Tensor], DecoderOutput],
    code: Code,
    ebn0_db: Sequence[float],
    *,
    min_frame_errors: int = 100,
    max_frames: int = 1_000_000,
    batch_size: int = 10_000,
    seed: int = 0,
    codewords: str | Codewords = Codewords.RANDOM,
    channel: Channel = bpsk_awgn_channel,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> list[PointResult]:
    """BER/FER of ``decoder`` on ``code`` at each Eb/N0 (dB), one :class:`PointResult` per value."""
    points = validate_ebn0_list(ebn0_db)
    min_frame_errors = _check_positive_int("min_frame_errors", min_frame_errors)
    max_frames = _check_positive_int("max_frames", max_frames)
    batch_size = _check_positive_int("batch_size", batch_size)
    try:
        codewords = Codewords(codewords)
    except ValueError:
        raise ConfigError(f"codewords must be one of {[c.value for c in Codewords]}, got {codewords!r}") from None
    device = torch.device(device)
    G = torch.as_tensor(code.G.copy(), dtype=torch.float32, device=device) if codewords is Codewords.RANDOM else None
    results = []
    for index, ebn0 in enumerate(points):
        generator = torch.Generator(device=device).manual_seed(seed * 1_000_003 + index)
        ber, fer = BitErrorRate().to(device), FrameErrorRate().to(device)
        start = time.perf_counter()
        bar = tqdm(total=max_frames, desc=f"{code.name} {ebn0:g} dB", unit="fr", disable=not progress, leave=False)
        while int(fer.trials) < max_frames and int(fer.errors) < min_frame_errors:
            batch = min(batch_size, max_frames - int(fer.trials))
            if G is None:
                bits = torch.zeros(batch, code.n, device=device)
            else:
                messages = torch.randint(0, 2, (batch, code.k), generator=generator, device=device).float()
                bits = torch.remainder(messages @ G, 2.0)
            llr = channel(bits, ebn0, code.rate, generator)
            decided = decoder(llr).bits.to(bits.dtype)
            ber.update(decided, bits)
            fer.update(decided, bits)
            bar.update(batch)
            bar.set_postfix(frame_errors=int(fer.errors))
        bar.close()
        b_lo, b_hi = ber.interval()
        results.append(
            PointResult(
                ebn0_db=ebn0,
                ber=float(ber.compute()),
                fer=float(fer.compute()),
                frames=int(fer.trials),
                bit_errors=int(ber.errors),
                frame_errors=int(fer.errors),
                ber_ci95=(b_lo, b_hi),
                fer_ci95=fer.interval(),
                neg_ln_ber=_neg_ln(float(ber.compute())),
                neg_ln_ber_ci95=(_neg_ln(b_hi), _neg_ln(b_lo)),
                seconds=time.perf_counter() - start,
            )
        )
    return results
