"""Neural BP / neural min-sum (Nachmani et al. 2018; Lugosch & Gross 2017).

The message-passing core of :mod:`eccflow.decoders.message_passing` with a learned multiplicative
weight on every check-to-variable message, m_cv^(l) <- w^(l)_cv * m_cv^(l), shared as configured:

* ``edge``: one weight per Tanner edge per iteration (L x E parameters);
* ``check``: one weight per check node per iteration (L x m), w^(l)_cv = w^(l)_c;
* ``iteration``: one weight per iteration (L), normalised min-sum with a learned schedule.
"""
from __future__ import annotations


import torch
from torch import nn

from eccflow.codes import Code
from eccflow.decoders.message_passing import BeliefPropagationDecoder, CheckUpdate, WeightSharing, parse_weight_sharing


class NeuralBPDecoder(BeliefPropagationDecoder):
    """BP / min-sum with trainable check-message weights, (B, n) LLRs in, :class:`DecoderOutput` out."""

    def __init__(
        self,
        code: Code,
        iterations: int = 5,
        check_update: str | CheckUpdate = CheckUpdate.SUM_PRODUCT,
        weight_sharing: str | WeightSharing = WeightSharing.EDGE,
        weight_init: float = 1.0,
    ) -> None:
        super().__init__(code, iterations=iterations, check_update=check_update)
        self.weight_sharing = parse_weight_sharing(
            weight_sharing, (WeightSharing.EDGE, WeightSharing.CHECK, WeightSharing.ITERATION), "neural BP")
        width = {WeightSharing.EDGE: code.num_edges, WeightSharing.CHECK: code.num_checks, WeightSharing.ITERATION: 1}
        self.weights = nn.Parameter(torch.full((iterations, width[self.weight_sharing]), float(weight_init)))

    def check_weight(self, iteration: int) -> torch.Tensor:
        w = self.weights[iteration]
        if self.weight_sharing is WeightSharing.CHECK:
            w = w.index_select(0, self.graph.edge_check)
        return w.unsqueeze(1)  # (E or 1, 1), broadcast over the batch

