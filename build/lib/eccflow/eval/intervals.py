"""95% confidence intervals for Monte-Carlo error rates, alone and paired.

Bit errors are not independent trials: they come in bursts inside failed frames, so a binomial interval
over n x frames bits is far too narrow. The frame is the sampling unit here. Each frame i contributes
its bit-error count e_i (0..n) and its frame-error indicator f_i; everything below is a function of the
sums of e_i, e_i^2, f_i and, for two decoders A and B decoding the same frames, of e_A,i e_B,i and
f_A,i f_B,i.

* FER: Wilson score interval (frames are independent Bernoulli trials).
* BER: Wilson score interval at the effective number of bits (Korn & Graubard, "Confidence intervals
  for proportions with small expected number of positive counts estimated from survey data", Survey
  Methodology 1998): with p = sum e_i / (n N) and the frame-level variance of p,
  v = s^2(e_i / n) / N, the effective size is n_eff = p (1 - p) / v, truncated to [N, n N]
  (a design effect between 1 and n). It keeps Wilson's good behaviour at small counts and, unlike
  a normal interval on p, never goes below zero. With no errors, n_eff = N (frames as trials).
* Paired FER difference: Newcombe's hybrid score interval for paired proportions (method 10 of
  Newcombe, "Improved confidence intervals for the difference between binomial proportions based on
  paired data", Statistics in Medicine 1998).
* Paired -ln(BER) difference: delta method on ln p_B - ln p_A with the frame-level (co)variances,
  var = (s_AA / p_A^2 + s_BB / p_B^2 - 2 s_AB / (p_A p_B)) / N over the per-frame bit-error fractions.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

Z95 = 1.959964
"""Standard normal quantile of a two-sided 95% interval."""


def wilson_interval(errors: float, trials: float, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (95% for z = 1.96).

    p_hat = e/N;  centre = (p_hat + z^2/2N) / (1 + z^2/N);
    half-width = z sqrt(p_hat(1 - p_hat)/N + z^2/4N^2) / (1 + z^2/N).
    ``errors`` and ``trials`` may be fractional (an effective sample size).
    """
    if trials <= 0:
        return (0.0, 1.0)
    p = errors / trials
    denom = 1.0 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denom
    half = z * math.sqrt(max(p * (1 - p), 0.0) / trials + z * z / (4 * trials * trials)) / denom
    # exact algebra puts p_hat inside; clamp away rounding at p_hat = 0 or 1 (e.g. hi = 0.9999999 < 1)
    return (min(p, max(0.0, centre - half)), max(p, min(1.0, centre + half)))


def _sample_variance(total: float, squares: float, frames: int) -> float:
    """Unbiased variance of per-frame values from their sum and sum of squares."""
    if frames < 2:
        return 0.0
    mean = total / frames
    return max(squares - frames * mean * mean, 0.0) / (frames - 1)


def clustered_rate_interval(errors: float, squared_errors: float, frames: int, bits_per_frame: int,
                            z: float = Z95) -> tuple[float, float]:
    """Frame-clustered interval of BER = sum e_i / (n N) (Korn & Graubard effective-size Wilson).

    Parameters: ``errors`` = sum_i e_i, ``squared_errors`` = sum_i e_i^2, ``frames`` = N,
    ``bits_per_frame`` = n (bits counted per frame).
    """
    if frames <= 0 or bits_per_frame <= 0:
        return (0.0, 1.0)
    total_bits = frames * bits_per_frame
    p = errors / total_bits
    variance = _sample_variance(errors / bits_per_frame, squared_errors / bits_per_frame**2, frames) / frames
    if errors <= 0 or variance <= 0:
        effective = float(frames)
    else:
        effective = min(max(p * (1 - p) / variance, float(frames)), float(total_bits))
    return wilson_interval(p * effective, effective, z)


def neg_ln(p: float) -> float:
    """-ln(p), infinite at p = 0."""
    return -math.log(p) if p > 0 else math.inf


class Verdict:
    """Reading of a paired 95% interval of (decoder - baseline), oriented so that positive is better."""

    BETTER = "better"
    WORSE = "worse"
    NOT_RESOLVED = "not resolved"

    @staticmethod
    def of(low: float, high: float) -> str:
        if not (math.isfinite(low) and math.isfinite(high)):
            return Verdict.NOT_RESOLVED
        if low > 0:
            return Verdict.BETTER
        if high < 0:
            return Verdict.WORSE
        return Verdict.NOT_RESOLVED

    @staticmethod
    def sign(verdict: str) -> float:
        """+1 better, -1 worse, 0 not resolved (for MLflow metrics)."""
        return {Verdict.BETTER: 1.0, Verdict.WORSE: -1.0}.get(verdict, 0.0)


@dataclass
class PairedDifference:
    """Decoder A against baseline B on the same frames at one Eb/N0.

    ``d_neg_ln_ber`` = -ln BER_A - (-ln BER_B) (positive: A better); ``d_fer`` = FER_B - FER_A (positive:
    A better); each with its paired 95% interval and its verdict.
    """

    ebn0_db: float
    decoder: str
    baseline: str
    d_neg_ln_ber: float
    d_neg_ln_ber_ci95: tuple[float, float]
    ber_verdict: str
    d_fer: float
    d_fer_ci95: tuple[float, float]
    fer_verdict: str
    frames: int
    frames_only_decoder_failed: int
    frames_only_baseline_failed: int

    def to_dict(self) -> dict:
        return asdict(self)


def paired_fer_difference(both: int, only_a: int, only_b: int, frames: int,
                          z: float = Z95) -> tuple[float, tuple[float, float]]:
    """FER_B - FER_A with Newcombe's hybrid score interval (method 10) for paired proportions.

    ``both``: frames where A and B failed, ``only_a`` / ``only_b``: where only A / only B failed.
    """
    if frames <= 0:
        return 0.0, (-1.0, 1.0)
    neither = frames - both - only_a - only_b
    a_fail, b_fail = both + only_a, both + only_b
    p_a, p_b = a_fail / frames, b_fail / frames
    l_a, u_a = wilson_interval(a_fail, frames, z)
    l_b, u_b = wilson_interval(b_fail, frames, z)
    margins = a_fail * (frames - a_fail) * b_fail * (frames - b_fail)
    phi = (both * neither - only_a * only_b) / math.sqrt(margins) if margins > 0 else 0.0
    delta = p_b - p_a
    low = delta - math.sqrt(max((p_b - l_b) ** 2 - 2 * phi * (p_b - l_b) * (u_a - p_a) + (u_a - p_a) ** 2, 0.0))
    high = delta + math.sqrt(max((u_b - p_b) ** 2 - 2 * phi * (u_b - p_b) * (p_a - l_a) + (p_a - l_a) ** 2, 0.0))
    return delta, (max(low, -1.0), min(high, 1.0))


def paired_neg_ln_ber_difference(errors_a: float, squares_a: float, errors_b: float, squares_b: float,
                                 cross: float, frames: int, bits_per_frame: int,
                                 z: float = Z95) -> tuple[float, tuple[float, float]]:
    """(-ln BER_A) - (-ln BER_B) = ln BER_B - ln BER_A with its paired delta-method interval.

    ``cross`` = sum_i e_A,i e_B,i. Infinite or undefined when either decoder made no bit error: then the
    interval is (-inf, inf) and the FER difference is what can be read.
    """
    if errors_a <= 0 or errors_b <= 0 or frames < 2:
        return math.nan, (-math.inf, math.inf)
    n = bits_per_frame
    mean_a, mean_b = errors_a / (n * frames), errors_b / (n * frames)
    var_a = _sample_variance(errors_a / n, squares_a / n**2, frames)
    var_b = _sample_variance(errors_b / n, squares_b / n**2, frames)
    covariance = (cross / n**2 - frames * mean_a * mean_b) / (frames - 1)
    variance = (var_a / mean_a**2 + var_b / mean_b**2 - 2 * covariance / (mean_a * mean_b)) / frames
    delta = math.log(mean_b) - math.log(mean_a)
    half = z * math.sqrt(max(variance, 0.0))
    return delta, (delta - half, delta + half)
