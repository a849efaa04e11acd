"""LightningModule for EW-GNN: multiloss BCE averaged over iterations (paper eq. 13-14).

Loss = (1/T) sum_t BCE(sigmoid(-x_v^(t)), x_v) (the neural BP multiloss); a batch that carries
``"code"`` (a code mixture) is decoded on that code's Tanner graph, kept per code name by the network.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from eccflow.codes import get_code
from eccflow.decoders.base import DecoderOutput
from eccflow.lit.neural_bp import NeuralBPLitModule


class EWGNNLitModule(NeuralBPLitModule):
    def model_step(self, batch: dict[str, Any]) -> tuple[torch.Tensor, DecoderOutput]:
        name = batch.get("code")
        code = None if name is None or name == self.net.code.name else get_code(name)
        out = self.net(batch["llr"], return_all=True, code=code)
        posteriors = out.llr_per_iteration if self.multiloss else out.llr.unsqueeze(0)
        target = batch["bits"].unsqueeze(0).expand_as(posteriors)
        loss = F.binary_cross_entropy_with_logits(-posteriors, target)
        return loss, out
