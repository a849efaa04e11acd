"""Edge-weighted GNN decoder (EW-GNN; Tian et al., "A Scalable Graph Neural Network Decoder for Short Block
Codes") on the Tanner-graph edge arrays of any code: a configuration of the message-passing engine.

The engine of :mod:`eccflow.decoders.message_passing` with its clipped tanh rule and this weight hook. Iteration t = 1..T:

* VN -> CN (extrinsic, weighted):  m_vc^(t) = llr_v + sum_{c' != c} w_c'v^(t-1) m_c'v^(t-1)   (m^(0) = 0)
* CN -> VN, clipped tanh rule (paper eq. 8-9), 0 < a < 1:
      m_cv^(t) = 2 atanh( clip( prod_{v' != v} tanh(m_v'c^(t) / 2), -a, a ) ),
  the product taken in the log-magnitude domain, sum_{v' != v} ln|tanh(m_v'c/2)| with the sign parity
  apart (zeros guarded by the ``ln tanh`` floor of the BP core), so nothing overflows or divides by zero.
* edge weight (paper eq. 6-7, 15):  w_cv^(t) = FNN( |m_cv^(t)|, r(x_v^(t-1)), r(m_vc^(t)), r(m_cv^(t)) ),
  r(z^(t)) = |z^(t) - z^(t-1)| the residual between iterations (0 when there is no earlier value), every
  feature divided by its mean over the E edges of its own word; FNN = 3 linear layers (4 -> 32 -> 32 -> 1),
  ELU after each.
* node embedding / posterior (eq. 11-12):  x_v^(t) = llr_v + sum_c w_cv^(t) m_cv^(t);  bit 1 iff x_v < 0.

Nothing depends on the code except the edge arrays, so the parameter count is fixed (the FNN plus, when
learned, the clip) and one trained network decodes every code (``forward(llr, code=...)`` or
:meth:`EWGNNDecoder.set_code`). The output layer starts at zero weight and bias 1, so an untrained
network is sum-product BP with clipped check messages. LLR convention: positive means bit 0.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from eccflow.codes import Code
from eccflow.decoders.base import DecoderOutput
from eccflow.decoders.message_passing import CheckUpdate, Messages, TannerGraph, check_rule, propagate
from eccflow.errors import ConfigError

NUM_FEATURES = 4  # |m_cv|, r(x_v), r(m_vc), r(m_cv)
_MEAN_FLOOR = 1e-12  # a feature whose mean over a word's edges is 0 (all residuals 0) stays 0


def edge_mean_normalize(values: torch.Tensor) -> torch.Tensor:
    """f_e / ((1/E) sum_e' f_e') per word (column), paper eq. 15; (E, B) -> (E, B)."""
    return values / values.mean(dim=0, keepdim=True).clamp_min(_MEAN_FLOOR)


class EdgeWeightNetwork(nn.Module):
    """The weight FNN: ``layers`` linear layers (features -> hidden ... -> 1), ELU after each.

    The last layer starts with zero weights and bias 1, so every weight is ELU(1) = 1 before training.
    """

    def __init__(self, hidden: int = 32, layers: int = 3, elu_alpha: float = 1.0) -> None:
        super().__init__()
        if not isinstance(hidden, int) or hidden < 1:
            raise ConfigError(f"ewgnn hidden units must be a positive integer, got {hidden!r}")
        if not isinstance(layers, int) or layers < 1:
            raise ConfigError(f"ewgnn FNN layers must be a positive integer, got {layers!r}")
        widths = [NUM_FEATURES] + [hidden] * (layers - 1) + [1]
        self.linears = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.activation = nn.ELU(alpha=elu_alpha)
        nn.init.zeros_(self.linears[-1].weight)
        nn.init.ones_(self.linears[-1].bias)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """(E, B, 4) -> weights (E, B)."""
        h = features
        for linear in self.linears:
            h = self.activation(linear(h))
        return h.squeeze(-1)

    def flops_per_edge(self) -> int:
        """Multiply-adds (2 each) plus one ELU (counted 4) per unit."""
        return sum(2 * lin.in_features * lin.out_features + 4 * lin.out_features for lin in self.linears)


class EWGNNDecoder(nn.Module):
    """EW-GNN decoder with ``iterations`` T, (B, n) LLRs in, :class:`DecoderOutput` out.

    Args:
        code: the default code (the one it was built for); any other may be passed at call time.
        iterations: T message-passing iterations.
        clip: clip factor a of the check update, 0 < a < 1.
        learn_clip: train a (parametrised a = sigmoid(theta), stays in (0, 1)); else a is fixed.
        hidden, layers, elu_alpha: the weight FNN (paper: 32, 3, 1.0).
    """

    def __init__(self, code: Code, iterations: int = 5, clip: float = 0.99999, learn_clip: bool = False,
                 hidden: int = 32, layers: int = 3, elu_alpha: float = 1.0) -> None:
        super().__init__()
        if not isinstance(iterations, int) or isinstance(iterations, bool) or iterations < 1:
            raise ConfigError(f"ewgnn iterations must be a positive integer, got {iterations!r}")
        if not isinstance(clip, (int, float)) or isinstance(clip, bool) or not 0.0 < float(clip) < 1.0:
            raise ConfigError(f"ewgnn clip factor a must lie in the open interval (0, 1), got {clip!r}")
        self.iterations = iterations
        self.learn_clip = bool(learn_clip)
        logit = math.log(clip / (1.0 - clip))
        if self.learn_clip:
            self.clip_logit = nn.Parameter(torch.tensor(logit))
        else:
            self.register_buffer("clip_logit", torch.tensor(logit, dtype=torch.float64), persistent=False)
        self.fnn = EdgeWeightNetwork(hidden, layers, elu_alpha)
        self.code = code
        self.graph = TannerGraph(code)
        self._graphs: dict[str, TannerGraph] = {}

    @property
    def clip(self) -> torch.Tensor:
        """The clip factor a = sigmoid(theta) in (0, 1)."""
        return torch.sigmoid(self.clip_logit)

    def set_code(self, code: Code) -> None:
        """Decode ``code`` by default from now on (parameters untouched)."""
        self.code, self.graph = code, TannerGraph(code).to(self.fnn.linears[0].weight.device)

    def graph_for(self, code: Code | TannerGraph | None) -> TannerGraph:
        """The Tanner graph of ``code`` (cached per code name), or the default one for ``None``."""
        if code is None:
            return self.graph
        if isinstance(code, TannerGraph):
            return code
        if not isinstance(code, Code):
            raise ConfigError(f"ewgnn decodes a Code or a TannerGraph, got {type(code).__name__}")
        if code.name == self.code.name:
            return self.graph
        device = self.fnn.linears[0].weight.device
        graph = self._graphs.get(code.name)
        if graph is None or graph.edge_var.device != device:
            graph = self._graphs[code.name] = TannerGraph(code).to(device)
        return graph

    def edge_weight(self, messages: Messages, graph: TannerGraph) -> torch.Tensor:
        """w_cv from the four (E, B) features |u_cv|, r(x_v), r(m_vc), r(u_cv), each mean-normalised over its
        word's edges; a residual with no earlier value is zero."""
        def residual(now: torch.Tensor, before: torch.Tensor | None) -> torch.Tensor:
            return torch.zeros_like(now) if before is None else (now - before).abs()

        node = residual(messages.posterior, messages.previous_posterior).index_select(0, graph.edge_var)
        features = [messages.update.abs(), node, residual(messages.v2c, messages.previous_v2c),
                    residual(messages.update, messages.previous_update)]
        return self.fnn(torch.stack([edge_mean_normalize(f) for f in features], dim=-1))

    def forward(self, llr: torch.Tensor, return_all: bool = False,
                code: Code | TannerGraph | None = None) -> DecoderOutput:
        graph = self.graph_for(code)
        name = getattr(code, "name", None) or self.code.name
        if llr.dim() != 2 or llr.shape[1] != graph.n:
            raise ConfigError(f"ewgnn on {name}: expected LLRs of shape (B, {graph.n}), got {tuple(llr.shape)}")
        if graph.num_edges == 0:
            raise ConfigError(f"ewgnn on {name}: the code has no parity checks (no Tanner-graph edges)")
        rule = check_rule(CheckUpdate.CLIPPED_TANH, graph, clip=self.clip.to(llr.dtype))
        return propagate(graph, llr.t().contiguous(), self.iterations, rule,
                         edge_weight=lambda messages: self.edge_weight(messages, graph), return_all=return_all,
                         keep_previous=True).output()

    def flops_per_frame(self) -> int:
        """Operations per frame of the default code, T iterations.

        Per edge and iteration: VN->CN subtraction 1, check rule 14 (as sum-product BP, the clip and
        atanh in place of the second ln tanh), three residuals 2 each, four normalisations 3 each
        (sum, mean, divide), the FNN, weight product 1, CN->VN sum 1; per variable the LLR addition;
        plus n hard decisions.
        """
        edges, n = self.graph.num_edges, self.graph.n
        per_edge = 1 + 14 + 6 + 12 + self.fnn.flops_per_edge() + 2
        return self.iterations * (edges * per_edge + n) + n

    def extra_repr(self) -> str:
        return f"code={self.code.name}, iterations={self.iterations}, learn_clip={self.learn_clip}"
