"""Code-aware self-attention over Tanner-graph tokens, with addressable heads.

softmax((Q K^T) / sqrt(d_h) + g) V per head, where g is built from the capped Tanner-graph distance
matrix D (tokens = n variables then m checks):

* ``bias="mask"`` (ECCT): g = 0 where D <= 2 (self, neighbours, second ring), -inf elsewhere.
* ``bias="distance"`` (FECCT): g[h, i, j] = b_h(D_ij), a learned scalar per head and distance
  0..D_max, -inf beyond D_max; no parameter depends on the code.
* ``rings=True`` (AECCT head-partitioned attention, HPSA): the first half of the heads sees only
  D in {0, 1} (variable<->check), the second half only D in {0, 2} (same-type pairs sharing a
  neighbour).

Three implementations compute the same function: ``dense`` (all N x N scores, masked), ``sparse``
(only allowed (query, key) pairs, packed per query into a padded neighbour list) and ``fused`` (the
CPU kernel of :mod:`eccflow.nn.fused_attention`: one pass per query over its allowed keys, heads as
vector lanes, no (B, h, N, N) tensor in torch). ``dense`` runs
``torch.nn.functional.scaled_dot_product_attention`` on CUDA (fused kernels) and the same equation
written out (:func:`explicit_attention`) on the CPU, where it is faster than the SDPA math kernel and
``torch.compile`` can fuse the mask, scale and softmax. Heads carry a
``head_mask`` (heads,) — or (B, heads) while Fisher importance is scored per sample — and can be
removed physically with :meth:`prune_heads`.
"""
from __future__ import annotations

import math
from enum import Enum
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from eccflow.errors import ConfigError
from eccflow.nn.fused_attention import LANES, FusedAttention, fused_attention, key_slots, slot_bias

Linear = Callable[[int, int], nn.Module]


class AttentionBias(str, Enum):
    MASK = "mask"
    DISTANCE = "distance"


class AttentionImpl(str, Enum):
    DENSE = "dense"
    SPARSE = "sparse"
    FUSED = "fused"


class CodeAwareSelfAttention(nn.Module):
    """Multi-head self-attention restricted by the Tanner graph. Input/output (B, N, d_model)."""

    def __init__(
        self,
        d_model: int,
        heads: int,
        bias: str | AttentionBias = AttentionBias.MASK,
        max_distance: int = 2,
        rings: bool = False,
        dropout: float = 0.0,
        linear: Linear = nn.Linear,
    ) -> None:
        super().__init__()
        if heads < 1 or d_model % heads:
            raise ConfigError(f"d_model ({d_model}) must be a positive multiple of heads ({heads})")
        if rings and heads < 2:
            raise ConfigError("head-partitioned attention (rings) needs at least 2 heads")
        self.bias_kind = AttentionBias(bias)
        self.max_distance = 2 if self.bias_kind is AttentionBias.MASK else int(max_distance)
        if self.max_distance < (2 if rings else 1):
            raise ConfigError(f"max_distance must be >= {2 if rings else 1}, got {max_distance}")
        self.heads, self.d_head = heads, d_model // heads
        self.qkv = linear(d_model, 3 * heads * self.d_head)
        self.out = linear(heads * self.d_head, d_model)
        self.dropout = dropout
        # ring per head: -1 = all rings, 1 = first ring, 2 = second ring (AECCT splits heads in half)
        ring = torch.full((heads,), -1, dtype=torch.long)
        if rings:
            ring[: heads // 2], ring[heads // 2:] = 1, 2
        self.register_buffer("head_ring", ring)
        self.register_buffer("head_mask", torch.ones(heads))
        self.distance_bias = (
            nn.Parameter(torch.zeros(heads, self.max_distance + 1)) if self.bias_kind is AttentionBias.DISTANCE else None
        )

    def allowed(self, distance: torch.Tensor) -> torch.Tensor:
        """(heads, N, N) boolean: which (query, key) pairs each head may attend to."""
        within = (distance <= self.max_distance).unsqueeze(0).expand(self.heads, -1, -1)
        ring = self.head_ring.view(-1, 1, 1)
        on_ring = (distance == 0) | (distance.unsqueeze(0) == ring)
        return within & (on_ring | (ring < 0))  # heads without a ring (-1) keep every pair within reach

    def score_bias(self, distance: torch.Tensor) -> torch.Tensor:
        """Additive bias g: (heads, N, N), -inf where a head may not attend."""
        allowed = self.allowed(distance)
        if self.distance_bias is None:
            values = torch.zeros(allowed.shape, device=distance.device)
        else:
            index = distance.clamp(max=self.max_distance).long()
            values = self.distance_bias[:, index]  # (heads, N, N)
        return values.masked_fill(~allowed, float("-inf"))

    def forward(self, x: torch.Tensor, distance: torch.Tensor, impl: str | AttentionImpl = AttentionImpl.DENSE) -> torch.Tensor:
        batch, tokens, _ = x.shape
        if AttentionImpl(impl) is AttentionImpl.FUSED:
            return self._fused_forward(x, distance)
        q, k, v = self.qkv(x).view(batch, tokens, 3, self.heads, self.d_head).permute(2, 0, 3, 1, 4)  # 3 x (B, h, N, dh)
        bias = self.score_bias(distance)
        p = self.dropout if self.training else 0.0
        if AttentionImpl(impl) is AttentionImpl.SPARSE:
            context = sparse_attention(q, k, v, bias, dropout=p)
        elif q.is_cuda:
            context = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype), dropout_p=p)
        else:
            context = explicit_attention(q, k, v, bias.to(q.dtype), dropout=p)
        context = context * _per_sample(self.head_mask).unsqueeze(-1).unsqueeze(-1)
        return self.out(context.transpose(1, 2).reshape(batch, tokens, self.heads * self.d_head))

    def _fused_forward(self, x: torch.Tensor, distance: torch.Tensor) -> torch.Tensor:
        """The ``fused`` implementation (float32 CPU, no attention dropout)."""
        batch, tokens, _ = x.shape
        bias = self.score_bias(distance)
        mask = _per_sample(self.head_mask)
        if not (_plain_linear(self.qkv) and _plain_linear(self.out) and self.heads % LANES == 0):
            context = fused_attention(self.qkv(x), bias, self.heads).view(batch, tokens, self.heads, self.d_head)
            return self.out((context * mask.unsqueeze(1).unsqueeze(-1)).reshape(batch, tokens, -1))
        # Plain projections: permute their weights so Q, K, V arrive head-innermost, (3, d_h, h) per token,
        # as the kernel reads them, and the context leaves in the same order: no layout copy of activations.
        columns = _head_minor_order(self.heads, self.d_head, x.device)
        rows = torch.cat([columns + part * self.heads * self.d_head for part in range(3)])
        qkv_bias = None if self.qkv.bias is None else self.qkv.bias[rows]
        qkv = F.linear(x, self.qkv.weight[rows], qkv_bias).view(batch, tokens, 3, self.d_head, self.heads)
        keys, valid = self._key_slots(bias)
        context = FusedAttention.apply(qkv, keys, slot_bias(bias, keys, valid).contiguous())  # (B, N, d_h, h)
        out_weight = self.out.weight[:, columns]
        if self.head_mask.dim() == 1:  # one mask for the batch: fold it into the output projection's columns
            out_weight = out_weight * self.head_mask.repeat(self.d_head)
        else:
            context = context * mask.view(mask.shape[0], 1, 1, -1)
        return F.linear(context.reshape(batch, tokens, -1), out_weight, self.out.bias)

    def _key_slots(self, bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """:func:`key_slots` of the bias, kept while the allowed pattern (code, heads) stays the same."""
        pattern = torch.isfinite(bias)
        cached = getattr(self, "_slots", None)
        if cached is None or cached[0].shape != pattern.shape or not torch.equal(cached[0], pattern):
            self._slots = cached = (pattern, *key_slots(bias.detach()))
        return cached[1], cached[2]

    @torch.no_grad()
    def prune_heads(self, keep: torch.Tensor | list[int]) -> None:
        """Physically remove every head not in ``keep`` (smaller Q, K, V and output matrices)."""
        keep = torch.as_tensor(keep, dtype=torch.long, device=self.head_mask.device).sort().values
        if keep.numel() == 0:
            raise ConfigError("cannot prune every head of an attention layer (keep at least one)")
        dh = self.d_head
        cols = (keep.view(-1, 1) * dh + torch.arange(dh, device=keep.device)).flatten()
        rows = torch.cat([part * self.heads * dh + cols for part in range(3)])
        _slice_linear(self.qkv, rows=rows)
        _slice_linear(self.out, cols=cols)
        self.head_ring = self.head_ring[keep]
        self.head_mask = self.head_mask[keep]
        if self.distance_bias is not None:
            self.distance_bias = nn.Parameter(self.distance_bias.data[keep])
        self.heads = int(keep.numel())


def explicit_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor,
                       dropout: float = 0.0) -> torch.Tensor:
    """softmax(Q K^T / sqrt(d_h) + g) V written out, (B, h, N, dh) -> (B, h, N, dh); ``bias`` g is (h, N, N)
    with -inf where a head may not attend (every query keeps itself, so no row is all -inf)."""
    scores = torch.matmul(q * (1.0 / math.sqrt(q.shape[-1])), k.transpose(-1, -2)) + bias
    weights = torch.softmax(scores, dim=-1)
    if dropout:
        weights = F.dropout(weights, dropout)
    return torch.matmul(weights, v)


def sparse_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor, dropout: float = 0.0) -> torch.Tensor:
    """Attention over the finite entries of ``bias`` only, (B, h, N, dh) -> (B, h, N, dh).

    Each query's allowed keys (for any head) are packed into a padded neighbour list of width
    K = max allowed keys per query (ELL layout); scores, softmax and the weighted sum run on
    (B, h, N, K) instead of (B, h, N, N). Padding slots carry -inf.
    """
    batch, heads, tokens, dh = q.shape
    order, valid = key_slots(bias)  # (N, K), the same packing as the fused kernel's
    order = order.long()
    width = order.shape[1]
    padded_bias = torch.gather(bias, 2, order.unsqueeze(0).expand(heads, -1, -1)).masked_fill(~valid, float("-inf"))
    flat = order.reshape(-1)
    keys = k[:, :, flat].view(batch, heads, tokens, width, dh)
    values = v[:, :, flat].view(batch, heads, tokens, width, dh)
    scores = torch.einsum("bhnd,bhnkd->bhnk", q, keys) / math.sqrt(dh) + padded_bias
    weights = torch.softmax(scores, dim=-1)
    if dropout:
        weights = F.dropout(weights, dropout)
    return torch.einsum("bhnk,bhnkd->bhnd", weights, values)


def _plain_linear(layer: nn.Module) -> bool:
    return type(layer) is nn.Linear


def _head_minor_order(heads: int, d_head: int, device: torch.device) -> torch.Tensor:
    """Channel permutation (h, d_h) -> (d_h, h): entry d h_count + head holds channel head d_h + d."""
    return (torch.arange(heads, device=device).view(1, -1) * d_head
            + torch.arange(d_head, device=device).view(-1, 1)).reshape(-1)


def _per_sample(mask: torch.Tensor) -> torch.Tensor:
    """A unit mask as (1, units) or, during Fisher scoring, per sample (B, units)."""
    return mask.unsqueeze(0) if mask.dim() == 1 else mask


def _slice_linear(layer: nn.Module, rows: torch.Tensor | None = None, cols: torch.Tensor | None = None) -> None:
    """Keep the given output rows / input columns of a linear layer's weight (and bias)."""
    weight = layer.weight.data
    if rows is not None:
        weight = weight[rows]
        if getattr(layer, "bias", None) is not None:
            layer.bias = nn.Parameter(layer.bias.data[rows].clone())
        layer.out_features = int(rows.numel())
    if cols is not None:
        weight = weight[:, cols]
        layer.in_features = int(cols.numel())
    layer.weight = nn.Parameter(weight.clone())
