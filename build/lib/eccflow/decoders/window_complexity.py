"""Operation counts of one window of a window decoder (NWD paper Table I analogue).

Counted on a steady-state window (its fixed variables included as check inputs), per window and I
iterations, under this model (d = check degree including fixed inputs, o = outputs the check computes):

* min-sum check update: 2d - 3 comparisons (first and second minimum), d - 1 sign multiplications for the
  parity of the input signs plus o for the output signs, o weight multiplications when the messages are
  weighted (NWD weights or a WD factor != 1);
* sum-product check update: d + o table look-ups (phi of every input and output), d - 1 + o additions
  (sum of the phi values, then one subtraction per output), d - 1 + o sign multiplications;
* variable update from the second iteration on, for a variable whose messages some updated check needs:
  deg(v) additions for llr_v + sum of its check messages, plus one subtraction per needed message;
* decision: deg(v) additions per target variable;
* adaptive NWD: the unsatisfied-check detector adds d - 1 sign multiplications (XOR) per check that
  involves only the previous window's targets.

A check update is computed only for the outputs that can reach a target (target-specific NWD; every
non-fixed output otherwise) and not at all when the schedule skips it. Energy units (Horowitz model, as the
paper): addition 1, comparison 1, sign multiplication 0.3, weight multiplication 4, table look-up 6.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from eccflow.codes import Code
from eccflow.decoders.message_passing import CheckUpdate
from eccflow.decoders.window import TrainingScope, WindowDecoder, WindowGraph, chain_meta, reach_counts

UNITS = {"additions": 1.0, "comparisons": 1.0, "sign_multiplications": 0.3, "weight_multiplications": 4.0,
         "table_lookups": 6.0}


@dataclass
class WindowComplexity:
    """Operations per window and the weights a decoder stores."""

    additions: int = 0
    comparisons: int = 0
    sign_multiplications: int = 0
    weight_multiplications: int = 0
    table_lookups: int = 0
    check_updates: int = 0
    stored_weights: int = 0

    @property
    def energy(self) -> float:
        return sum(getattr(self, k) * u for k, u in UNITS.items())

    def to_dict(self) -> dict[str, float]:
        return {**asdict(self), "energy": self.energy}


def steady_state_graph(decoder: WindowDecoder) -> WindowGraph:
    """The window whose fixed inputs are complete (start w - 1) when the chain is long enough."""
    meta = chain_meta(decoder.code)
    start = min(meta["coupling_width"] - 1, max(0, meta["positions"] - decoder.window))
    return WindowGraph(decoder.code, start, decoder.window, decoder.target)


def window_complexity(decoder: WindowDecoder, adaptive: bool = False) -> WindowComplexity:
    """Counts of ``decoder`` (its rule, weights, scope and skip schedule) on a steady-state window."""
    graph = steady_state_graph(decoder)
    iterations = decoder.iterations
    skip = decoder.skip.cpu().numpy()
    fixed = graph.edge_fixed.numpy()
    edge_check, edge_var = graph.edge_check.numpy(), graph.edge_var.numpy()
    skipped = skip[:, graph.edge_proto_check.numpy()]
    if decoder.neural and decoder.scope is TrainingScope.TARGET:
        computed = (reach_counts(graph, iterations, skip=skip) > 0) & ~skipped & ~fixed
    else:
        computed = ~skipped & ~fixed
    degree = np.bincount(edge_check, minlength=graph.num_checks)
    var_degree = np.bincount(edge_var, minlength=graph.n)
    weighted = decoder.neural or decoder.normalization != 1.0
    sum_product = decoder.check_rule is CheckUpdate.SUM_PRODUCT
    c = WindowComplexity(stored_weights=decoder.stored_weights * (2 if adaptive else 1))
    for it in range(iterations):
        outputs = np.bincount(edge_check, computed[it], minlength=graph.num_checks)
        updated = outputs > 0
        d, o = degree[updated], outputs[updated]
        c.check_updates += int(updated.sum())
        c.sign_multiplications += int((d - 1 + o).sum())
        if sum_product:
            c.table_lookups += int((d + o).sum())
            c.additions += int((d - 1 + o).sum())
        else:
            c.comparisons += int((2 * d - 3).sum())
        if weighted:
            c.weight_multiplications += int(o.sum())
        if it > 0:  # the first iteration's variable messages are the channel LLRs
            needed = updated[edge_check] & ~fixed
            per_var = np.bincount(edge_var, needed, minlength=graph.n)
            c.additions += int((var_degree[per_var > 0] + per_var[per_var > 0]).sum())
    c.additions += int(var_degree[graph.targets.numpy()].sum())
    if adaptive:
        c.sign_multiplications += detector_sign_multiplications(decoder.code, decoder.target)
    return c


def detector_sign_multiplications(code: Code, target: int) -> int:
    """XORs of the unsatisfied-check detector: d - 1 per check of one target block of positions."""
    meta = chain_meta(code)
    first = meta["coupling_width"] - 1  # a steady-state block: all its checks' variables lie in the chain
    block = np.asarray(code.H)[(meta["check_position"] >= first) & (meta["check_position"] < first + target)]
    return int((block.sum(axis=1) - 1).sum())


def complexity_table(rows: dict[str, WindowComplexity], reference: str = "WD") -> str:
    """Markdown table of the counts, with the energy relative to ``reference``."""
    base = rows[reference].energy if reference in rows else None
    lines = ["| decoder | additions | comparisons | sign mult. | weight mult. | look-ups | CN updates | energy units | "
             f"vs {reference} | stored weights |", "|---|" + "---:|" * 9]
    for name, c in rows.items():
        rel = f"{100 * (c.energy / base - 1):+.0f}%" if base else "n/a"
        lines.append(f"| {name} | {c.additions} | {c.comparisons} | {c.sign_multiplications} | "
                     f"{c.weight_multiplications} | {c.table_lookups} | {c.check_updates} | {c.energy:.1f} | {rel} | "
                     f"{c.stored_weights} |")
    return "\n".join(lines) + "\n"

