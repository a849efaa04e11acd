"""LightningModule for recovering a pruned transformer: LoRA adapters (or all weights) trained on
BCE + lambda * KD against the unpruned teacher (SAP paper, recovery; :mod:`eccflow.compress.lora`)."""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from eccflow.compress.lora import bernoulli_kd
from eccflow.decoders.base import DecoderOutput
from eccflow.decoders.transformer import decision, noise_target
from eccflow.lit.transformer import TransformerLitModule


class RecoveryLitModule(TransformerLitModule):
    def __init__(self, net: nn.Module, net_config: dict[str, Any], code: str, teacher: nn.Module | None = None,
                 kd_lambda: float = 1.0, **kwargs: Any) -> None:
        super().__init__(net, net_config, code, **kwargs)
        self.kd_lambda = float(kd_lambda)
        self._teacher = [teacher.eval().requires_grad_(False)] if teacher is not None else []  # not a submodule: never checkpointed

    def model_step(self, batch: dict[str, Any]) -> tuple[torch.Tensor, DecoderOutput]:
        llr, bits = batch["llr"], batch["bits"]
        logits = self.net.logits(llr)
        loss = F.binary_cross_entropy_with_logits(logits, noise_target(llr, bits))
        if self._teacher and self.kd_lambda:
            teacher = self._teacher[0].to(llr.device)
            with torch.no_grad():
                target = teacher.logits(llr)
            loss = loss + self.kd_lambda * bernoulli_kd(logits, target)
        return loss, decision(llr, logits)
