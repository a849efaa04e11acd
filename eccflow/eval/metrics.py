"""Error counting as torchmetrics ``Metric``s (shared by the evaluator and the Lightning modules),
and Wilson score intervals."""
from __future__ import annotations

import math

import torch
from torchmetrics import Metric


def wilson_interval(errors: int, trials: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (95% for z = 1.96).

    p_hat = e/N;  centre = (p_hat + z^2/2N) / (1 + z^2/N);
    half-width = z sqrt(p_hat(1 - p_hat)/N + z^2/4N^2) / (1 + z^2/N).
    """
    if trials <= 0:
        return (0.0, 1.0)
    p = errors / trials
    denom = 1.0 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denom
    # exact algebra puts p_hat inside; clamp away rounding at p_hat = 0 or 1 (e.g. hi = 0.9999999 < 1)
    return (min(p, max(0.0, centre - half)), max(p, min(1.0, centre + half)))


class _ErrorRate(Metric):
    """Counts errors and trials; ``compute()`` gives their ratio."""

    full_state_update = False
    higher_is_better = False

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("errors", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("trials", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def compute(self) -> torch.Tensor:
        return self.errors.double() / self.trials.clamp_min(1).double()

    def interval(self) -> tuple[float, float]:
        """Wilson 95% interval of the rate."""
        return wilson_interval(int(self.errors), int(self.trials))


class BitErrorRate(_ErrorRate):
    """BER over all n bits of every word: ``update(bits_hat (B, n), bits (B, n))``."""

    def update(self, bits_hat: torch.Tensor, bits: torch.Tensor) -> None:
        self.errors += (bits_hat != bits).sum()
        self.trials += bits.numel()


class FrameErrorRate(_ErrorRate):
    """FER: a word is in error when any of its bits is: ``update(bits_hat (B, n), bits (B, n))``."""

    def update(self, bits_hat: torch.Tensor, bits: torch.Tensor) -> None:
        self.errors += (bits_hat != bits).any(dim=-1).sum()
        self.trials += bits.shape[0]
