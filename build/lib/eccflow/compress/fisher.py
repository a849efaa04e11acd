"""Fisher structured pruning of transformer decoders (Kwon et al. 2022, as used by the SAP paper).

Every attention head and FFN channel carries a mask variable m = 1. Fisher importance of unit i on a
calibration stream: I_i = sum_s (dL_s / dm_i)^2 with L_s the per-sample BCE (the masks are made
per-sample for one backward pass, so the sum runs over samples, not batches). The mask search keeps
the subset with the largest total importance whose FLOPs fit the budget: for every number of kept
heads (most important first) the rest of the budget is filled with the most important channels.
Unit costs come from the same FLOP counter as :func:`eccflow.decoders.flops.flops_per_frame`, so the
pruned model meets the budget up to one unit's cost. :func:`apply_mask` removes pruned units physically.
"""
from __future__ import annotations

import copy
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

import torch
import torch.nn.functional as F

from eccflow.decoders.flops import flops_per_frame
from eccflow.decoders.transformer import TransformerDecoder, noise_target
from eccflow.errors import ConfigError


@dataclass
class UnitMask:
    """Kept head and FFN-channel indices per block, for a backbone with ``heads`` heads and ``d_ff`` channels."""

    heads: list[list[int]]
    channels: list[list[int]]
    num_heads: int
    d_ff: int

    def validate(self, model: TransformerDecoder) -> None:
        """Clear error when this mask does not fit ``model``'s blocks."""
        blocks = model.blocks
        if len(self.heads) != len(blocks) or len(self.channels) != len(blocks):
            raise ConfigError(f"mask has {len(self.heads)} head lists and {len(self.channels)} channel lists; "
                              f"the backbone has {len(blocks)} blocks")
        for i, block in enumerate(blocks):
            heads, channels = block.attention.head_mask.numel(), block.ffn.channel_mask.numel()
            if (heads, channels) != (self.num_heads, self.d_ff):
                raise ConfigError(f"mask is for {self.num_heads} heads / {self.d_ff} FFN channels per block; block {i} "
                                  f"has {heads} / {channels} (already pruned, or another backbone)")
            for kind, kept, size in (("head", self.heads[i], heads), ("channel", self.channels[i], channels)):
                if not kept or len(set(kept)) != len(kept) or min(kept) < 0 or max(kept) >= size:
                    raise ConfigError(f"block {i}: kept {kind} indices {kept} must be distinct, non-empty, in 0..{size - 1}")

    def to_json(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(asdict(self)))

    @classmethod
    def from_json(cls, path: str | Path) -> "UnitMask":
        try:
            data = json.loads(Path(path).read_text())
            return cls(heads=data["heads"], channels=data["channels"], num_heads=int(data["num_heads"]), d_ff=int(data["d_ff"]))
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise ConfigError(f"mask file {path} is unreadable or malformed ({type(err).__name__}: {err})") from None

    def as_tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Binary masks (blocks, heads) and (blocks, d_ff)."""
        heads = torch.zeros(len(self.heads), self.num_heads)
        channels = torch.zeros(len(self.channels), self.d_ff)
        for i, (h, c) in enumerate(zip(self.heads, self.channels)):
            heads[i, h], channels[i, c] = 1.0, 1.0
        return heads, channels

    def jaccard(self, other: "UnitMask") -> float:
        """|A & B| / |A | B| over all kept units (heads and channels, per block)."""
        a = torch.cat([t.flatten() for t in self.as_tensors()]).bool()
        b = torch.cat([t.flatten() for t in other.as_tensors()]).bool()
        return float((a & b).sum() / (a | b).sum().clamp_min(1))


def fisher_importance(model: TransformerDecoder, batches: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    """I = sum_s (dL_s/dm)^2 for heads (blocks, heads) and channels (blocks, d_ff); batches of (llr, bits)."""
    was_training = model.training
    model.eval()
    blocks = model.blocks
    head_scores = torch.zeros(len(blocks), blocks[0].attention.heads)
    channel_scores = torch.zeros(len(blocks), blocks[0].ffn.channel_mask.numel())
    saved = [(b.attention.head_mask, b.ffn.channel_mask) for b in blocks]
    try:
        for llr, bits in batches:
            count = llr.shape[0]
            masks = []
            for block, (head_mask, channel_mask) in zip(blocks, saved):
                block.attention.head_mask = head_mask.expand(count, -1).clone().requires_grad_(True)
                block.ffn.channel_mask = channel_mask.expand(count, -1).clone().requires_grad_(True)
                masks += [block.attention.head_mask, block.ffn.channel_mask]
            logits = model.logits(llr)
            per_sample = F.binary_cross_entropy_with_logits(logits, noise_target(llr, bits), reduction="none").mean(dim=1)
            grads = torch.autograd.grad(per_sample.sum(), masks)
            for i in range(len(blocks)):
                head_scores[i] += grads[2 * i].detach().pow(2).sum(0)
                channel_scores[i] += grads[2 * i + 1].detach().pow(2).sum(0)
    finally:
        for block, (head_mask, channel_mask) in zip(blocks, saved):
            block.attention.head_mask, block.ffn.channel_mask = head_mask, channel_mask
        model.train(was_training)
    return head_scores, channel_scores


def unit_costs(model: TransformerDecoder) -> tuple[int, int, int]:
    """(full FLOPs per frame, FLOPs of one head, FLOPs of one FFN channel), by the FLOP counter."""
    n = model.code.n
    full = flops_per_frame(model, n)
    probe = copy.deepcopy(model)
    block = probe.blocks[0]
    block.attention.prune_heads(list(range(1, block.attention.heads)))
    head = full - flops_per_frame(probe, n)
    probe = copy.deepcopy(model)
    block = probe.blocks[0]
    block.ffn.prune_channels(list(range(1, block.ffn.channel_mask.numel())))
    channel = full - flops_per_frame(probe, n)
    return full, head, channel


def search_mask(head_scores: torch.Tensor, channel_scores: torch.Tensor, full_flops: int, head_flops: int,
                channel_flops: int, flops_keep: float) -> UnitMask:
    """Most important units within ``flops_keep * full_flops`` (each block keeps >= 1 head and channel)."""
    if not 0 < flops_keep <= 1:
        raise ConfigError(f"the FLOPs budget (fraction kept) must lie in (0, 1], got {flops_keep}")
    blocks, num_heads = head_scores.shape
    d_ff = channel_scores.shape[1]
    removable = full_flops - blocks * num_heads * head_flops - blocks * d_ff * channel_flops  # embeddings, norms, head
    budget = flops_keep * full_flops - removable - blocks * (head_flops + channel_flops)  # after the mandatory units
    if budget < 0:
        raise ConfigError(f"a FLOPs budget of {flops_keep:.0%} cannot keep one head and one channel per block")
    # mandatory: the best head and channel of each block; the rest compete globally
    best_head, best_channel = head_scores.argmax(1), channel_scores.argmax(1)
    head_pool = [(float(head_scores[b, h]), b, h) for b in range(blocks) for h in range(num_heads) if h != best_head[b]]
    channel_pool = [(float(channel_scores[b, c]), b, c) for b in range(blocks) for c in range(d_ff) if c != best_channel[b]]
    head_pool.sort(reverse=True)
    channel_pool.sort(reverse=True)
    channel_prefix = torch.tensor([0.0] + [s for s, _, _ in channel_pool]).cumsum(0)
    head_prefix = torch.tensor([0.0] + [s for s, _, _ in head_pool]).cumsum(0)
    best = (-1.0, 0, 0)
    for kept_heads in range(len(head_pool) + 1):
        left = budget - kept_heads * head_flops
        if left < 0:
            break
        kept_channels = min(len(channel_pool), int(left // channel_flops))
        total = float(head_prefix[kept_heads] + channel_prefix[kept_channels])
        if total > best[0]:
            best = (total, kept_heads, kept_channels)
    _, kept_heads, kept_channels = best
    heads = [[int(best_head[b])] for b in range(blocks)]
    channels = [[int(best_channel[b])] for b in range(blocks)]
    for _, b, h in head_pool[:kept_heads]:
        heads[b].append(h)
    for _, b, c in channel_pool[:kept_channels]:
        channels[b].append(c)
    return UnitMask([sorted(h) for h in heads], [sorted(c) for c in channels], num_heads, d_ff)


def apply_mask(model: TransformerDecoder, mask: UnitMask) -> TransformerDecoder:
    """Physically remove the units ``mask`` drops (in place); returns ``model``."""
    mask.validate(model)
    for block, heads, channels in zip(model.blocks, mask.heads, mask.channels):
        block.attention.prune_heads(heads)
        block.ffn.prune_channels(channels)
    return model


def network_size(net: torch.nn.Module, n: int) -> dict[str, float]:
    """FLOPs per frame of length ``n``, parameter count and parameter bytes of ``net``."""
    return {"flops": float(flops_per_frame(net, n)), "params": float(sum(p.numel() for p in net.parameters())),
            "memory_bytes": float(sum(p.numel() * p.element_size() for p in net.parameters()))}


def derive_mask(model: TransformerDecoder, ebn0_db: list[float], frames: int, batch_size: int, seed: int,
                flops_keep: float) -> UnitMask:
    """Fisher importance on a fixed zero-codeword stream of ``model.code`` at ``ebn0_db``, then the search."""
    from eccflow.data.awgn import fixed_stream

    batches = [(b["llr"], b["bits"]) for e in ebn0_db for b in fixed_stream(model.code, e, frames, batch_size, "zero", seed)]
    heads, channels = fisher_importance(model, batches)
    full, head_cost, channel_cost = unit_costs(model)
    return search_mask(heads, channels, full, head_cost, channel_cost, flops_keep=flops_keep)


CALIBRATION_SEED_OFFSET = 7919  # the calibration words are not the training stream drawn from the same seed


def calibrated_mask(model: TransformerDecoder, settings: Mapping[str, Any], seed: int,
                    where: str) -> tuple[UnitMask, float]:
    """(mask, seconds) from a stage's calibration settings: ``flops_reduction`` in (0, 1) of the FLOPs removed,
    importance on ``calibration_frames`` zero codewords per ``calibration_ebn0_db`` (``calibration_batch_size``
    at a time); ``where`` names the settings in errors."""
    reduction = settings["flops_reduction"]
    if isinstance(reduction, bool) or not isinstance(reduction, (int, float)) or not 0 < reduction < 1:
        raise ConfigError(f"{where}.flops_reduction must lie in (0, 1), got {reduction!r}")
    start = time.perf_counter()
    mask = derive_mask(model, settings["calibration_ebn0_db"], settings["calibration_frames"],
                       settings["calibration_batch_size"], seed + CALIBRATION_SEED_OFFSET, flops_keep=1.0 - reduction)
    return mask, time.perf_counter() - start
