"""Polar codes of length n = 2^m without bit reversal (Arikan 2009, G = F^{⊗m}, F = [[1, 0], [1, 1]]).

The k most reliable synthetic channels form the information set A; the rest are frozen to 0.
Generator: the rows of F^{⊗m} indexed by A. Since F^{⊗m} F^{⊗m} = I over GF(2), the columns of
F^{⊗m} at the frozen positions are parity checks: H = (F^{⊗m}[:, frozen])^T, one check per frozen bit,
the layout of the shared ``POLAR_N*_K*.txt`` files.

Reliability orders (index i has binary digits b_0 (LSB) .. b_{m-1}):

* ``"pw"``: polarization weight W_i = sum_j b_j beta^j, beta = 2^(1/4) (He et al., "Beta-expansion: a
  theoretical framework for fast and recursive construction of polar codes", GLOBECOM 2017).
* ``"bhattacharyya"``: Arikan's recursion on Bhattacharyya parameters, Z(W^-) = 2Z - Z^2 and
  Z(W^+) = Z^2 (exact for the BEC, an upper bound otherwise), started from the BPSK-AWGN value
  Z_0 = exp(-R Eb/N0) at a design Eb/N0; with G = F^{⊗m} the first split acts on the most significant bit.

Ties in reliability are broken towards the larger index.
"""
from __future__ import annotations

import math
import re

import numpy as np

from eccflow.codes.code import Code
from eccflow.codes.registry import register_construction
from eccflow.errors import CodeFormatError, ConfigError

PW_BETA = 2.0 ** 0.25
DEFAULT_DESIGN_EBN0_DB = 0.0
ORDERS = ("pw", "bhattacharyya")


def kronecker_power(m: int) -> np.ndarray:
    """F^{⊗m} for F = [[1, 0], [1, 1]]: entry (i, j) is 1 iff the bits of j are a subset of those of i."""
    idx = np.arange(1 << m)
    return ((idx[:, None] & idx[None, :]) == idx[None, :]).astype(np.uint8)


def polarization_weights(m: int, beta: float = PW_BETA) -> np.ndarray:
    """W_i = sum_j b_j(i) beta^j for i = 0 .. 2^m - 1 (larger = more reliable)."""
    bits = (np.arange(1 << m)[:, None] >> np.arange(m)[None, :]) & 1
    return bits @ (beta ** np.arange(m))


def bhattacharyya_parameters(m: int, design_ebn0_db: float, rate: float) -> np.ndarray:
    """Z_i of the 2^m synthetic channels (smaller = more reliable), from Z_0 = exp(-rate * Eb/N0)."""
    z = np.array([math.exp(-rate * 10.0 ** (design_ebn0_db / 10.0))])
    for _ in range(m):
        doubled = np.empty(2 * z.size)
        doubled[0::2] = 2.0 * z - z * z
        doubled[1::2] = z * z
        z = doubled
    return z


def reliability_order(m: int, order: str = "pw", design_ebn0_db: float = DEFAULT_DESIGN_EBN0_DB, rate: float = 0.5) -> np.ndarray:
    """Channel indices sorted from least to most reliable."""
    idx = np.arange(1 << m)
    if order == "pw":
        score = polarization_weights(m)
    elif order == "bhattacharyya":
        score = -bhattacharyya_parameters(m, design_ebn0_db, rate)
    else:
        raise ConfigError(f"polar: unknown reliability order {order!r}; expected one of {ORDERS}")
    return np.lexsort((idx, score))


def polar_code(n: int, k: int, order: str = "pw", design_ebn0_db: float = DEFAULT_DESIGN_EBN0_DB) -> Code:
    """(n, k) polar code; frozen set = the n - k least reliable channels under ``order``.

    ``design_ebn0_db`` is used by ``order="bhattacharyya"`` only (at the code rate k / n).
    """
    if not isinstance(n, (int, np.integer)) or n < 2 or n & (n - 1):
        raise CodeFormatError(f"polar: n must be a power of two >= 2, got {n!r}")
    if not isinstance(k, (int, np.integer)) or not 0 < k < n:
        raise CodeFormatError(f"polar: k must be an integer with 0 < k < n = {n}, got {k!r}")
    if not isinstance(design_ebn0_db, (int, float, np.integer, np.floating)) or not math.isfinite(design_ebn0_db):
        raise ConfigError(f"polar: design_ebn0_db must be finite, got {design_ebn0_db!r}")
    m = int(n).bit_length() - 1
    ranked = reliability_order(m, order, design_ebn0_db, k / n)
    frozen = np.sort(ranked[: n - k])
    info = np.sort(ranked[n - k :])
    H = kronecker_power(m)[:, frozen].T
    tag = "PW" if order == "pw" else "BH"
    suffix = "" if order == "pw" or design_ebn0_db == DEFAULT_DESIGN_EBN0_DB else f"_e{design_ebn0_db:g}"
    meta = {
        "order": order,
        "frozen_set": frozen.tolist(),
        "info_set": info.tolist(),
        **({"design_ebn0_db": float(design_ebn0_db)} if order == "bhattacharyya" else {}),
    }
    return Code(H, name=f"POLAR{tag}_n{n}_k{k}{suffix}", family="POLAR", expected_k=int(k), meta=meta)


def _build_pw(match: re.Match[str]) -> Code:
    return polar_code(int(match["n"]), int(match["k"]), "pw")


def _build_bh(match: re.Match[str]) -> Code:
    ebn0 = float(match["e"]) if match["e"] is not None else DEFAULT_DESIGN_EBN0_DB
    return polar_code(int(match["n"]), int(match["k"]), "bhattacharyya", ebn0)


register_construction(
    r"polarpw_n(?P<n>\d+)_k(?P<k>\d+)",
    _build_pw,
    "polarpw_n128_k64",
    "polar code, n = 2^m, frozen set from the polarization-weight order (beta = 2^(1/4))",
)
register_construction(
    r"polarbh_n(?P<n>\d+)_k(?P<k>\d+)(?:_e(?P<e>-?\d+(?:\.\d+)?))?",
    _build_bh,
    "polarbh_n128_k64",
    f"polar code, n = 2^m, frozen set from Bhattacharyya parameters at a design Eb/N0 "
    f"(default {DEFAULT_DESIGN_EBN0_DB:g} dB, suffix _e<dB> to change)",
)
