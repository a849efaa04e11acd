"""LoRA adapters and knowledge distillation for recovering a pruned backbone (SAP paper, recovery).

LoRA on a frozen linear map W: y = W x + b + (alpha / r) B A x, A (r, in) random, B (out, r) zero, so
training starts from the pruned model exactly. Applied to the attention's fused Q/K/V projection and
its output projection. :func:`merge_lora` folds (alpha / r) B A into W (the merged model decodes like
the adapted one up to float rounding).

KD with the unpruned model as teacher, per bit: KL(Bern(p_t) || Bern(p_s)), p = sigmoid(noise logit);
the recovery objective is BCE + lambda * KD.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from eccflow.errors import ConfigError


class LoRALinear(nn.Module):
    """A frozen ``nn.Linear`` plus a trainable rank-``rank`` update scaled by ``alpha / rank``."""

    def __init__(self, base: nn.Linear, rank: int = 8, alpha: float = 16.0) -> None:
        super().__init__()
        if rank < 1:
            raise ConfigError(f"LoRA rank must be >= 1, got {rank}")
        self.base = base
        for p in self.base.parameters():
            p.requires_grad_(False)
        self.rank, self.scale = rank, alpha / rank
        self.lora_a = nn.Parameter(torch.empty(rank, base.in_features))
        self.lora_b = nn.Parameter(torch.zeros(base.out_features, rank))
        nn.init.kaiming_uniform_(self.lora_a, a=math.sqrt(5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + self.scale * F.linear(F.linear(x, self.lora_a), self.lora_b)

    def merged(self) -> nn.Linear:
        """The equivalent plain linear layer W + (alpha / r) B A."""
        out = nn.Linear(self.base.in_features, self.base.out_features, bias=self.base.bias is not None)
        with torch.no_grad():
            out.weight.copy_(self.base.weight + self.scale * self.lora_b @ self.lora_a)
            if self.base.bias is not None:
                out.bias.copy_(self.base.bias)
        return out


def add_lora(model: nn.Module, rank: int = 8, alpha: float = 16.0) -> list[nn.Parameter]:
    """Freeze ``model`` and wrap every attention's ``qkv`` and ``out``; returns the trainable adapter parameters."""
    for p in model.parameters():
        p.requires_grad_(False)
    adapters: list[nn.Parameter] = []
    for block in model.blocks:
        attention = block.attention
        for name in ("qkv", "out"):
            layer = getattr(attention, name)
            if isinstance(layer, LoRALinear):
                raise ConfigError("this model already carries LoRA adapters")
            wrapped = LoRALinear(layer, rank, alpha)
            setattr(attention, name, wrapped)
            adapters += [wrapped.lora_a, wrapped.lora_b]
    return adapters


def merge_lora(model: nn.Module) -> nn.Module:
    """Replace every :class:`LoRALinear` by its merged linear layer (in place); returns ``model``."""
    for block in model.blocks:
        for name in ("qkv", "out"):
            layer = getattr(block.attention, name)
            if isinstance(layer, LoRALinear):
                setattr(block.attention, name, layer.merged())
    for p in model.parameters():
        p.requires_grad_(True)
    return model


def adapter_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Only the adapter tensors (the small file saved and registered on its own)."""
    return {k: v.detach().cpu() for k, v in model.state_dict().items() if "lora_" in k}


def bernoulli_kd(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """Mean over bits of KL(Bern(p_t) || Bern(p_s)), p = sigmoid(logit)."""
    p_t = torch.sigmoid(teacher_logits)
    log_s1, log_s0 = F.logsigmoid(student_logits), F.logsigmoid(-student_logits)
    log_t1, log_t0 = F.logsigmoid(teacher_logits), F.logsigmoid(-teacher_logits)
    return (p_t * (log_t1 - log_s1) + (1 - p_t) * (log_t0 - log_s0)).mean()
