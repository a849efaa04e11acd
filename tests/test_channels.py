"""Channels: BPSK-AWGN, Gray QAM / PSK constellations, exact and max-log demapping, BICM chain.

Statistical tolerances. Every Monte-Carlo check in a test is one of K comparisons; each uses a
two-sided interval at level 1 - 0.05 / K (Bonferroni), z_K = Phi^{-1}(1 - 0.025 / K), so that the
test as a whole has >= 95% coverage under the stated theory:

* a rate of independent Bernoulli trials (bits of distinct symbols, or bits that are independent
  within a symbol) is checked with the Wilson score interval at z_K (``wilson_interval``);
* an overall BER of a constellation whose bits within one symbol are dependent (16-QAM, 8-PSK) is the
  mean of the iid per-symbol error counts E_s in {0..b} divided by b; it is checked with the CLT
  interval |mean(E_s) / b - p| <= z_K std(E_s) / (b sqrt(N_symbols)) (>= 470 bit errors in every case);
* equality of two rates uses the pooled two-proportion statistic |p1 - p2| <= z_K SE_pooled, and
  "the rates differ" asserts |p1 - p2| > z_K SE_pooled.
Theory: Q(x) = P(N(0,1) > x). With E_s = 1, R = 1: N0 = 1 / (b Eb/N0), sigma^2 = N0 / 2 per dimension.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.optimize import brentq
from scipy.special import logsumexp
from scipy.stats import norm

from eccflow.channels import (
    BICMChannel,
    Constellation,
    RandomInterleaver,
    awgn_llr,
    complex_awgn,
    ebn0_db_to_n0,
    ebn0_db_to_sigma,
    gray_code,
    hard_decision,
    make_constellation,
)
from eccflow.errors import ConfigError
from eccflow.eval.metrics import wilson_interval

Q = norm.sf


def z_family(k: int) -> float:
    """Bonferroni z for k two-sided comparisons at 95% family-wise coverage."""
    return float(norm.isf(0.025 / k))


def assert_rate(errors: int, trials: int, p: float, z: float, what: str) -> None:
    lo, hi = wilson_interval(errors, trials, z)
    print(f"{what}: measured {errors / trials:.5g} [{lo:.5g}, {hi:.5g}] theory {p:.5g}")
    assert lo <= p <= hi, f"{what}: theory {p:.6g} outside Wilson interval [{lo:.6g}, {hi:.6g}] (z={z:.2f})"


def pooled_z(e1: int, n1: int, e2: int, n2: int) -> float:
    """Two-proportion statistic (p1 - p2) / SE_pooled."""
    pooled = (e1 + e2) / (n1 + n2)
    return (e1 / n1 - e2 / n2) / math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))


def random_bits(shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    return torch.randint(0, 2, shape, generator=generator).float()


def qam16_ber(ebn0_db: float) -> float:
    """Gray 16-QAM BER with nearest-point (max-log) decisions: (3Q(a) + 2Q(3a) - Q(5a)) / 4, a = sqrt(4/5 Eb/N0)."""
    a = math.sqrt(0.8 * 10 ** (ebn0_db / 10))
    return (3 * Q(a) + 2 * Q(3 * a) - Q(5 * a)) / 4


def qam16_map_threshold(ebn0_db: float) -> float:
    """Per axis in half-distance units (levels +-1, +-3, noise std 1/a): the exact-LLR (bitwise-MAP) boundary
    t* > 2 of the inner/outer bit, the root of ln(g(y-3) + g(y+3)) - ln(g(y-1) + g(y+1)) on (1, 3)."""
    a = math.sqrt(0.8 * 10 ** (ebn0_db / 10))

    def llr(y: float) -> float:
        return logsumexp([-((y - 3) * a) ** 2 / 2, -((y + 3) * a) ** 2 / 2]) - logsumexp(
            [-((y - 1) * a) ** 2 / 2, -((y + 1) * a) ** 2 / 2]
        )

    return brentq(llr, 1.0, 3.0, xtol=1e-12)


def qam16_map_ber(ebn0_db: float) -> float:
    """BER of exact-LLR hard decisions (1-D integration with the bitwise-MAP threshold t*): the sign bit is
    decided by sign(y) as with max-log; the inner/outer bit by |y| < t* (outer level 3 errs when |y| < t*,
    inner level 1 when |y| > t*)."""
    a = math.sqrt(0.8 * 10 ** (ebn0_db / 10))
    t = qam16_map_threshold(ebn0_db)
    sign_bit = (Q(a) + Q(3 * a)) / 2
    outer = Q((3 - t) * a) - Q((3 + t) * a)
    inner = Q((t - 1) * a) + Q((t + 1) * a)
    return (sign_bit + (outer + inner) / 2) / 2


def psk8_position_flip(ebn0_db: float) -> tuple[float, float, float]:
    """Gray 8-PSK flip probability of label bits 0, 1, 2 with nearest-point decisions (exact closed form).

    Labels around the circle: 000 001 011 010 110 111 101 100. Bits 0 and 1 are half-planes; each point
    lies sin(pi/8) from the boundary for half the points and sin(3pi/8) for the other half:
    p0 = p1 = (Q1 + Q2) / 2, Qi = Q(d_i / sigma), d1 = sin(pi/8), d2 = sin(3pi/8). Bit 2's decision region
    is a pair of opposite quadrants bounded by two perpendicular lines, every point at d1 from one and
    d2 from the other; the (independent) noise projections must cross exactly one line:
    p2 = Q1 + Q2 - 2 Q1 Q2. BER = (p0 + p1 + p2) / 3 (leading term (2/3) Q(sqrt(6 Eb/N0) sin(pi/8))).
    """
    sigma = math.sqrt(ebn0_db_to_n0(ebn0_db, 1.0, 3) / 2)
    q1, q2 = Q(math.sin(math.pi / 8) / sigma), Q(math.sin(3 * math.pi / 8) / sigma)
    return (q1 + q2) / 2, (q1 + q2) / 2, q1 + q2 - 2 * q1 * q2


def channel_symbol_errors(
    constellation: Constellation, demapping: str, ebn0_db: float, batch: int, n: int, seed: int
) -> torch.Tensor:
    """Random words through BICMChannel; returns the per-symbol error counts E_s, (N_symbols,)."""
    generator = torch.Generator().manual_seed(seed)
    channel = BICMChannel(constellation, RandomInterleaver(n, seed=seed), demapping)
    bits = random_bits((batch, n), generator)
    errors = (hard_decision(channel(bits, ebn0_db, 1.0, generator)) != bits).float()
    return channel.interleaver.interleave(errors).reshape(-1, constellation.bits_per_symbol).sum(-1)


def assert_symbol_mean(per_symbol: torch.Tensor, b: int, p: float, z: float, what: str) -> None:
    ber = per_symbol.mean().item() / b
    half = z * per_symbol.std().item() / (b * math.sqrt(per_symbol.numel()))
    print(f"{what}: measured {ber:.5g} [{ber - half:.5g}, {ber + half:.5g}] theory {p:.5g}")
    assert abs(ber - p) <= half, f"{what}: measured {ber:.6g}, theory {p:.6g}, allowed +-{half:.3g} (z={z:.2f})"


# ---------------------------------------------------------------------------------------------------
# Constellations


ALL_CONSTELLATIONS = [("qam", 4), ("qam", 16), ("qam", 64), ("qam", 256)] + [("psk", 2**b) for b in range(1, 5)]


@pytest.mark.parametrize("modulation,order", ALL_CONSTELLATIONS)
def test_constellation_energy_labels_and_gray_property(modulation: str, order: int) -> None:
    c = make_constellation(modulation, order)
    b = order.bit_length() - 1
    assert c.points.shape == (order,) and c.labels.shape == (order, b) and c.bits_per_symbol == b
    assert c.labelling.value == "gray" and c.modulation.value == modulation
    assert abs(c.points.abs().pow(2).mean().item() - 1.0) < 1e-6
    assert torch.unique(c.labels, dim=0).shape[0] == order
    assert torch.unique(torch.round(torch.view_as_real(c.points) * 1e5), dim=0).shape[0] == order
    # Gray: every pair of points at the minimum distance differs in exactly one label bit
    dist = (c.points[:, None] - c.points[None, :]).abs()
    dist.fill_diagonal_(float("inf"))
    neighbours = torch.nonzero(dist < dist.min() * (1 + 1e-4))
    hamming = (c.labels[neighbours[:, 0]] != c.labels[neighbours[:, 1]]).sum(-1)
    assert neighbours.shape[0] >= order and bool((hamming == 1).all())


def test_gray_code_and_specific_points() -> None:
    assert gray_code(3).tolist() == [0, 1, 3, 2, 6, 7, 5, 4]
    # 16-QAM: label 0000 at (3 + 3j)/sqrt(10) (bit 0 on the positive side of each axis, as BPSK 1 - 2x)
    qam = make_constellation("qam", 16)
    assert torch.allclose(qam.points[0], torch.tensor(3 + 3j, dtype=torch.complex64) / math.sqrt(10))
    assert torch.allclose(qam.points[0b0101], torch.tensor(1 + 1j, dtype=torch.complex64) / math.sqrt(10))
    # BPSK as 2-PSK: bit 0 -> +1, bit 1 -> -1
    bpsk = make_constellation("psk", 2)
    assert torch.allclose(bpsk.points, torch.tensor([1, -1], dtype=torch.complex64), atol=1e-7)
    # 8-PSK: the point at angle 2 pi k / 8 carries label g(k)
    psk = make_constellation("psk", 8)
    angle = torch.remainder(torch.angle(psk.points.to(torch.complex128)), 2 * math.pi) / (2 * math.pi / 8)
    assert torch.round(angle).long().tolist() == torch.argsort(gray_code(3)).tolist()


def test_map_groups_bits_msb_first() -> None:
    qam = make_constellation("qam", 16)
    bits = torch.tensor([[0, 1, 0, 1, 1, 1, 1, 0]])
    assert torch.equal(qam.map(bits), qam.points[[0b0101, 0b1110]][None])


# ---------------------------------------------------------------------------------------------------
# Demapping


@pytest.mark.parametrize("modulation,order", [("qam", 16), ("psk", 8), ("qam", 64)])
def test_exact_llr_matches_direct_numpy(modulation: str, order: int) -> None:
    c = make_constellation(modulation, order)
    generator = torch.Generator().manual_seed(5)
    noise = 0.3 * torch.randn(4, dtype=torch.complex64, generator=generator)
    y = c.map(random_bits((4 * c.bits_per_symbol,), generator)) + noise
    n0 = 0.2
    llr = c.demap(y, n0, "exact").double().numpy()
    points, labels = c.points.numpy().astype(np.complex128), c.labels.numpy()
    expected = []
    for sym in y.numpy().astype(np.complex128):
        like = np.exp(-np.abs(sym - points) ** 2 / n0)
        for j in range(c.bits_per_symbol):
            expected.append(np.log(like[labels[:, j] == 0].sum() / like[labels[:, j] == 1].sum()))
    np.testing.assert_allclose(llr, expected, rtol=1e-4, atol=1e-4)


def test_bpsk_demap_is_2y_over_sigma2() -> None:
    """M = 2: exact and max-log LLR both equal 4 Re(y) / N0 = 2 Re(y) / sigma^2."""
    c = make_constellation("psk", 2)
    y = torch.tensor([0.3 - 1j, -1.7 + 0.2j, 0.05 + 0j])
    n0 = ebn0_db_to_n0(2.0, 0.5, 1)
    sigma = ebn0_db_to_sigma(2.0, 0.5)
    for method in ("exact", "maxlog"):
        torch.testing.assert_close(c.demap(y, n0, method), 2 * y.real / sigma**2)


def test_per_word_noise_variance_broadcasts() -> None:
    c = make_constellation("qam", 16)
    generator = torch.Generator().manual_seed(3)
    y = c.map(random_bits((2, 8), generator))
    n0 = torch.tensor([[0.1], [0.4]])
    llr = c.demap(y, n0)
    torch.testing.assert_close(llr[0], c.demap(y[0], 0.1))
    torch.testing.assert_close(llr[1], c.demap(y[1], 0.4))


@pytest.mark.statistical
def test_exact_and_maxlog_agree_in_sign_and_converge() -> None:
    """|exact - max-log| <= ln(M/2) always (lse of M/2 terms exceeds their max by <= ln(M/2)), so signs can
    differ only where |max-log| <= ln(M/2). For 16-QAM they differ exactly where an axis value falls
    between the nearest-point boundary 2 and the bitwise-MAP boundary t* of the inner/outer bit (sign
    bits never differ), a predicted probability checked with Wilson intervals. For 8-PSK Gray the two
    hard decisions coincide for every y: half-plane bits by reflection symmetry; for bit 2, with
    alpha, beta the projections on the directions of {0, 180} and {135, 315} degrees and gamma, delta
    those of {45, 225} and {90, 270} (alpha^2 + delta^2 = beta^2 + gamma^2 = S), the exact LLR's sign is
    that of G(alpha^2) + G(beta^2), G(x) = cosh(k sqrt x) - cosh(k sqrt(S - x)) increasing and odd about
    S / 2, which is the sign of alpha^2 + beta^2 - S, the max-log sign (up to float32 rounding)."""
    snrs = [-3.0, 0.0, 4.0, 8.0]
    z = z_family(len(snrs))
    generator = torch.Generator().manual_seed(11)
    relative = {"qam": [], "psk": []}
    for modulation, order, symbols in (("qam", 16, 100_000), ("psk", 8, 50_000)):
        c = make_constellation(modulation, order)
        for ebn0 in snrs:
            n0 = ebn0_db_to_n0(ebn0, 1.0, c.bits_per_symbol)
            bits = random_bits((symbols * c.bits_per_symbol,), generator)
            y = complex_awgn(c.map(bits), n0, generator)
            exact, maxlog = c.demap(y, n0, "exact"), c.demap(y, n0, "maxlog")
            assert (exact - maxlog).abs().max().item() <= math.log(order / 2) + 1e-4
            differ = (exact < 0) != (maxlog < 0)
            assert bool((maxlog[differ].abs() <= math.log(order / 2) + 1e-4).all())
            relative[modulation].append(((exact - maxlog).abs().mean() / exact.abs().mean()).item())
            # where the decisions agree in exact arithmetic, float32 rounding can still flip an LLR within 1e-4 of 0
            unexplained = differ & (exact.abs() >= 1e-4)
            if modulation == "psk":
                assert int(unexplained.sum()) == 0
                continue
            # predicted P(2 < |y_axis| < t*) for one inner/outer bit, levels 1 and 3 equally likely
            a, t = math.sqrt(0.8 * 10 ** (ebn0 / 10)), qam16_map_threshold(ebn0)
            band = np.mean([norm.cdf((t - m) * a) - norm.cdf((2 - m) * a) for m in (1, 3)]) + np.mean(
                [norm.cdf((-2 - m) * a) - norm.cdf((-t - m) * a) for m in (1, 3)]
            )
            inner_outer = differ.reshape(-1, 4)[:, [1, 3]]
            assert_rate(int(inner_outer.sum()), inner_outer.numel(), band, z, f"16-QAM {ebn0:+g} dB sign disagreement")
            assert int(unexplained.reshape(-1, 4)[:, [0, 2]].sum()) == 0
    for values in relative.values():
        print("relative mean |exact - maxlog| / |exact| per SNR:", [f"{v:.2e}" for v in values])
        assert all(later < earlier for earlier, later in zip(values, values[1:]))
        assert values[-1] < 1e-3


# ---------------------------------------------------------------------------------------------------
# BER against theory


@pytest.mark.statistical
def test_bpsk_awgn_ber_matches_q() -> None:
    """Uncoded BPSK (R = 1): BER = Q(sqrt(2 Eb/N0)); bits independent, Wilson interval."""
    snrs = [0.0, 2.0, 4.0, 6.0]
    z = z_family(len(snrs))
    generator = torch.Generator().manual_seed(1)
    for ebn0 in snrs:
        bits = random_bits((200, 5000), generator)
        _, llr = awgn_llr(bits, ebn0, 1.0, generator)
        errors = int((hard_decision(llr) != bits).sum())
        assert_rate(errors, bits.numel(), Q(math.sqrt(2 * 10 ** (ebn0 / 10))), z, f"BPSK {ebn0:g} dB")


@pytest.mark.statistical
def test_qam16_gray_ber_matches_exact_formula() -> None:
    """Max-log hard decisions are nearest-point decisions: BER = (3Q(a) + 2Q(3a) - Q(5a)) / 4. Exact-LLR
    decisions are bitwise MAP; the 1-D integration with threshold t* shows they differ from the formula by
    < 1e-3 relative at these SNRs (2e-4 at 0 dB), far inside the intervals, so both use the formula."""
    snrs = [0.0, 4.0, 8.0, 10.0]
    methods = ("maxlog", "exact")
    z = z_family(len(snrs) * len(methods))
    c = make_constellation("qam", 16)
    for i, ebn0 in enumerate(snrs):
        theory = qam16_ber(ebn0)
        assert abs(qam16_map_ber(ebn0) - theory) < 1e-3 * theory
        for method in methods:
            per_symbol = channel_symbol_errors(c, method, ebn0, batch=500, n=1000, seed=600 + i)
            assert_symbol_mean(per_symbol, 4, theory, z, f"16-QAM {method} {ebn0:g} dB")


@pytest.mark.statistical
def test_psk8_gray_ber_matches_closed_form() -> None:
    """8-PSK Gray BER = (p0 + p1 + p2) / 3 from the exact nearest-point closed form (see
    ``psk8_position_flip``); exact-LLR decisions coincide with max-log ones for 8-PSK Gray."""
    snrs = [4.0, 8.0, 10.0]
    methods = ("maxlog", "exact")
    z = z_family(len(snrs) * len(methods))
    c = make_constellation("psk", 8)
    for i, ebn0 in enumerate(snrs):
        theory = sum(psk8_position_flip(ebn0)) / 3
        for method in methods:
            per_symbol = channel_symbol_errors(c, method, ebn0, batch=500, n=999, seed=200 + i)
            assert_symbol_mean(per_symbol, 3, theory, z, f"8-PSK {method} {ebn0:g} dB")


@pytest.mark.statistical
def test_qpsk_ber_equals_bpsk() -> None:
    """4-QAM and 4-PSK Gray: each bit sees a BPSK decision at distance 1/sqrt(2) from its boundary with
    sigma^2 = N0/2 = 1/(4 Eb/N0), so BER = Q(sqrt(2 Eb/N0)); the two boundaries are perpendicular, so
    the bits are independent and the Wilson interval applies to all bits."""
    snrs = [0.0, 2.0, 4.0, 6.0]
    kinds = ("qam", "psk")
    z = z_family(len(snrs) * len(kinds))
    for modulation in kinds:
        c = make_constellation(modulation, 4)
        for i, ebn0 in enumerate(snrs):
            per_symbol = channel_symbol_errors(c, "exact", ebn0, batch=100, n=2000, seed=300 + i)
            theory = Q(math.sqrt(2 * 10 ** (ebn0 / 10)))
            assert_rate(int(per_symbol.sum()), 2 * per_symbol.numel(), theory, z, f"4-{modulation.upper()} {ebn0:g} dB")


@pytest.mark.statistical
def test_bicm_bpsk_llr_distribution_equals_awgn_llr() -> None:
    """M = 2 through the BICM chain vs ``awgn_llr`` (R = 1/2, 2 dB): two-sample Kolmogorov-Smirnov on the
    LLRs of all-zero words, D <= c(alpha) sqrt((n + m) / (n m)) with c(0.05) = 1.358 (asymptotic 95%
    critical value), plus the Gaussian moments mean 2/sigma^2 and variance 4/sigma^2 within CLT intervals
    (z_2 each; the sample variance of a Gaussian has standard error var sqrt(2 / n))."""
    rate, ebn0, batch, n = 0.5, 2.0, 100, 1000
    generator = torch.Generator().manual_seed(7)
    channel = BICMChannel(make_constellation("psk", 2), RandomInterleaver(n, seed=1))
    bits = torch.zeros(batch, n)
    bicm = channel(bits, ebn0, rate, generator).flatten().double()
    reference = awgn_llr(bits, ebn0, rate, generator)[1].flatten().double()
    sorted_all = torch.sort(torch.cat([bicm, reference])).values
    ecdf = [torch.searchsorted(torch.sort(s).values, sorted_all, right=True) / s.numel() for s in (bicm, reference)]
    ks = (ecdf[0] - ecdf[1]).abs().max().item()
    critical = 1.358 * math.sqrt(2 / bicm.numel())
    print(f"KS D = {ks:.4g}, 95% critical {critical:.4g}")
    assert ks <= critical
    sigma2 = ebn0_db_to_sigma(ebn0, rate) ** 2
    mean, var = 2 / sigma2, 4 / sigma2
    z = z_family(2)
    assert abs(bicm.mean().item() - mean) <= z * math.sqrt(var / bicm.numel())
    assert abs(bicm.var().item() - var) <= z * var * math.sqrt(2 / bicm.numel())


# ---------------------------------------------------------------------------------------------------
# Theorem 1 of the SBND-for-BICM paper: hard decisions on bit-LLRs form a binary channel whose flip
# probability does not depend on the transmitted bit. What holds (checked below, max-log decisions as in
# the paper's proof):
# * 8-PSK Gray: for every label position j, P(flip | c = 0) = P(flip | c = 1) exactly, at every SNR. The
#   positions are NOT equal: bit 2 flips about twice as often as bits 0 and 1 at high SNR
#   (Q1 + Q2 - 2 Q1 Q2 vs (Q1 + Q2) / 2), because it has twice as many nearest-neighbour pairs. The BSC
#   of Theorem 1 is the channel seen after the random interleaver, which averages the positions.
# * 16-QAM Gray: sign bits (0, 2) are symmetric at every SNR; the inner/outer bits (1, 3) flip with
#   Q(a) - Q(5a) when 0 was sent (outer level) and Q(a) + Q(3a) when 1 was sent (inner level): they
#   differ by Q(3a) + Q(5a), visible at low SNR (-3, 0 dB) and negligible above a moderate SNR
#   (< 1e-7 relative at 6 dB). Sign bits and inner/outer bits differ at every SNR (ratio -> 2).


def _flip_counts(modulation: str, order: int, ebn0_db: float, symbols: int, seed: int):
    """Per label position j and sent bit c: (flips, trials), each of shape (b, 2)."""
    c = make_constellation(modulation, order)
    b = c.bits_per_symbol
    generator = torch.Generator().manual_seed(seed)
    bits = random_bits((symbols, b), generator)
    n0 = ebn0_db_to_n0(ebn0_db, 1.0, b)
    llr = c.demap(complex_awgn(c.map(bits.flatten()), n0, generator), n0, "maxlog").reshape(symbols, b)
    flips = hard_decision(llr) != bits
    sent_one = bits.bool()
    flip_counts = torch.stack([(flips & ~sent_one).sum(0), (flips & sent_one).sum(0)], dim=1)
    trials = torch.stack([(~sent_one).sum(0), sent_one.sum(0)], dim=1)
    return flip_counts.tolist(), trials.tolist()


@pytest.mark.statistical
def test_theorem1_psk8_flip_symmetric_in_bit_value_but_not_across_positions() -> None:
    snrs = [4.0, 8.0]
    # per SNR: 6 Wilson cells, 3 equal-in-c checks, 1 position-difference check
    z = z_family(len(snrs) * 10)
    for i, ebn0 in enumerate(snrs):
        flips, trials = _flip_counts("psk", 8, ebn0, 400_000, seed=400 + i)
        theory = psk8_position_flip(ebn0)
        for j in range(3):
            for bit in (0, 1):
                assert_rate(flips[j][bit], trials[j][bit], theory[j], z, f"8-PSK {ebn0:g} dB position {j} sent {bit}")
            stat = pooled_z(flips[j][0], trials[j][0], flips[j][1], trials[j][1])
            print(f"8-PSK {ebn0:g} dB position {j}: c=0 vs c=1 z = {stat:+.2f}")
            assert abs(stat) <= z
        e2, n2 = sum(flips[2]), sum(trials[2])
        e0, t0 = sum(flips[0]), sum(trials[0])
        stat = pooled_z(e2, n2, e0, t0)
        print(f"8-PSK {ebn0:g} dB: position 2 / position 0 = {(e2 / n2) / (e0 / t0):.3f}, z = {stat:+.1f}")
        assert stat > z


@pytest.mark.statistical
def test_theorem1_qam16_inner_outer_bit_symmetric_only_above_low_snr() -> None:
    low, high = [-3.0, 0.0], [6.0, 10.0]
    # 0 dB: the inner/outer asymmetry Q(3a) + Q(5a) = 0.0037 is ~5 pooled standard errors at 600k symbols
    symbols = {-3.0: 200_000, 0.0: 600_000, 6.0: 200_000, 10.0: 200_000}
    # per SNR: 8 Wilson cells, 1 sign-bit symmetry, 1 inner/outer c=0 vs c=1 check, 1 position-difference check
    z = z_family((len(low) + len(high)) * 11)
    for i, ebn0 in enumerate(low + high):
        flips, trials = _flip_counts("qam", 16, ebn0, symbols[ebn0], seed=500 + i)
        a = math.sqrt(0.8 * 10 ** (ebn0 / 10))
        sign_bit = (Q(a) + Q(3 * a)) / 2
        inner_outer = (Q(a) - Q(5 * a), Q(a) + Q(3 * a))
        for j in range(4):
            for bit in (0, 1):
                p = sign_bit if j in (0, 2) else inner_outer[bit]
                assert_rate(flips[j][bit], trials[j][bit], p, z, f"16-QAM {ebn0:+g} dB position {j} sent {bit}")
        pooled = [[flips[j][bit] + flips[j + 2][bit] for bit in (0, 1)] for j in (0, 1)]
        pooled_trials = [[trials[j][bit] + trials[j + 2][bit] for bit in (0, 1)] for j in (0, 1)]
        sign_stat = pooled_z(pooled[0][0], pooled_trials[0][0], pooled[0][1], pooled_trials[0][1])
        io_stat = pooled_z(pooled[1][0], pooled_trials[1][0], pooled[1][1], pooled_trials[1][1])
        position_stat = pooled_z(sum(pooled[1]), sum(pooled_trials[1]), sum(pooled[0]), sum(pooled_trials[0]))
        print(f"16-QAM {ebn0:+g} dB: sign bits c0 vs c1 z = {sign_stat:+.2f}; inner/outer c0 vs c1 z = {io_stat:+.2f}; "
              f"inner/outer vs sign z = {position_stat:+.1f}")
        assert abs(sign_stat) <= z
        assert position_stat > z
        if ebn0 in low:
            assert io_stat < -z  # outer (c = 0) flips less than inner (c = 1)
        else:
            assert abs(io_stat) <= z


# ---------------------------------------------------------------------------------------------------
# BICM chain mechanics


def test_interleaver_roundtrip_and_reproducibility() -> None:
    interleaver = RandomInterleaver(50, seed=3)
    x = torch.arange(100.0).reshape(2, 50)
    assert not torch.equal(interleaver.interleave(x), x)
    assert torch.equal(interleaver.deinterleave(interleaver.interleave(x)), x)
    assert torch.equal(RandomInterleaver(50, seed=3).permutation, interleaver.permutation)
    assert not torch.equal(RandomInterleaver(50, seed=4).permutation, interleaver.permutation)


def test_bicm_channel_pads_when_n_not_multiple_of_b_and_is_reproducible() -> None:
    n = 10  # 8-PSK: 4 symbols, the last carries 1 code bit and 2 random filler bits
    channel = BICMChannel(make_constellation("psk", 8), RandomInterleaver(n, seed=0), "maxlog")
    bits = random_bits((64, n), torch.Generator().manual_seed(0))
    llr = channel(bits, 30.0, 1.0, torch.Generator().manual_seed(1))
    assert llr.shape == (64, n) and bool(torch.isfinite(llr).all())
    assert torch.equal(hard_decision(llr), bits)  # 30 dB: no errors
    again = channel(bits, 30.0, 1.0, torch.Generator().manual_seed(1))
    assert torch.equal(llr, again)
    assert not torch.equal(llr, channel(bits, 30.0, 1.0, torch.Generator().manual_seed(2)))


def test_bicm_channel_per_word_ebn0_equals_scalar_when_constant() -> None:
    channel = BICMChannel(make_constellation("qam", 16), RandomInterleaver(40, seed=0))
    bits = random_bits((8, 40), torch.Generator().manual_seed(0))
    scalar = channel(bits, 3.0, 0.5, torch.Generator().manual_seed(9))
    per_word = channel(bits, torch.full((8,), 3.0), 0.5, torch.Generator().manual_seed(9))
    torch.testing.assert_close(per_word, scalar)


@pytest.mark.statistical
def test_bicm_channel_per_word_ebn0_sets_each_words_noise() -> None:
    """M = 2, words alternating 0 dB / 6 dB: per group, LLR (1 - 2c) ~ N(mu, 2 mu), mu = 2/sigma^2;
    the group mean is checked with the CLT interval z_2 sqrt(2 mu / count)."""
    batch, n, rate = 200, 500, 0.5
    ebn0 = torch.tensor([0.0, 6.0]).repeat(batch // 2)
    channel = BICMChannel(make_constellation("psk", 2), RandomInterleaver(n, seed=2))
    generator = torch.Generator().manual_seed(4)
    bits = random_bits((batch, n), generator)
    signed = channel(bits, ebn0, rate, generator) * (1 - 2 * bits)
    z = z_family(2)
    for group, value in enumerate((0.0, 6.0)):
        mu = 2 / ebn0_db_to_sigma(value, rate) ** 2
        measured = signed[group::2]
        assert abs(measured.mean().item() - mu) <= z * math.sqrt(2 * mu / measured.numel())


# ---------------------------------------------------------------------------------------------------
# Bad input


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"modulation": "qam", "order": 12}, "power of two"),
        ({"modulation": "psk", "order": 12}, "power of two"),
        ({"modulation": "psk", "order": 1}, "power of two"),
        ({"modulation": "qam", "order": 8}, "even number of bits"),
        ({"modulation": "qam", "order": 32}, "even number of bits"),
        ({"modulation": "qam", "order": 16, "labelling": "natural"}, "only 'gray'"),
        ({"modulation": "ask", "order": 4}, "modulation must be one of"),
    ],
)
def test_bad_constellation_requests(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make_constellation(**kwargs)


@pytest.mark.parametrize(
    "n0", [-0.1, 0.0, float("nan"), float("inf"), torch.tensor([[0.1], [float("nan")]]), torch.tensor([[0.1], [-1.0]])]
)
def test_bad_noise_variance(n0) -> None:
    c = make_constellation("qam", 16)
    y = torch.zeros(2, 3, dtype=torch.complex64)
    with pytest.raises(ConfigError, match="noise variance"):
        c.demap(y, n0)
    with pytest.raises(ConfigError, match="noise variance"):
        complex_awgn(y, n0)


def test_bad_bits_and_shapes() -> None:
    c = make_constellation("qam", 16)
    with pytest.raises(ConfigError, match="multiple of bits_per_symbol = 4"):
        c.map(torch.zeros(2, 6))
    with pytest.raises(ConfigError, match="0 or 1"):
        c.map(torch.full((1, 4), 2.0))
    with pytest.raises(ConfigError, match="complex"):
        c.demap(torch.zeros(3), 0.1)
    with pytest.raises(ConfigError, match="demapping must be one of"):
        c.demap(torch.zeros(3, dtype=torch.complex64), 0.1, "approx")
    channel = BICMChannel(c, RandomInterleaver(12, seed=0))
    with pytest.raises(ConfigError, match=r"shape \(B, 12\)"):
        channel(torch.zeros(2, 13), 3.0, 0.5)
    with pytest.raises(ConfigError, match="per-word Eb/N0"):
        channel(torch.zeros(2, 12), torch.zeros(3), 0.5)
    with pytest.raises(ConfigError, match="code rate"):
        channel(torch.zeros(2, 12), 3.0, 0.0)
    with pytest.raises(ConfigError, match="Eb/N0 must be finite"):
        channel(torch.zeros(2, 12), torch.tensor([3.0, float("nan")]), 0.5)
    with pytest.raises(ConfigError, match="complex"):
        complex_awgn(torch.zeros(3), 0.1)
    with pytest.raises(ConfigError, match="interleaver of length 12"):
        RandomInterleaver(12).deinterleave(torch.zeros(2, 11))
    with pytest.raises(ConfigError, match="interleaver length"):
        RandomInterleaver(0)
    with pytest.raises(ConfigError, match="demapping must be one of"):
        BICMChannel(c, RandomInterleaver(12), "log-map")
