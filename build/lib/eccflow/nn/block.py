"""Transformer encoder block over Tanner-graph tokens: attention + FFN with residuals.

Pre-LN (ECCT): x + Attn(LN(x)), then x + FFN(LN(x)). Post-LN (AECCT): LN(x + Attn(x)), LN(x + FFN(x)).
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from eccflow.errors import ConfigError
from eccflow.nn.attention import CodeAwareSelfAttention
from eccflow.nn.feedforward import FeedForward


class EncoderBlock(nn.Module):
    def __init__(self, d_model: int, heads: int, d_ff: int, norm: str = "pre", activation: str = "gelu",
                 bias: str = "mask", max_distance: int = 2, rings: bool = False, dropout: float = 0.0,
                 linear: Callable[[int, int], nn.Module] = nn.Linear) -> None:
        super().__init__()
        if norm not in ("pre", "post"):
            raise ConfigError(f"norm must be 'pre' or 'post', got {norm!r}")
        self.pre_norm = norm == "pre"
        self.attention = CodeAwareSelfAttention(d_model, heads, bias, max_distance, rings, dropout, linear)
        self.ffn = FeedForward(d_model, d_ff, activation, dropout, linear)
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)

    def forward(self, x: torch.Tensor, distance: torch.Tensor, impl: str = "dense") -> torch.Tensor:
        if self.pre_norm:
            x = x + self.attention(self.norm1(x), distance, impl)
            return x + self.ffn(self.norm2(x))
        x = self.norm1(x + self.attention(x, distance, impl))
        return self.norm2(x + self.ffn(x))
