"""The message-passing engine: the one iteration loop over a Tanner graph, and BP / min-sum built on it.

Messages live on edges, stored edge-major as (E, B) tensors, so that gathers (``index_select``) and
segment sums (``index_add``) move whole contiguous rows of the batch. Iteration l of :func:`propagate`:

* variable -> check:  m_vc = L_v - m_cv,  L_v = llr_v + sum_{c in N(v)} m_cv   (extrinsic VN update)
* check rule (a :class:`CheckUpdate` or any callable (E, B) -> (E, B)):
  - sum-product (Gallager's phi form of the tanh rule):
      u_cv = prod_{v' != v} sign(m_v'c) * phi( sum_{v' != v} phi(|m_v'c|) ),  phi(x) = -ln tanh(x / 2),
    computed as sums of psi = -phi (log-tanh domain);
  - min-sum:  u_cv = prod sign(m_v'c) * max(min_{v' != v} |m_v'c| - offset, 0)  (normalised: a weight);
  - clipped tanh (EW-GNN, Tian et al.):  u_cv = 2 atanh( clip( prod_{v' != v} tanh(m_v'c / 2), -a, a ) );
* edge weight hook:  u_cv <- w_cv u_cv, w a float, (E, 1) or (E, B) tensor (normalisation, neural BP,
  the neural window decoder's shared weights, EW-GNN's weight network);
* combine hook:  m_cv = g(u_cv, m_cv^(l-1)) (damping, skipped check updates, zeroed messages into fixed
  inputs);
* posterior:  L_v = llr_v + sum_c m_cv;  decision x_v = 1 if L_v < 0; early stop on a zero syndrome.

LLR convention: positive means bit 0.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum
from typing import Callable

import torch
from torch import nn

from eccflow.channels import hard_decision
from eccflow.codes import Code
from eccflow.decoders.base import DecoderOutput
from eccflow.errors import ConfigError


class CheckUpdate(str, Enum):
    """Check-node rule."""

    SUM_PRODUCT = "sum-product"
    MIN_SUM = "min-sum"
    CLIPPED_TANH = "clipped-tanh"


class WeightSharing(str, Enum):
    """How learned check-message weights are tied: per Tanner edge, per check node or per iteration (neural
    BP), or per edge / check of the protograph of a window (neural window decoder)."""

    EDGE = "edge"
    CHECK = "check"
    ITERATION = "iteration"
    PROTO_CHECK = "proto-check"
    PROTO_EDGE = "proto-edge"


def parse_weight_sharing(value: str | WeightSharing, allowed: tuple[WeightSharing, ...], decoder: str) -> WeightSharing:
    """``value`` as a :class:`WeightSharing` that ``decoder`` supports, else a clear error."""
    try:
        sharing = WeightSharing(value)
    except ValueError:
        sharing = None
    if sharing not in allowed:
        raise ConfigError(f"{decoder}: unknown weight_sharing {value!r}; choose one of {[w.value for w in allowed]}")
    return sharing


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
        index = self.edge_check[:, None].expand_as(edge_values)  # scatter_reduce: an ONNX ScatterElements(min)
        return out.scatter_reduce(0, index, edge_values, "amin", include_self=True)

    def syndrome(self, bits_vm: torch.Tensor) -> torch.Tensor:
        """Syndrome (m, B) of hard decisions given variable-major (n, B)."""
        return torch.remainder(self.check_sum(bits_vm.index_select(0, self.edge_var)), 2.0)


def sign_parity(graph: TannerGraph, v2c: torch.Tensor) -> torch.Tensor:
    """prod_{v' != v} sign(m_v'c) on every edge: the check's sign product times the edge's own sign. The
    product of a check's signs is (-1)^(its count of negative messages), counted by a segment sum."""
    negative = (v2c < 0).to(v2c.dtype)
    product = 1.0 - 2.0 * torch.remainder(graph.check_sum(negative), 2.0)
    return product.index_select(0, graph.edge_check) * (1.0 - 2.0 * negative)


def sum_product_check_update(graph: TannerGraph, v2c: torch.Tensor) -> torch.Tensor:
    """Extrinsic check messages by the tanh rule in log domain, (E, B) -> (E, B).

    With psi(x) = ln tanh(x/2) = -phi(x) and S_c = sum_{v'} psi(|m_v'c|):
    |m_cv| = phi(sum_{v' != v} phi(|m_v'c|)) = -psi(-(S_c - psi(|m_vc|))).
    """
    psis = log_tanh_half(v2c.abs())
    extrinsic = graph.check_sum(psis).index_select(0, graph.edge_check) - psis  # = -sum_{v'!=v} phi <= 0
    return sign_parity(graph, v2c) * -log_tanh_half(-extrinsic)


_MAX_MESSAGE = 1e4  # bound for min-sum messages of checks with a single edge (empty minimum)


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


def clipped_tanh_check_update(graph: TannerGraph, v2c: torch.Tensor, clip: torch.Tensor | float) -> torch.Tensor:
    """u_cv = 2 atanh(clip(prod_{v' != v} tanh(m_v'c / 2), -a, a)), (E, B) -> (E, B), 0 < a < 1.

    |prod| = exp(sum_{v' != v} ln tanh(|m_v'c| / 2)) (the check's log sum minus the edge's own term),
    sign = product of the other signs (:func:`sign_parity`); |u_cv| <= 2 atanh(a) < inf.
    """
    logs = log_tanh_half(v2c.abs())  # <= 0, floored at ln(1e-7) for zero messages
    extrinsic = graph.check_sum(logs).index_select(0, graph.edge_check) - logs
    bound = torch.as_tensor(clip, dtype=v2c.dtype, device=v2c.device)
    magnitude = torch.minimum(torch.exp(extrinsic.clamp_max(0.0)), bound)
    return sign_parity(graph, v2c) * 2.0 * torch.atanh(magnitude)


CheckRule = Callable[[torch.Tensor], torch.Tensor]  # v2c (E, B) -> extrinsic check messages (E, B)


def check_rule(rule: str | CheckUpdate | Callable[[TannerGraph, torch.Tensor], torch.Tensor], graph: TannerGraph,
               offset: float = 0.0, clip: torch.Tensor | float | None = None) -> CheckRule:
    """The check rule ``rule`` on ``graph`` as a function of the (E, B) variable-to-check messages.

    ``rule`` is a :class:`CheckUpdate` name or a callable ``(graph, v2c) -> (E, B)``; ``offset`` belongs to
    min-sum, ``clip`` (the factor a) to the clipped tanh rule.
    """
    if callable(rule) and not isinstance(rule, str):
        return lambda v2c: rule(graph, v2c)
    try:
        rule = CheckUpdate(rule)
    except ValueError:
        raise ConfigError(f"unknown check_update {rule!r}; choose one of {[c.value for c in CheckUpdate]}") from None
    if rule is CheckUpdate.SUM_PRODUCT:
        return lambda v2c: sum_product_check_update(graph, v2c)
    if rule is CheckUpdate.MIN_SUM:
        return lambda v2c: min_sum_check_update(graph, v2c, offset)
    if clip is None:
        raise ConfigError("the clipped-tanh check rule needs its clip factor a (0 < a < 1)")
    return lambda v2c: clipped_tanh_check_update(graph, v2c, clip)


def damped(update: torch.Tensor, previous: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """Damped check messages (1 - beta) u_cv + beta m_cv^(l-1) (Buchberger et al., neural window decoder eq. 4)."""
    return (1.0 - beta) * update + beta * previous


@dataclass
class Messages:
    """What the hooks of :func:`propagate` see at iteration ``iteration`` (0-based); edge-major (E, B),
    variable-major (n, B). With early stop, B counts only the words still being decoded.

    v2c: this iteration's variable-to-check messages; update: the check rule's output, before weights;
    c2v: the previous iteration's check messages (zeros at the start); posterior: the posterior entering
    this iteration (the channel LLRs at the start); previous_*: the same one iteration earlier (None at
    the first iteration, and unless :func:`propagate` was asked to ``keep_previous``).
    """

    iteration: int
    v2c: torch.Tensor
    update: torch.Tensor
    c2v: torch.Tensor
    posterior: torch.Tensor
    previous_v2c: torch.Tensor | None = None
    previous_update: torch.Tensor | None = None
    previous_posterior: torch.Tensor | None = None


@dataclass
class Propagation:
    """Result of :func:`propagate`: posteriors (n, B), per-iteration posteriors (a list of (n, B), when
    asked) and the iterations each word took (B,)."""

    posterior: torch.Tensor
    history: list[torch.Tensor] | None
    iterations: torch.Tensor

    def output(self, active: slice = slice(None)) -> DecoderOutput:
        """As a :class:`DecoderOutput` over the variables ``active`` (batch-major (B, n))."""
        out = self.posterior[active].t()
        history = None if self.history is None else torch.stack([h[active].t() for h in self.history])
        return DecoderOutput(llr=out, bits=hard_decision(out), llr_per_iteration=history,
                             iterations=self.iterations)


EdgeWeight = Callable[[Messages], "torch.Tensor | float"]
Combine = Callable[[Messages, torch.Tensor], torch.Tensor]


def propagate(graph: TannerGraph, llr: torch.Tensor, iterations: int, rule: CheckRule,
              edge_weight: EdgeWeight | None = None, combine: Combine | None = None,
              early_stop: bool = False, return_all: bool = False, keep_previous: bool = False) -> Propagation:
    """Flooding message passing: the only iteration loop over a Tanner graph in eccflow.

    Parameters:
        graph: the Tanner graph (E edges, n variables, m checks).
        llr: channel LLRs, variable-major (n, B); positive means bit 0.
        iterations: L, each one check update and one variable update.
        rule: the check rule, from :func:`check_rule`.
        edge_weight: hook giving the weight w_cv on the check rule's output (float, (E, 1) or (E, B)).
        combine: hook turning the weighted update into this iteration's messages (damping, skips, fixed
            inputs); without it the messages are the weighted update.
        early_stop: a word whose hard decisions satisfy every check keeps that posterior; decoded words
            leave the batch (the others are decoded on), and the loop ends when none is left.
        return_all: keep the posterior of every iteration (decoded words repeat theirs).
        keep_previous: give the hooks the previous iteration's messages and posterior (``Messages.previous_*``,
            for residual features); otherwise they are ``None`` and never kept or compacted.

    Output: :class:`Propagation` with the posteriors (n, B), their history and the iterations per word.
    """
    batch = llr.shape[1]
    c2v = llr.new_zeros(graph.num_edges, batch)
    posterior = llr
    previous: tuple[torch.Tensor | None, ...] = (None, None, None)  # v2c, update, posterior one iteration back
    used = torch.full((batch,), iterations, dtype=torch.long, device=llr.device)
    words = torch.arange(batch, device=llr.device)  # columns still decoded
    final = llr  # (n, B) posteriors of every word, decoded words written as they finish
    history: list[torch.Tensor] | None = [] if return_all else None
    for it in range(iterations):
        v2c = posterior.index_select(0, graph.edge_var) - c2v
        update = rule(v2c)
        messages = Messages(it, v2c, update, c2v, posterior, *previous)
        weighted = update
        if edge_weight is not None:
            weight = edge_weight(messages)
            if isinstance(weight, torch.Tensor) or weight != 1.0:
                weighted = update * weight
        c2v = weighted if combine is None else combine(messages, weighted)
        if keep_previous:
            previous = (v2c, update, posterior)
        posterior = llr + graph.variable_sum(c2v)
        if early_stop:
            satisfied = ~graph.syndrome(hard_decision(posterior)).any(dim=0)
            if bool(satisfied.any()):
                done = words[satisfied]
                final = final.index_copy(1, done, posterior[:, satisfied])
                used[done] = it + 1
                keep = torch.nonzero(~satisfied).flatten()
                words = words[keep]
                llr, posterior, c2v = (t.index_select(1, keep) for t in (llr, posterior, c2v))
                previous = tuple(None if t is None else t.index_select(1, keep) for t in previous)
        if return_all:
            history.append(final.index_copy(1, words, posterior) if early_stop else posterior)
        if early_stop and words.numel() == 0:
            if history is not None:
                history.extend([final] * (iterations - it - 1))
            break
    final = final.index_copy(1, words, posterior) if early_stop else posterior
    return Propagation(final, history, used)


class BeliefPropagationDecoder(nn.Module):
    """Flooding BP / min-sum decoder of ``code`` with ``iterations`` full iterations.

    Args:
        code: the code; every stored row of H is a check node.
        iterations: number of flooding iterations L (one CN and one VN update each).
        check_update: ``"sum-product"``, ``"min-sum"`` or a callable ``(graph, v2c) -> (E, B)``.
        normalization: multiplicative factor on check messages (normalised min-sum, e.g. 0.75).
        offset: subtracted from min-sum magnitudes (offset min-sum).
        early_stop: a word whose syndrome is zero keeps its decision and leaves the batch; stop when none is left.

    Shapes: ``forward(llr)`` takes channel LLRs (B, n) and returns :class:`DecoderOutput` with
    posterior LLRs (B, n), decisions (B, n), and with ``return_all=True`` the posteriors of every
    iteration (L, B, n).
    """

    def __init__(
        self,
        code: Code,
        iterations: int = 5,
        check_update: str | CheckUpdate | Callable[[TannerGraph, torch.Tensor], torch.Tensor] = CheckUpdate.SUM_PRODUCT,
        normalization: float = 1.0,
        offset: float = 0.0,
        early_stop: bool = False,
    ) -> None:
        super().__init__()
        if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
            raise ConfigError(f"iterations must be a positive integer, got {iterations!r}")
        if callable(check_update) and not isinstance(check_update, str):
            self.check_rule = check_update
        else:
            try:
                self.check_rule = CheckUpdate(check_update)
            except ValueError:
                raise ConfigError(
                    f"unknown check_update {check_update!r}; choose one of {[c.value for c in CheckUpdate]}"
                ) from None
            if self.check_rule is CheckUpdate.CLIPPED_TANH:
                raise ConfigError("the clipped-tanh rule belongs to EW-GNN; BP uses sum-product or min-sum")
        if not math.isfinite(normalization) or normalization <= 0:
            raise ConfigError(f"normalization must be a finite positive factor, got {normalization}")
        if not math.isfinite(offset) or offset < 0:
            raise ConfigError(f"min-sum offset must be a finite number >= 0, got {offset}")
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
        rule = getattr(self.check_rule, "value", getattr(self.check_rule, "__name__", "callable"))
        return (f"code={self.code.name}, iterations={self.iterations}, check_update={rule}, "
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

    def forward(self, llr: torch.Tensor, return_all: bool = False) -> DecoderOutput:
        if llr.dim() != 2 or llr.shape[1] != self.graph.n:
            raise ConfigError(f"{self.code.name}: expected LLRs of shape (B, {self.graph.n}), got {tuple(llr.shape)}")
        rule = check_rule(self.check_rule, self.graph, self.offset)
        result = propagate(self.graph, llr.t().contiguous(), self.iterations, rule,
                           edge_weight=lambda messages: self.check_weight(messages.iteration),
                           early_stop=self.early_stop, return_all=return_all)
        return result.output()
