"""Error counting as torchmetrics ``Metric``s, shared by the Monte-Carlo evaluator and the Lightning
modules' validation. Intervals: :mod:`eccflow.eval.intervals` (frame-clustered for BER, Wilson for FER)."""
from __future__ import annotations

import torch
from torchmetrics import Metric

from eccflow.eval.intervals import clustered_rate_interval, wilson_interval


def frame_bit_errors(bits_hat: torch.Tensor, bits: torch.Tensor) -> torch.Tensor:
    """Bit errors of each frame, (B,) from decisions and truth (B, n)."""
    return (bits_hat != bits).reshape(-1, bits.shape[-1]).sum(dim=-1)


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


class BitErrorRate(_ErrorRate):
    """BER over all n bits of every word: ``update(bits_hat (B, n), bits (B, n))``.

    Also keeps the frame count and the sum of squared per-frame bit-error counts, so that
    :meth:`interval` treats the frame, not the bit, as the sampling unit.
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("frames", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("squared_errors", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, bits_hat: torch.Tensor, bits: torch.Tensor) -> None:
        self.update_frame_errors(frame_bit_errors(bits_hat, bits), bits.shape[-1])

    def update_frame_errors(self, per_frame: torch.Tensor, bits_per_frame: int) -> None:
        """Add frames given their bit-error counts (frames,) out of ``bits_per_frame`` bits each."""
        per_frame = per_frame.long()
        self.errors += per_frame.sum()
        self.squared_errors += (per_frame * per_frame).sum()
        self.trials += per_frame.numel() * bits_per_frame
        self.frames += per_frame.numel()

    def interval(self) -> tuple[float, float]:
        """Frame-clustered 95% interval (Korn & Graubard effective-size Wilson)."""
        frames = int(self.frames)
        bits_per_frame = int(self.trials) // frames if frames else 1
        return clustered_rate_interval(int(self.errors), int(self.squared_errors), frames, bits_per_frame)


class FrameErrorRate(_ErrorRate):
    """FER: a word is in error when any of its bits is: ``update(bits_hat (B, n), bits (B, n))``."""

    def update(self, bits_hat: torch.Tensor, bits: torch.Tensor) -> None:
        self.errors += (bits_hat != bits).any(dim=-1).sum()
        self.trials += bits.shape[0]

    def interval(self) -> tuple[float, float]:
        """Wilson 95% interval."""
        return wilson_interval(int(self.errors), int(self.trials))
