"""Position-wise feed-forward layer with addressable hidden channels.

FFN(x) = W_2 (m * act(W_1 x + b_1)) + b_2, where m is the per-channel ``channel_mask`` (1 = kept)
that Fisher pruning differentiates through; :meth:`prune_channels` removes channels physically.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from eccflow.errors import ConfigError
from eccflow.nn.attention import _slice_linear

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {"gelu": nn.GELU, "relu": nn.ReLU}


class FeedForward(nn.Module):
    def __init__(self, d_model: int, d_ff: int, activation: str = "gelu", dropout: float = 0.0,
                 linear: Callable[[int, int], nn.Module] = nn.Linear) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ConfigError(f"unknown activation {activation!r}; choose one of {sorted(ACTIVATIONS)}")
        self.up = linear(d_model, d_ff)
        self.act = ACTIVATIONS[activation]()
        self.down = linear(d_ff, d_model)
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("channel_mask", torch.ones(d_ff))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = self.dropout(self.act(self.up(x)))
        if self.channel_mask.dim() == 1 and type(self.down) is nn.Linear:
            # one mask for the batch: W_2 (m * h) = (W_2 diag m) h, scaling 32 x d_ff weights, not B x N x d_ff activations
            return F.linear(hidden, self.down.weight * self.channel_mask, self.down.bias)
        mask = self.channel_mask if self.channel_mask.dim() == 1 else self.channel_mask.unsqueeze(1)  # (B, 1, d_ff)
        return self.down(hidden * mask)

    @torch.no_grad()
    def prune_channels(self, keep: torch.Tensor | list[int]) -> None:
        """Physically keep only the hidden channels in ``keep``."""
        keep = torch.as_tensor(keep, dtype=torch.long, device=self.channel_mask.device).sort().values
        if keep.numel() == 0:
            raise ConfigError("cannot prune every FFN channel (keep at least one)")
        _slice_linear(self.up, rows=keep)
        _slice_linear(self.down, cols=keep)
        self.channel_mask = self.channel_mask[keep]
