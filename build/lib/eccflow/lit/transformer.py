"""LightningModule for the transformer family (ECCT / FECCT / AECCT).

Loss: BCE between the noise logits f (B, n) and the multiplicative-noise target bin(llr) XOR x
(ECCT paper); the decoder output follows from f (``eccflow.decoders.transformer.decision``).
A universal model trained on a code mixture receives batches that carry ``"code"``; the module
keeps one :class:`TokenGraph` per code name.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from eccflow.codes import get_code
from eccflow.decoders.base import DecoderOutput
from eccflow.decoders.transformer import TokenGraph, decision, noise_target
from eccflow.lit.base import DecoderLitModule


class TransformerLitModule(DecoderLitModule):
    def __init__(self, net: nn.Module, net_config: dict[str, Any], code: str, **kwargs: Any) -> None:
        super().__init__(net, net_config, code, **kwargs)
        self._graphs: dict[str, TokenGraph] = {}

    def graph_for(self, name: str | None) -> TokenGraph | None:
        """The token graph of a mixture batch's code (``None``: the network's own code)."""
        if name is None or name == self.net.code.name:
            return None
        if name not in self._graphs:
            cfg = self.net.config
            self._graphs[name] = TokenGraph(get_code(name), cfg.max_distance, cfg.spe_dim).to(self.device)
        return self._graphs[name]

    def compile_network(self, backend: str) -> None:
        self._logits = torch.compile(self.net.logits, backend=backend)

    def model_step(self, batch: dict[str, Any]) -> tuple[torch.Tensor, DecoderOutput]:
        llr, bits = batch["llr"], batch["bits"]
        logits = getattr(self, "_logits", self.net.logits)(llr, self.graph_for(batch.get("code")))
        loss = F.binary_cross_entropy_with_logits(logits, noise_target(llr, bits))
        return loss, decision(llr, logits)
