"""Sliding-window decoding of terminated protograph SC-LDPC chains: WD, WD-BP and the neural window decoder.

Chain (``eccflow.codes.constructions.sc_ldpc``): L variable positions, L + w - 1 check positions; check
position s touches variable positions s - w + 1 .. s. Window of size W starting at position t
(t = 0, p, 2p, ... for target size p): checks at positions t .. t + W - 1, *active* variables at
positions t .. t + W - 1 (both cut at the chain's end), and the *fixed* variables of positions < t that
those checks touch. Fixed variables were decided by earlier windows; their decision LLRs enter as constant
variable-to-check messages. Targets: positions t .. t + p - 1, decided when the window finishes.

Per window, I flooding iterations of (neural) min-sum (NWD paper eqs. 1, 2, 4), LLR > 0 meaning bit 0:

* VN -> CN:  m_vc^(l) = llr_v + sum_{c' in N(v) \\ c} m~_c'v^(l-1)   (active v);   m_vc = L_v^dec (fixed v)
* CN -> VN:  m_cv^(l) = w_c^(l) * prod_{v' != v} sign(m_v'c) * min_{v' != v} |m_v'c|     (sum-product for WD-BP)
* damping:   m~_cv^(l) = (1 - beta_c^(l)) m_cv^(l) + beta_c^(l) m~_cv^(l-1),   m~^(0) = 0  (damped NWD)
* skipped CN update (non-uniform schedule):  m~_cv^(l) = m~_cv^(l-1)
* decision:  L_v = llr_v + sum_{c in N(v)} m~_cv^(I)

Weights are shared over the protograph of the window: ``proto-check`` sharing keeps one weight per
(iteration, window proto check) (I x W b_c), ``proto-edge`` sharing one per (iteration, window proto edge).
Window-relative indices make one weight set valid at every window of a chain of any length. Target-specific
training keeps only the weights whose check update can reach a target at the last iteration
(:func:`reach_counts`); the others are removed (fixed at 1 and never stored or computed).
"""
from __future__ import annotations

from enum import Enum

import numpy as np
import torch
from torch import nn

from eccflow.channels import hard_decision
from eccflow.codes import Code
from eccflow.decoders.base import DecoderOutput
from eccflow.decoders.message_passing import (CheckUpdate, Messages, TannerGraph, WeightSharing, check_rule, damped,
                                              parse_weight_sharing, propagate)
from eccflow.errors import ConfigError


class TrainingScope(str, Enum):
    TARGET = "target"  # loss on the target VNs only: unreachable weights removed
    ALL = "all"  # loss on every VN of the window (all-inclusive)


def chain_meta(code: Code) -> dict:
    """The SC-LDPC construction details of ``code``, or a clear error for any other code."""
    meta = code.meta
    if code.family != "SC-LDPC" or "coupled_protograph" not in meta:
        raise ConfigError(f"{code.name} is not a protograph SC-LDPC chain (family {code.family!r}); window decoding "
                          "needs one, e.g. scldpc_dv3_dc6_w3_L20_M50")
    return meta


def check_window(code: Code, window: int, target: int) -> None:
    """Window W and target size p must fit the chain: 1 <= p < W <= L."""
    L = chain_meta(code)["positions"]
    for label, value in (("window", window), ("target", target)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ConfigError(f"{label} must be a positive integer number of positions, got {value!r}")
    if window > L:
        raise ConfigError(f"window W = {window} is larger than the chain ({code.name} has L = {L} positions)")
    if target >= window:
        raise ConfigError(f"target size p = {target} must be smaller than the window W = {window}")


def window_starts(code: Code, target: int) -> list[int]:
    """First positions of the windows that decode the whole chain: 0, p, 2p, ... < L."""
    return list(range(0, chain_meta(code)["positions"], target))


def window_protograph(code: Code, window: int) -> np.ndarray:
    """Steady-state window protograph: W b_c rows (window checks) x (W + w - 1) b_v columns (the w - 1
    fixed positions first, then the W active ones); block (i, j) = B_{i - j + w - 1}."""
    meta = chain_meta(code)
    parts, w = meta["edge_spreading"], meta["coupling_width"]
    b_c, b_v = parts[0].shape
    proto = np.zeros((window * b_c, (window + w - 1) * b_v), dtype=np.int64)
    for i in range(window):
        for j in range(window + w - 1):
            if 0 <= i - j + w - 1 < w:
                proto[i * b_c:(i + 1) * b_c, j * b_v:(j + 1) * b_v] = parts[i - j + w - 1]
    return proto


class WindowGraph(TannerGraph):
    """Tanner graph of the window starting at position ``start``: variables are the active ones (local
    0 .. n_active - 1) then the fixed ones; buffers map them back to the chain (``active_vars``,
    ``fixed_vars``), mark fixed edges, give the window-relative proto check / proto edge of every edge and
    the local indices of the targets."""

    def __init__(self, code: Code, start: int, window: int, target: int) -> None:
        meta = chain_meta(code)
        check_window(code, window, target)
        L, w = meta["positions"], meta["coupling_width"]
        b_c, b_v = meta["edge_spreading"][0].shape
        if not 0 <= start < L:
            raise ConfigError(f"window start {start} outside the chain's positions 0..{L - 1}")
        check_pos, var_pos = meta["check_position"], meta["var_position"]
        checks = np.flatnonzero((check_pos >= start) & (check_pos <= min(start + window - 1, L + w - 2)))
        active = np.flatnonzero((var_pos >= start) & (var_pos <= min(start + window - 1, L - 1)))
        touched = np.flatnonzero(code.H[checks].any(axis=0))
        fixed = touched[var_pos[touched] < start]
        columns = np.concatenate([active, fixed])
        super().__init__(Code(code.H[checks][:, columns], name=f"{code.name}_window{start}"))
        self.start, self.window, self.target = int(start), int(window), int(target)
        self.n_active, self.n_fixed = int(active.size), int(fixed.size)
        self.active_code = Code(code.H[checks][:, active], name=f"{code.name}_window{start}_active")  # what samplers draw
        edge_var = self.edge_var.numpy()
        edge_check = self.edge_check.numpy()
        rel_check = meta["proto_check"][checks[edge_check]] - start * b_c
        rel_var = meta["proto_var"][columns[edge_var]] - (start - w + 1) * b_v
        proto = window_protograph(code, window)
        proto_edge_index = -np.ones(proto.shape, dtype=np.int64)
        proto_edge_index[np.nonzero(proto)] = np.arange(int((proto > 0).sum()))
        targets = np.flatnonzero(var_pos[active] < start + target)
        for name, values in (("active_vars", active), ("fixed_vars", fixed), ("edge_fixed", edge_var >= active.size),
                             ("edge_proto_check", rel_check), ("edge_proto_edge", proto_edge_index[rel_check, rel_var]),
                             ("targets", targets)):
            self.register_buffer(name, torch.as_tensor(values), persistent=False)


def reach_counts(graph: WindowGraph, iterations: int, outputs: torch.Tensor | None = None,
                 skip: np.ndarray | None = None) -> np.ndarray:
    """Number of paths from each CN -> VN message (iteration l, edge) to the decision LLRs of ``outputs``
    (local active variables; default the targets) in the window's unrolled trellis, (I, E) float64.

    Extrinsic rules: a message m_cv^(l) feeds m_v c'^(l+1) for c' != c, which feeds m_c' v'^(l+1) for v' != v;
    fixed variables are inputs and carry nothing back. A skipped check update (``skip[l, proto check]``)
    passes its outputs at l on to the same edges at l - 1 and needs no inputs. Zero means the message
    cannot reach an output: its weight is removable and its computation can be skipped.
    """
    outputs = graph.targets if outputs is None else outputs
    fixed = graph.edge_fixed.unsqueeze(1)
    wanted = torch.zeros(graph.n, 1, dtype=torch.float64)
    wanted[torch.as_tensor(outputs)] = 1.0
    counts = torch.zeros(iterations, graph.num_edges, 1, dtype=torch.float64)
    counts[-1] = wanted.index_select(0, graph.edge_var)
    skipped = (torch.zeros(iterations, graph.num_edges, 1, dtype=torch.bool) if skip is None
               else torch.as_tensor(np.asarray(skip, dtype=bool))[:, graph.edge_proto_check].unsqueeze(2))
    zero = torch.zeros(())
    for it in range(iterations - 1, 0, -1):
        out = torch.where(fixed, zero, counts[it])
        active_out = torch.where(skipped[it], zero, out)
        v2c = graph.check_sum(active_out).index_select(0, graph.edge_check) - active_out
        v2c = torch.where(fixed | skipped[it], zero, v2c)
        counts[it - 1] = torch.where(fixed, zero, graph.variable_sum(v2c).index_select(0, graph.edge_var) - v2c)
        counts[it - 1] += torch.where(skipped[it], out, zero)
    counts[0] = torch.where(fixed, zero, counts[0])
    return counts.squeeze(2).numpy()


def update_counts(graph: WindowGraph, counts: np.ndarray, proto_checks: int) -> np.ndarray:
    """Per (iteration, window proto check): total paths of its CN -> VN messages, (I, P_c)."""
    index = graph.edge_proto_check.numpy()
    return np.stack([np.bincount(index, row, minlength=proto_checks) for row in counts])


class WindowDecoder(nn.Module):
    """One window of min-sum / sum-product with optional neural weights, damping and a skip schedule.

    Args:
        code: the SC-LDPC chain (its ``meta`` gives the protograph and positions).
        window, target: W and p in positions.
        iterations: I per window.
        check_update: ``min-sum`` (WD, NWD) or ``sum-product`` (WD-BP).
        neural: trainable weights (NWD); else the fixed ``normalization`` (WD: 0.75; WD-BP: 1).
        weight_sharing: ``proto-check`` or ``proto-edge``.
        scope: ``target`` removes the weights that cannot reach a target; ``all`` keeps every weight.
        damping: trainable damping factors beta (I x P_c), eq. 4.
        train_start: first position of the window the module trains on (its ``graph``), by default 0: the
            independent window (no earlier positions).

    ``forward(llr, fixed_llr=None, graph=None)`` takes the window's active channel LLRs (B, n_active) and the
    decision LLRs of its fixed variables (B, n_fixed) and returns posteriors of the active variables.
    """

    def __init__(self, code: Code, window: int, target: int, iterations: int = 5,
                 check_update: str | CheckUpdate = CheckUpdate.MIN_SUM, neural: bool = True,
                 normalization: float = 1.0, weight_sharing: str | WeightSharing = WeightSharing.PROTO_CHECK,
                 scope: str | TrainingScope = TrainingScope.TARGET, damping: bool = False, weight_init: float = 1.0,
                 train_start: int = 0) -> None:
        super().__init__()
        if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
            raise ConfigError(f"iterations must be a positive integer, got {iterations!r}")
        try:
            self.check_rule = CheckUpdate(check_update)
            self.scope = TrainingScope(scope)
        except ValueError as err:
            raise ConfigError(f"window decoder: {err}") from None
        self.weight_sharing = parse_weight_sharing(weight_sharing, (WeightSharing.PROTO_CHECK, WeightSharing.PROTO_EDGE),
                                                "window decoder")
        if neural and self.check_rule is not CheckUpdate.MIN_SUM:
            raise ConfigError("the neural window decoder uses min-sum (check_update: min-sum)")
        self.code, self.window, self.target, self.iterations = code, int(window), int(target), iterations
        self.neural, self.normalization = bool(neural), float(normalization)
        self.graph = WindowGraph(code, train_start, window, target)
        meta = chain_meta(code)
        b_c = meta["edge_spreading"][0].shape[0]
        self.proto_checks = self.window * b_c
        self.proto_edges = int((window_protograph(code, window) > 0).sum())
        width = self.proto_checks if self.weight_sharing is WeightSharing.PROTO_CHECK else self.proto_edges
        kept = self._reachable(self.weight_sharing)
        self.register_buffer("kept", torch.as_tensor(kept))
        self.weights = nn.Parameter(torch.full((iterations, width), float(weight_init))) if neural else None
        self.beta = nn.Parameter(torch.zeros(iterations, self.proto_checks)) if damping else None
        self.register_buffer("skip", torch.zeros(iterations, self.proto_checks, dtype=torch.bool))
        self.register_buffer("window_proto", torch.as_tensor(window_protograph(code, window)))  # checked on load

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """As ``nn.Module.load_state_dict``, refusing weights trained for another window protograph."""
        theirs = state_dict.get("window_proto")
        if theirs is not None and (theirs.shape != self.window_proto.shape or not torch.equal(theirs, self.window_proto)):
            raise ConfigError(f"these weights were trained for another window protograph ({theirs.tolist()}), "
                              f"not {self.code.name}'s ({self.window_proto.tolist()})")
        return super().load_state_dict(state_dict, strict, assign)

    def reachable_updates(self) -> np.ndarray:
        """(I, P_c) bool: the CN updates (iteration, proto check) that the scope computes."""
        return self._reachable(WeightSharing.PROTO_CHECK)

    def _reachable(self, sharing: WeightSharing) -> np.ndarray:
        """(I, width) bool: the weights the scope keeps, from a steady-state window of the chain."""
        width = self.proto_checks if sharing is WeightSharing.PROTO_CHECK else self.proto_edges
        meta = chain_meta(self.code)
        steady = min(meta["coupling_width"] - 1, max(0, meta["positions"] - self.window))
        graph = WindowGraph(self.code, steady, self.window, self.target)
        outputs = graph.targets if self.scope is TrainingScope.TARGET else torch.arange(graph.n_active)
        counts = reach_counts(graph, self.iterations, outputs)
        index = (graph.edge_proto_check if sharing is WeightSharing.PROTO_CHECK else graph.edge_proto_edge).numpy()
        return np.stack([np.bincount(index, row, minlength=width) > 0 for row in counts])

    def flops_per_frame(self) -> int:
        """Operations to decode a chain: one steady-state window's count (``window_complexity``) per window."""
        from eccflow.decoders.window_complexity import window_complexity

        c = window_complexity(self)
        ops = c.additions + c.comparisons + c.sign_multiplications + c.weight_multiplications + c.table_lookups
        return ops * len(window_starts(self.code, self.target))

    @property
    def stored_weights(self) -> int:
        """Weights a deployed decoder stores: kept neural weights, 1 fixed factor (WD), 0 (WD-BP)."""
        if self.neural:
            return int(self.kept.sum())
        return 0 if self.normalization == 1.0 else 1

    def set_skip(self, updates: list[tuple[int, int]]) -> None:
        """Skip the CN updates (iteration, window proto check) listed (non-uniform schedule)."""
        skip = torch.zeros_like(self.skip)
        for it, check in updates:
            if not (0 <= it < self.iterations and 0 <= check < self.proto_checks):
                raise ConfigError(f"skipped update ({it}, {check}) outside {self.iterations} iterations x "
                                  f"{self.proto_checks} proto checks")
            skip[it, check] = True
        self.skip.copy_(skip)

    def load_weight_set(self, weights: torch.Tensor) -> None:
        """Load a trained weight set (e.g. the EP-resilient one), checking it fits this decoder."""
        if self.weights is None or weights.shape != self.weights.shape:
            raise ConfigError(f"weight set of shape {tuple(weights.shape)} does not fit this decoder "
                              f"({self.iterations} iterations x {self.weights.shape[1] if self.weights is not None else 0} "
                              f"{self.weight_sharing.value} weights)")
        with torch.no_grad():
            self.weights.copy_(weights)

    def _edge_weight(self, graph: WindowGraph, it: int) -> torch.Tensor | float:
        if self.weights is None:
            return self.normalization
        index = graph.edge_proto_check if self.weight_sharing is WeightSharing.PROTO_CHECK else graph.edge_proto_edge
        w = torch.where(self.kept[it], self.weights[it], torch.ones_like(self.weights[it]))
        return w.index_select(0, index).unsqueeze(1)

    def forward(self, llr: torch.Tensor, fixed_llr: torch.Tensor | None = None, graph: WindowGraph | None = None,
                return_all: bool = False) -> DecoderOutput:
        graph = self.graph if graph is None else graph
        if llr.dim() != 2 or llr.shape[1] != graph.n_active:
            raise ConfigError(f"window at position {graph.start}: expected LLRs of shape (B, {graph.n_active}), "
                              f"got {tuple(llr.shape)}")
        batch = llr.shape[0]
        if graph.n_fixed:
            if fixed_llr is None:  # an independent window: earlier positions known (the all-zero word)
                fixed_llr = llr.new_full((batch, graph.n_fixed), 1e4)
            if fixed_llr.shape != (batch, graph.n_fixed):
                raise ConfigError(f"window at position {graph.start}: expected fixed LLRs of shape "
                                  f"({batch}, {graph.n_fixed}), got {tuple(fixed_llr.shape)}")
            llr_all = torch.cat([llr, fixed_llr], dim=1).t().contiguous()
        else:
            llr_all = llr.t().contiguous()
        active_edge = (~graph.edge_fixed).to(llr.dtype).unsqueeze(1)
        skip_edge = self.skip.index_select(1, graph.edge_proto_check).unsqueeze(2)  # (I, E, 1)
        beta_edge = None if self.beta is None else self.beta.clamp(0.0, 1.0).index_select(1, graph.edge_proto_check)

        def combine(messages: Messages, update: torch.Tensor) -> torch.Tensor:
            """Damping (eq. 4), then skipped updates keep the previous messages; fixed inputs get none."""
            if beta_edge is not None:
                update = damped(update, messages.c2v, beta_edge[messages.iteration].unsqueeze(1))
            return torch.where(skip_edge[messages.iteration], messages.c2v, update) * active_edge

        result = propagate(graph, llr_all, self.iterations, check_rule(self.check_rule, graph),
                           edge_weight=lambda messages: self._edge_weight(graph, messages.iteration),
                           combine=combine, return_all=return_all)
        return result.output(slice(0, graph.n_active))


class ChainDecoder(nn.Module):
    """Decodes a whole chain window by window with ``plain``; an adaptive decoder switches a frame's window to
    the ``resilient`` weight set when ``detector`` flags an error in the previous window's targets:
    ``ucn`` (an unsatisfied check among those whose variables are all decided) or ``genie`` (true bits).

    ``forward(llr (B, n))`` returns the chain's :class:`DecoderOutput` (decision LLRs (B, n)); the flags of the
    last call are kept in ``switched`` (B, windows).
    """

    def __init__(self, plain: WindowDecoder, resilient: WindowDecoder | None = None, detector: str | None = None) -> None:
        super().__init__()
        if (resilient is None) != (detector is None):
            raise ConfigError("an adaptive chain decoder needs both the resilient weight set and a detector")
        if detector not in (None, "ucn", "genie"):
            raise ConfigError(f"detector must be 'ucn' or 'genie', got {detector!r}")
        self.plain, self.resilient, self.detector = plain, resilient, detector
        code = plain.code
        self.code = code
        self.graphs = nn.ModuleList(WindowGraph(code, s, plain.window, plain.target)
                                    for s in window_starts(code, plain.target))
        meta = chain_meta(code)
        check_pos = torch.as_tensor(meta["check_position"])
        H = torch.as_tensor(np.array(code.H), dtype=torch.float32)
        # checks that become fully decided when window j finishes: positions start_j .. start_j + p - 1
        self._decided_checks = [H[(check_pos >= g.start) & (check_pos < g.start + plain.target)] for g in self.graphs]
        self.switched: torch.Tensor | None = None
        self.truth: torch.Tensor | None = None  # genie: set before decoding

    @property
    def num_windows(self) -> int:
        return len(self.graphs)

    def target_masks(self) -> list[torch.Tensor]:
        """Chain indices of each window's targets."""
        return [g.active_vars[g.targets] for g in self.graphs]

    def forward(self, llr: torch.Tensor) -> DecoderOutput:
        if llr.dim() != 2 or llr.shape[1] != self.code.n:
            raise ConfigError(f"{self.code.name}: expected LLRs of shape (B, {self.code.n}), got {tuple(llr.shape)}")
        decision = torch.zeros_like(llr)
        switched = torch.zeros(llr.shape[0], self.num_windows, dtype=torch.bool, device=llr.device)
        for j, graph in enumerate(self.graphs):
            window_llr = llr.index_select(1, graph.active_vars)
            fixed = decision.index_select(1, graph.fixed_vars) if graph.n_fixed else None
            out = self.plain(window_llr, fixed, graph).llr
            if self.resilient is not None and j > 0:
                flag = self._detect(decision, j - 1, llr.device)
                switched[:, j] = flag
                if bool(flag.any()):
                    rows = torch.nonzero(flag).flatten()
                    sub_fixed = fixed[rows] if fixed is not None else None
                    out = out.index_copy(0, rows, self.resilient(window_llr[rows], sub_fixed, graph).llr)
            targets = graph.active_vars[graph.targets]
            decision[:, targets] = out[:, graph.targets]
        self.switched = switched
        return DecoderOutput(llr=decision, bits=hard_decision(decision))

    def _detect(self, decision: torch.Tensor, previous: int, device: torch.device) -> torch.Tensor:
        if self.detector == "genie":
            if self.truth is None:
                raise ConfigError("the genie detector needs the transmitted bits (set ChainDecoder.truth)")
            targets = self.graphs[previous].active_vars[self.graphs[previous].targets]
            return ((decision[:, targets] < 0).to(self.truth.dtype) != self.truth[:, targets]).any(dim=1)
        H = self._decided_checks[previous].to(device)
        if H.shape[0] == 0:
            return torch.zeros(decision.shape[0], dtype=torch.bool, device=device)
        hard = hard_decision(decision).to(H.dtype)
        return (torch.remainder(hard @ H.t(), 2.0) > 0).any(dim=1)


def normalized_reach(decoder: WindowDecoder) -> np.ndarray:
    """rho_c^(l): paths from each (iteration, proto check) update to the targets, normalised by the
    largest count of its iteration, (I, P_c) in [0, 1] (NWD Fig. 9(b))."""
    meta = chain_meta(decoder.code)
    steady = min(meta["coupling_width"] - 1, max(0, meta["positions"] - decoder.window))
    graph = WindowGraph(decoder.code, steady, decoder.window, decoder.target)
    counts = update_counts(graph, reach_counts(graph, decoder.iterations), decoder.proto_checks)
    peak = counts.max(axis=1, keepdims=True)
    return np.divide(counts, peak, out=np.zeros_like(counts), where=peak > 0)


def schedule_importance(decoder: WindowDecoder) -> np.ndarray:
    """Skip score kappa_c^(l) = beta_c^(l) (1 - rho_c^(l)) of a damped NWD, (I, P_c): a large damping factor
    (the update is mostly replaced by the previous message) and few paths to the targets both make an
    update a candidate for skipping (NWD Fig. 9(c))."""
    if decoder.beta is None:
        raise ConfigError("schedule importance needs a damped NWD (decoder damping: true)")
    beta = decoder.beta.detach().clamp(0.0, 1.0).cpu().numpy()
    return beta * (1.0 - normalized_reach(decoder))


def skip_order(importance: np.ndarray, kept: np.ndarray) -> list[tuple[int, int]]:
    """Order in which to skip CN updates (NWD IV-B): one by one, the computed update with the largest schedule
    importance; ties go to the later iteration, then to the rear check. Updates outside ``kept`` are never
    computed and never listed."""
    updates = [(float(importance[it, c]), it, c) for it, c in zip(*np.nonzero(np.asarray(kept, dtype=bool)))]
    return [(int(it), int(c)) for _, it, c in sorted(updates, key=lambda u: (-u[0], -u[1], -u[2]))]
