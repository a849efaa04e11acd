"""LightningModule for neural BP / min-sum: multiloss BCE over iterations (Nachmani et al. 2018).

Loss = (1/L) sum_l BCE(sigmoid(-L_v^(l)), x_v) over the posteriors L^(l) of every iteration
(only the last with ``multiloss=False``); sigmoid(-llr) is P(bit = 1).
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from eccflow.decoders.base import DecoderOutput
from eccflow.lit.base import DecoderLitModule
from eccflow.lit.checkpoint import load_decoder  # noqa: F401  (registered models name this loader)


class NeuralBPLitModule(DecoderLitModule):
    def __init__(self, net: nn.Module, net_config: dict[str, Any], code: str, multiloss: bool = True, **kwargs: Any) -> None:
        super().__init__(net, net_config, code, **kwargs)
        self.multiloss = multiloss

    def model_step(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, DecoderOutput]:
        out = self.net(batch["llr"], return_all=True)
        posteriors = out.llr_per_iteration if self.multiloss else out.llr.unsqueeze(0)
        target = batch["bits"].unsqueeze(0).expand_as(posteriors)
        loss = F.binary_cross_entropy_with_logits(-posteriors, target)
        return loss, out
