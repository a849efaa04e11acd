"""Flooding message passing on the Tanner graph: sum-product BP and (normalised / offset) min-sum.

Messages live on edges, stored edge-major as (E, B) tensors, so that gathers (``index_select``) and
segment sums (``index_add``) move whole contiguous rows of the batch. Per iteration l:

* variable -> check:  m_vc = llr_v + sum_{c' in N(v)} m_c'v - m_cv                         (VN update)
* check -> variable, sum-product (Gallager's phi form of the tanh rule):
      m_cv = w_cv * prod_{v' != v} sign(m_v'c) * phi( sum_{v' != v} phi(|m_v'c|) ),
      phi(x) = -ln tanh(x / 2),  phi = phi^{-1}; computed as sums of psi = -phi (log-tanh domain)
* check -> variable, min-sum:  m_cv = w_cv * prod sign(m_v'c) * max(min_{v' != v} |m_v'c| - offset, 0)
* posterior:  L_v = llr_v + sum_c m_cv;  decision x_v = 1 if L_v < 0.

``w_cv`` is the normalisation factor (a float) or, for neural decoders, a tensor per edge
and/or per iteration supplied by overriding :meth:`BeliefPropagationDecoder.check_weight`.
LLR convention: positive means bit 0.
"""
from __future__ import annotations

import warnings
from enum import Enum

import torch
from torch import nn

from eccflow.codes import Code
from eccflow.decoders.base import DecoderOutput
from eccflow.errors import ConfigError

warnings.filterwarnings("ignore", message=r"index_reduce\(\) is in beta")


class CheckUpdate(str, Enum):
    """Check-node rule."""

    SUM_PRODUCT = "sum-product"
    MIN_SUM = "min-sum"


_TINY = 1e-7  # |m| below this counts as 1e-7: caps check messages at phi(1e-7) = 16.8


def log_tanh_half(magnitude: torch.Tensor) -> torch.Tensor:
    """psi(x) = ln tanh(x / 2) <= 0 for x >= 0, so that phi(x) = -psi(x) (Gallager's phi)."""
    return torch.log(torch.tanh(0.5 * magnitude).clamp_min(_TINY))


class TannerGraph(nn.Module):
    """Edge index buffers of a code (moved with ``.to(device)``)."""

    def __init__(self, code: Code) -> None:
        super().__init__()
        self.n = code.n
        self.num_checks = code.num_checks
        self.num_edges = code.num_edges
        self.register_buffer("edge_var", torch.as_tensor(code.edge_var, dtype=torch.long), persistent=False)
        self.register_buffer("edge_check", torch.as_tensor(code.edge_check, dtype=torch.long), persistent=False)

    def check_sum(self, edge_values: torch.Tensor) -> torch.Tensor:
        """Sum of (E, B) edge values into their checks -> (m, B)."""
        out = edge_values.new_zeros(self.num_checks, edge_values.shape[1])
        return out.index_add(0, self.edge_check, edge_values)

    def variable_sum(self, edge_values: torch.Tensor) -> torch.Tensor:
        """Sum of (E, B) edge values into their variables -> (n, B)."""
        out = edge_values.new_zeros(self.n, edge_values.shape[1])
        return out.index_add(0, self.edge_var, edge_values)

    def check_min(self, edge_values: torch.Tensor) -> torch.Tensor:
        """Minimum of (E, B) edge values per check -> (m, B) (+inf for a check without edges)."""
        out = edge_values.new_full((self.num_checks, edge_values.shape[1]), float("inf"))
        return out.index_reduce(0, self.edge_check, edge_values, "amin", include_self=True)

    def syndrome(self, bits_vm: torch.Tensor) -> torch.Tensor:
        """Syndrome (m, B) of hard decisions given variable-major (n, B)."""
        return torch.remainder(self.check_sum(bits_vm.index_select(0, self.edge_var)), 2.0)


def sign_parity(graph: TannerGraph, v2c: torch.Tensor) -> torch.Tensor:
    """prod_{v' != v} sign(m_v'c) on every edge: the check's sign product times the edge's own sign."""
    signs = torch.where(v2c < 0, -1.0, 1.0).to(v2c.dtype)
    product = signs.new_ones(graph.num_checks, v2c.shape[1]).index_reduce(0, graph.edge_check, signs, "prod")
    return product.index_select(0, graph.edge_check) * signs


def sum_product_check_update(graph: TannerGraph, v2c: torch.Tensor) -> torch.Tensor:
    """Extrinsic check messages by the tanh rule in log domain, (E, B) -> (E, B).

    With psi(x) = ln tanh(x/2) = -phi(x) and S_c = sum_{v'} psi(|m_v'c|):
    |m_cv| = phi(sum_{v' != v} phi(|m_v'c|)) = -psi(-(S_c - psi(|m_vc|))).
    """
    psis = log_tanh_half(v2c.abs())
    extrinsic = graph.check_sum(psis).index_select(0, graph.edge_check) - psis  # = -sum_{v'!=v} phi <= 0
    return sign_parity(graph, v2c) * -log_tanh_half(-extrinsic)


def min_sum_check_update(graph: TannerGraph, v2c: torch.Tensor, offset: float = 0.0) -> torch.Tensor:
    """Extrinsic min-sum check messages (smallest other magnitude, minus ``offset``), (E, B) -> (E, B)."""
    magnitude = v2c.abs()
    min1 = graph.check_min(magnitude).index_select(0, graph.edge_check)
    is_min = magnitude == min1
    # Second minimum: drop the minimising edges; if the minimum is attained twice it is also the second.
    min2 = graph.check_min(magnitude.masked_fill(is_min, float("inf"))).index_select(0, graph.edge_check)
    ties = graph.check_sum(is_min.to(v2c.dtype)).index_select(0, graph.edge_check) > 1
    extrinsic = torch.where(is_min & ~ties, min2, min1)
    extrinsic = torch.nan_to_num(extrinsic, posinf=_MAX_MESSAGE)
    if offset:
        extrinsic = (extrinsic - offset).clamp_min(0.0)
    return sign_parity(graph, v2c) * extrinsic


_MAX_MESSAGE = 1e4  # bound for min-sum messages of checks with a single edge (empty minimum)


class BeliefPropagationDecoder(nn.Module):
    """Flooding BP / min-sum decoder of ``code`` with ``iterations`` full iterations.

    Args:
        code: the code; every stored row of H is a check node.
        iterations: number of flooding iterations L (one CN and one VN update each).
        check_update: ``"sum-product"`` or ``"min-sum"``.
        normalization: multiplicative factor on check messages (normalised min-sum, e.g. 0.75).
        offset: subtracted from min-sum magnitudes (offset min-sum).
        early_stop: freeze a word's decision once its syndrome is zero; stop when all words are frozen.

    Shapes: ``forward(llr)`` takes channel LLRs (B, n) and returns :class:`DecoderOutput` with
    posterior LLRs (B, n), decisions (B, n), and with ``return_all=True`` the posteriors of every
    iteration (L, B, n).
    """

    def __init__(
        self,
        code: Code,
        iterations: int = 5,
        check_update: str | CheckUpdate = CheckUpdate.SUM_PRODUCT,
        normalization: float = 1.0,
        offset: float = 0.0,
        early_stop: bool = False,
    ) -> None:
        super().__init__()
        if not isinstance(iterations, int) or iterations < 1:
            raise ConfigError(f"iterations must be a positive integer, got {iterations!r}")
        try:
            self.check_rule = CheckUpdate(check_update)
        except ValueError:
            raise ConfigError(
                f"unknown check_update {check_update!r}; choose one of {[c.value for c in CheckUpdate]}"
            ) from None
        if offset < 0:
            raise ConfigError(f"min-sum offset must be >= 0, got {offset}")
        if offset and self.check_rule is not CheckUpdate.MIN_SUM:
            raise ConfigError("offset applies to min-sum only")
        self.code = code
        self.graph = TannerGraph(code)
        self.iterations = iterations
        self.normalization = float(normalization)
        self.offset = float(offset)
        self.early_stop = early_stop

    def check_weight(self, iteration: int) -> torch.Tensor | float:
        """Multiplicative weight on check messages at ``iteration``: a float or an (E, 1) tensor."""
        return self.normalization

    def extra_repr(self) -> str:
        return (f"code={self.code.name}, iterations={self.iterations}, check_update={self.check_rule.value}, "
                f"normalization={self.normalization}, offset={self.offset}, early_stop={self.early_stop}")

    def flops_per_frame(self) -> int:
        """Arithmetic operations per decoded frame, L full iterations (no early stop).

        Counted per edge and iteration: VN->CN subtraction 1, weight 1 (when learned or != 1),
        CN->VN sum 1; check rule: sum-product 14 (two psi = ln tanh(x/2) of 4 each, sum, extrinsic
        subtraction, negation, sign product 3, sign times magnitude), min-sum 11 (+2 with an
        offset); per variable and iteration: the channel LLR addition; plus n hard decisions.
        """
        edges, n = self.graph.num_edges, self.graph.n
        check = 14 if self.check_rule is CheckUpdate.SUM_PRODUCT else 11 + (2 if self.offset else 0)
        weight = 1 if isinstance(self.check_weight(0), torch.Tensor) or self.normalization != 1.0 else 0
        return self.iterations * (edges * (2 + weight + check) + n) + n

    def check_update(self, v2c: torch.Tensor) -> torch.Tensor:
        if self.check_rule is CheckUpdate.SUM_PRODUCT:
            return sum_product_check_update(self.graph, v2c)
        return min_sum_check_update(self.graph, v2c, self.offset)

    def forward(self, llr: torch.Tensor, return_all: bool = False) -> DecoderOutput:
        if llr.dim() != 2 or llr.shape[1] != self.graph.n:
            raise ConfigError(f"{self.code.name}: expected LLRs of shape (B, {self.graph.n}), got {tuple(llr.shape)}")
        graph = self.graph
        llr_vm = llr.t().contiguous()  # (n, B)
        batch = llr.shape[0]
        c2v = llr_vm.new_zeros(graph.num_edges, batch)
        posterior = llr_vm
        history: list[torch.Tensor] = []
        iterations = torch.full((batch,), self.iterations, dtype=torch.long, device=llr.device)
        done = torch.zeros(batch, dtype=torch.bool, device=llr.device)
        for it in range(self.iterations):
            v2c = posterior.index_select(0, graph.edge_var) - c2v
            c2v = self.check_update(v2c) * self.check_weight(it)
            new_posterior = llr_vm + graph.variable_sum(c2v)
            if self.early_stop:
                new_posterior = torch.where(done, posterior, new_posterior)
                satisfied = ~graph.syndrome((new_posterior < 0).to(llr.dtype)).any(dim=0)
                newly = satisfied & ~done
                iterations[newly] = it + 1
                done = done | satisfied
            posterior = new_posterior
            if return_all:
                history.append(posterior.t())
            if self.early_stop and bool(done.all()):
                if return_all:  # later iterations would repeat the frozen decisions
                    history.extend([posterior.t()] * (self.iterations - it - 1))
                break
        out = posterior.t()
        return DecoderOutput(
            llr=out,
            bits=(out < 0).to(llr.dtype),
            llr_per_iteration=torch.stack(history) if return_all else None,
            iterations=iterations,
        )
