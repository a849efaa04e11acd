"""LightningModule for the syndrome-based neural decoder (SBND): BCE between the flip logits f and the flip
target (y_b XOR c codeword-wise, y_b G^+ XOR c G^+ message-wise; :mod:`eccflow.decoders.sbnd`)."""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from eccflow.decoders.base import DecoderOutput
from eccflow.lit.base import DecoderLitModule


class SBNDLitModule(DecoderLitModule):
    def model_step(self, batch: dict[str, Any]) -> tuple[torch.Tensor, DecoderOutput]:
        llr, bits = batch["llr"], batch["bits"]
        logits = self.net.flip_logits(llr)
        loss = F.binary_cross_entropy_with_logits(logits, self.net.flip_target(llr, bits))
        return loss, self.net.decide(llr, logits)
