"""Ternary QAT reports (AECCT): memory footprint with 2-bit packed weights, weight sparsity per layer type."""
from __future__ import annotations

from collections import defaultdict

import torch
from torch import nn

from eccflow.nn.ternary import TernaryLinear, pack_ternary


def footprint(model: nn.Module) -> dict[str, float]:
    """Bytes as FP32 vs exported (ternary weights packed in 2 bits + FP32 scale and bias; the rest FP32)."""
    fp32 = sum(p.numel() for p in model.parameters()) * 4
    ternary_weights = 0
    exported = 0
    for module in model.modules():
        if isinstance(module, TernaryLinear):
            ternary_weights += module.weight.numel()
            exported += pack_ternary(module.ternary()).numel() + 4  # packed bytes + the scale s
    rest = sum(p.numel() for n, p in model.named_parameters() if not (n.endswith(".weight") and _is_ternary(model, n))
               and not n.endswith(".delta")) * 4
    exported += rest
    return {"memory_fp32_bytes": float(fp32), "memory_exported_bytes": float(exported),
            "compression": 1.0 - exported / fp32, "ternary_weight_fraction": ternary_weights / max(1, fp32 // 4)}


def _is_ternary(model: nn.Module, name: str) -> bool:
    return isinstance(model.get_submodule(name.rsplit(".", 1)[0]), TernaryLinear)


def sparsity_by_layer_type(model: nn.Module) -> dict[str, float]:
    """Fraction of zero ternary weights per layer type (qkv, out, up, down), AECCT Fig. 6 analogue."""
    zeros: dict[str, int] = defaultdict(int)
    totals: dict[str, int] = defaultdict(int)
    for name, module in model.named_modules():
        if isinstance(module, TernaryLinear):
            kind = name.rsplit(".", 1)[-1]
            values = module.ternary()
            zeros[kind] += int((values == 0).sum())
            totals[kind] += values.numel()
    return {f"sparsity_{k}": zeros[k] / totals[k] for k in sorted(totals)}


@torch.no_grad()
def load_full_precision(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Start QAT from full-precision weights: every tensor but the new ``delta`` scales must match."""
    missing, unexpected = model.load_state_dict(state, strict=False)
    problems = [k for k in missing if not k.endswith(".delta")] + list(unexpected)
    if problems:
        raise ValueError(f"full-precision weights do not fit the QAT model: {problems[:5]}")
