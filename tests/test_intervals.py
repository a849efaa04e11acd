"""Coverage of the frame-clustered BER interval and of the paired intervals.

The populations are real: the per-frame bit-error counts of sum-product BP (5 and 20 iterations) on
20,000 frames of two codes at two Eb/N0. Repeated "runs" draw frames i.i.d. from that empirical
distribution, whose BER (and, for pairs, whose differences) are therefore known exactly. Each run has
about 100 frame errors, the quotable floor.

Tolerance: with R = 2000 runs and a true coverage of 0.95, the observed coverage has standard deviation
sqrt(0.95 x 0.05 / R) = 0.0049, so the accepted band [0.93, 0.97] is +-4.1 standard deviations: a
correct interval falls outside it with probability below 1e-4 (normal approximation to the binomial),
and the seeds are fixed.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from eccflow.codes import get_code
from eccflow.decoders.message_passing import BeliefPropagationDecoder
from eccflow.eval.intervals import (
    Verdict,
    clustered_rate_interval,
    paired_fer_difference,
    paired_neg_ln_ber_difference,
    wilson_interval,
)
from eccflow.channels.words import bpsk_awgn_channel

RUNS = 2000
BAND = (0.93, 0.97)


def per_frame_errors(name: str, ebn0: float, iterations: tuple[int, ...], frames: int = 20_000) -> np.ndarray:
    """(frames, len(iterations)) bit errors per frame of BP with each iteration count, same words."""
    code = get_code(name)
    generator = torch.Generator().manual_seed(2024)
    bits = torch.zeros(frames, code.n)
    llr = bpsk_awgn_channel(bits, ebn0, code.rate, generator)
    columns = [(BeliefPropagationDecoder(code, it)(llr).bits != bits).sum(dim=1) for it in iterations]
    return torch.stack(columns, dim=1).numpy().astype(np.int64)


def population(errors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct rows of per-frame errors and their probabilities."""
    rows, counts = np.unique(errors, axis=0, return_counts=True)
    return rows, counts / counts.sum()


CASES = [("BCH_n63_k45", 4.0), ("BCH_n63_k45", 5.0), ("POLAR_n64_k32", 4.0), ("POLAR_n64_k32", 5.0)]


@pytest.mark.statistical
@pytest.mark.parametrize("name,ebn0", CASES)
def test_clustered_ber_interval_covers_95_percent(name, ebn0):
    n = get_code(name).n
    rows, probs = population(per_frame_errors(name, ebn0, (5,)))
    values = rows[:, 0].astype(float)
    true_ber = float(probs @ values) / n
    fer = float(probs[values > 0].sum())
    frames = int(math.ceil(100 / fer))  # about 100 frame errors per run
    rng = np.random.default_rng(7)
    counts = rng.multinomial(frames, probs, size=RUNS)
    errors, squares = counts @ values, counts @ values**2
    new = old = 0
    for e, s in zip(errors, squares):
        lo, hi = clustered_rate_interval(e, s, frames, n)
        new += lo <= true_ber <= hi
        lo, hi = wilson_interval(e, frames * n)  # bits as independent trials
        old += lo <= true_ber <= hi
    assert BAND[0] <= new / RUNS <= BAND[1], (name, ebn0, new / RUNS)
    assert old / RUNS < BAND[0], (name, ebn0, old / RUNS)  # the bits-as-trials interval fails the same test


@pytest.mark.statistical
@pytest.mark.parametrize("name,ebn0", [("BCH_n63_k45", 4.0), ("POLAR_n64_k32", 5.0)])
def test_paired_intervals_cover_95_percent(name, ebn0):
    """BP-5 (decoder) against BP-20 (baseline) on the same frames: -ln(BER) and FER differences."""
    n = get_code(name).n
    rows, probs = population(per_frame_errors(name, ebn0, (5, 20), frames=10_000))
    a, b = rows[:, 0].astype(float), rows[:, 1].astype(float)
    true_d_ber = math.log(probs @ b) - math.log(probs @ a)
    true_d_fer = float(probs @ (b > 0)) - float(probs @ (a > 0))
    frames = int(math.ceil(100 / float(probs @ (b > 0))))
    rng = np.random.default_rng(11)
    counts = rng.multinomial(frames, probs, size=RUNS)
    covered_ber = covered_fer = 0
    for c in counts:
        both, only_a, only_b = c @ ((a > 0) & (b > 0)), c @ ((a > 0) & (b == 0)), c @ ((a == 0) & (b > 0))
        _, (lo, hi) = paired_fer_difference(int(both), int(only_a), int(only_b), frames)
        covered_fer += lo <= true_d_fer <= hi
        _, (lo, hi) = paired_neg_ln_ber_difference(c @ a, c @ a**2, c @ b, c @ b**2, c @ (a * b), frames, n)
        covered_ber += lo <= true_d_ber <= hi
    assert BAND[0] <= covered_fer / RUNS <= BAND[1], covered_fer / RUNS
    assert BAND[0] <= covered_ber / RUNS <= BAND[1], covered_ber / RUNS


def test_clustered_interval_edges():
    assert clustered_rate_interval(0, 0, 1000, 63) == wilson_interval(0, 1000)  # no error: frames as trials
    lo, hi = clustered_rate_interval(63 * 5, 63 * 63 * 5, 1000, 63)  # every error in 5 all-wrong frames
    assert (lo, hi) == pytest.approx(wilson_interval(5, 1000), rel=1e-3)  # = the FER interval
    lo, hi = clustered_rate_interval(100, 100, 10_000, 10)  # one error per failed frame: binomial over bits at most
    assert lo < 1e-3 < hi


def test_verdicts_and_degenerate_pairs():
    assert Verdict.of(0.1, 0.3) == "better" and Verdict.of(-0.3, -0.1) == "worse"
    assert Verdict.of(-0.1, 0.2) == "not resolved" and Verdict.of(-math.inf, math.inf) == "not resolved"
    delta, interval = paired_neg_ln_ber_difference(0, 0, 10, 100, 0, 1000, 31)
    assert math.isnan(delta) and Verdict.of(*interval) == "not resolved"
    delta, (lo, hi) = paired_fer_difference(0, 0, 30, 1000)  # only the baseline failed, 30 times
    assert delta == pytest.approx(0.03) and lo > 0
