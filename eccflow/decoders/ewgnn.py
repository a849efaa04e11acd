"""Edge-weighted GNN decoder (EW-GNN, seed paper 002), on the Tanner-graph edge arrays of any code.

Messages are edge-major (E, B) tensors as in :mod:`eccflow.decoders.message_passing`. Iteration t = 1..T:

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
from eccflow.decoders.message_passing import TannerGraph, log_tanh_half, sign_parity
from eccflow.errors import ConfigError

NUM_FEATURES = 4  # |m_cv|, r(x_v), r(m_vc), r(m_cv)
_MEAN_FLOOR = 1e-12  # a feature whose mean over a word's edges is 0 (all residuals 0) stays 0


def clipped_check_update(graph: TannerGraph, v2c: torch.Tensor, clip: torch.Tensor | float) -> torch.Tensor:
    """m_cv = 2 atanh(clip(prod_{v' != v} tanh(m_v'c / 2), -a, a)), (E, B) -> (E, B).

    |prod| = exp(sum_{v' != v} ln tanh(|m_v'c| / 2)) (the check's log sum minus the edge's own term),
    sign = product of the other signs (:func:`sign_parity`); |m_cv| <= 2 atanh(a) < inf.
    """
    logs = log_tanh_half(v2c.abs())  # <= 0, floored at ln(1e-7) for zero messages
    extrinsic = graph.check_sum(logs).index_select(0, graph.edge_check) - logs
    magnitude = torch.minimum(torch.exp(extrinsic.clamp_max(0.0)), torch.as_tensor(clip, dtype=v2c.dtype, device=v2c.device))
    return sign_parity(graph, v2c) * 2.0 * torch.atanh(magnitude)


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

    def edge_weights(self, features: list[torch.Tensor]) -> torch.Tensor:
        """w_cv from the four (E, B) features, each mean-normalised over its word's edges."""
        return self.fnn(torch.stack([edge_mean_normalize(f) for f in features], dim=-1))

    def forward(self, llr: torch.Tensor, return_all: bool = False,
                code: Code | TannerGraph | None = None) -> DecoderOutput:
        graph = self.graph_for(code)
        name = getattr(code, "name", None) or self.code.name
        if llr.dim() != 2 or llr.shape[1] != graph.n:
            raise ConfigError(f"ewgnn on {name}: expected LLRs of shape (B, {graph.n}), got {tuple(llr.shape)}")
        if graph.num_edges == 0:
            raise ConfigError(f"ewgnn on {name}: the code has no parity checks (no Tanner-graph edges)")
        clip = self.clip.to(llr.dtype)
        llr_vm = llr.t().contiguous()  # (n, B)
        zeros = llr_vm.new_zeros(graph.num_edges, llr.shape[0])
        weighted = zeros  # w_cv m_cv of the previous iteration
        x_prev, x_prev2 = llr_vm, None  # x^(t-1), x^(t-2); x^(0) = llr
        v2c_prev = c2v_prev = None
        history: list[torch.Tensor] = []
        for _ in range(self.iterations):
            v2c = x_prev.index_select(0, graph.edge_var) - weighted
            c2v = clipped_check_update(graph, v2c, clip)
            node_residual = zeros if x_prev2 is None else (x_prev - x_prev2).abs().index_select(0, graph.edge_var)
            v2c_residual = zeros if v2c_prev is None else (v2c - v2c_prev).abs()
            c2v_residual = zeros if c2v_prev is None else (c2v - c2v_prev).abs()
            weights = self.edge_weights([c2v.abs(), node_residual, v2c_residual, c2v_residual])
            weighted = weights * c2v
            x = llr_vm + graph.variable_sum(weighted)
            if return_all:
                history.append(x.t())
            x_prev2, x_prev, v2c_prev, c2v_prev = x_prev, x, v2c, c2v
        out = x_prev.t()
        return DecoderOutput(
            llr=out,
            bits=(out < 0).to(llr.dtype),
            llr_per_iteration=torch.stack(history) if return_all else None,
            iterations=torch.full((llr.shape[0],), self.iterations, dtype=torch.long, device=llr.device),
        )

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
