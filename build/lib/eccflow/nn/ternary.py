"""AAP ternary linear layer with INT8 absmax activations (AECCT quantization-aware training).

Weights: gamma = percentile(|W|, p) (no gradient), delta learnable (init 1), s = gamma * delta,
W_t = RoundClip(W / (s + eps), -1, 1) in {-1, 0, 1}, effective weight s * W_t; straight-through
gradients (d(s W_t) / d W = 1 for every weight) so W keeps training in full precision.
``learn_delta=False`` is the plain absolute-percentile ablation (delta frozen at 1).
Scale gradient (``scale_grad``): ``ste`` passes the straight-through estimator through the whole
RoundClip, so d(s W_t)/ds = W_t - W/s for every weight, also the clipped ones (|W| > s), whose
-W/s term outweighs W_t and has the opposite sign (on BCH(31,16) every delta drifted down, the opposite
of the AECCT paper's delta > 1); ``lsq`` passes it through the rounding only
(the clip keeps its true derivative, as in LSQ, Esser et al. 2020): d(s W_t)/ds = W_t - W/s inside
the clip range and W_t outside. The weight gradient is the identity in both (BitNet-style STE).
Activations: Quant(x) = RoundClip(x * Q_b / ||x||_inf, -Q_b, Q_b) * ||x||_inf / Q_b per token,
Q_b = 127, with a straight-through estimator. :func:`pack_ternary` stores W_t in 2 bits per weight.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from eccflow.errors import ConfigError

_EPS = 1e-8
Q_B = 127.0
SCALE_GRADS = ("ste", "lsq")


def _ste(x: torch.Tensor, quantized: torch.Tensor) -> torch.Tensor:
    """Forward ``quantized``, backward identity."""
    return x + (quantized - x).detach()


def quantize_activations(x: torch.Tensor) -> torch.Tensor:
    """INT8 absmax fake-quantisation per token (last dimension), straight-through."""
    scale = x.detach().abs().amax(dim=-1, keepdim=True).clamp_min(_EPS) / Q_B
    return _ste(x, torch.clamp(torch.round(x / scale), -Q_B, Q_B) * scale)


class TernaryLinear(nn.Linear):
    """``nn.Linear`` whose forward uses AAP ternary weights and INT8 activations."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, percentile: float = 0.5,
                 learn_delta: bool = True, scale_grad: str = "ste") -> None:
        super().__init__(in_features, out_features, bias=bias)
        if not 0 < percentile < 1:
            raise ConfigError(f"AAP percentile must lie in (0, 1), got {percentile}")
        if scale_grad not in SCALE_GRADS:
            raise ConfigError(f"AAP scale_grad must be one of {SCALE_GRADS}, got {scale_grad!r}")
        self.percentile = float(percentile)
        self.scale_grad = scale_grad
        self.delta = nn.Parameter(torch.ones(()), requires_grad=learn_delta)

    def scale(self) -> torch.Tensor:
        gamma = torch.quantile(self.weight.detach().abs().flatten().float(), self.percentile)
        return gamma * self.delta

    def ternary(self) -> torch.Tensor:
        """W_t in {-1, 0, 1} (no gradient)."""
        s = self.scale().detach()
        return torch.clamp(torch.round(self.weight.detach() / (s + _EPS)), -1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.scale()
        normalized = self.weight / (s + _EPS)
        if self.scale_grad == "ste":
            weight = s * _ste(normalized, torch.clamp(torch.round(normalized), -1, 1))
        else:  # lsq: STE through the rounding only; clipped weights keep an identity weight gradient
            clipped = torch.clamp(normalized, -1, 1)
            outside = (normalized.detach().abs() > 1).to(self.weight.dtype)
            weight = s * _ste(clipped, torch.round(clipped)) + (self.weight - self.weight.detach()) * outside
        return F.linear(quantize_activations(x), weight, self.bias)


def ternary_factory(percentile: float = 0.5, learn_delta: bool = True, scale_grad: str = "ste"):
    """A ``linear(in, out)`` builder for :class:`eccflow.decoders.transformer.TransformerDecoder`."""
    return lambda fan_in, fan_out: TernaryLinear(fan_in, fan_out, percentile=percentile, learn_delta=learn_delta,
                                                 scale_grad=scale_grad)


def pack_ternary(values: torch.Tensor) -> torch.Tensor:
    """Pack {-1, 0, 1} into 2 bits each (0 -> 0b00, 1 -> 0b01, -1 -> 0b10), four per uint8."""
    codes = torch.where(values < 0, 2, values.to(torch.int64)).flatten().to(torch.uint8)
    codes = F.pad(codes, (0, (-codes.numel()) % 4))
    quads = codes.view(-1, 4)
    return quads[:, 0] | (quads[:, 1] << 2) | (quads[:, 2] << 4) | (quads[:, 3] << 6)


def unpack_ternary(packed: torch.Tensor, count: int) -> torch.Tensor:
    """Inverse of :func:`pack_ternary` for the first ``count`` values."""
    codes = torch.stack([(packed >> shift) & 3 for shift in (0, 2, 4, 6)], dim=1).flatten()[:count].to(torch.int64)
    return torch.where(codes == 2, -1, codes).to(torch.float32)
