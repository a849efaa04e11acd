"""LightningModule for the neural window decoder (NWD): one window, loss on its targets (or all VNs).

Loss (``soft-bler``, the differentiable surrogate of the NWD paper's BLER loss): with x_v the true bits
and s_v = 1 - 2 x_v, the decoder's posterior probability that every scored bit is right is
prod_v sigmoid(s_v L_v), so  L_BLER = 1 - prod_{v in T} sigmoid(s_v L_v)  lies in [0, 1] and tends to the
0/1 block error as |L_v| grows; T is the targets (target-specific training) or all active VNs (``all``).
``bce`` is the mean bit cross-entropy on T instead. The damped NWD adds lambda * sum |1 - beta| (L1
towards 1, eq. 4). Validation scores the targets only: BER/FER of the window's targets and the NVE
against the WD baseline (fixed-weight min-sum) on the same words. Batches may carry ``fixed_llr`` and
``window`` (index into ``graphs``) for windows of a chain (EP-resilient training).
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F

from eccflow.decoders.base import DecoderOutput
from eccflow.decoders.window import TrainingScope, WindowDecoder, WindowGraph
from eccflow.errors import ConfigError
from eccflow.lit.base import DecoderLitModule

LOSSES = ("soft-bler", "bce")


def soft_block_error(llr: torch.Tensor, bits: torch.Tensor) -> torch.Tensor:
    """1 - prod_v sigmoid((1 - 2 x_v) L_v) per word, (B, n) -> (B,)."""
    return 1.0 - torch.exp(F.logsigmoid((1.0 - 2.0 * bits) * llr).sum(dim=1))


class WindowLitModule(DecoderLitModule):
    def __init__(self, net: WindowDecoder, net_config: dict[str, Any], code: str, loss: str = "soft-bler",
                 damping_l1: float = 0.0, graphs: Sequence[WindowGraph] | None = None, **kwargs: Any) -> None:
        super().__init__(net, net_config, code, **kwargs)
        if loss not in LOSSES:
            raise ConfigError(f"NWD loss must be one of {LOSSES}, got {loss!r}")
        if damping_l1 < 0:
            raise ConfigError(f"damping_l1 must be >= 0, got {damping_l1}")
        self.loss_name, self.damping_l1 = loss, float(damping_l1)
        self.graphs = torch.nn.ModuleList(graphs or [])

    def _graph(self, batch: dict[str, Any]) -> WindowGraph:
        return self.graphs[int(batch["window"])] if "window" in batch else self.net.graph

    def _scored(self, graph: WindowGraph) -> torch.Tensor:
        if self.net.scope is TrainingScope.TARGET:
            return graph.targets
        return torch.arange(graph.n_active, device=graph.targets.device)

    def model_step(self, batch: dict[str, Any]) -> tuple[torch.Tensor, DecoderOutput]:
        graph = self._graph(batch)
        out = self.net(batch["llr"], batch.get("fixed_llr"), graph)
        scored = self._scored(graph)
        llr, bits = out.llr.index_select(1, scored), batch["bits"].index_select(1, scored)
        if self.loss_name == "soft-bler":
            loss = soft_block_error(llr, bits).mean()
        else:
            loss = F.binary_cross_entropy_with_logits(-llr, bits)
        if self.net.beta is not None and self.damping_l1:
            loss = loss + self.damping_l1 * (1.0 - self.net.beta.clamp(0.0, 1.0)).abs().sum()
        return loss, out

    def validation_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> None:
        graph = self._graph(batch)
        targets = graph.targets
        out = self.net(batch["llr"], batch.get("fixed_llr"), graph)
        truth = batch["bits"].index_select(1, targets)
        self.val_ber[dataloader_idx].update(out.bits.index_select(1, targets), truth)
        self.val_fer[dataloader_idx].update(out.bits.index_select(1, targets), truth)
        if self.baselines and not self._baseline_done:
            baseline = next(iter(self.baselines.values()))
            decided = baseline(batch["llr"], batch.get("fixed_llr"), graph).bits.index_select(1, targets)
            self.baseline_ber[dataloader_idx].update(decided, truth)
