"""Primitive narrow-sense binary BCH codes (Lin & Costello, *Error Control Coding*, 2nd ed., ch. 6).

For n = 2^m - 1 and designed distance delta = 2t + 1, the generator polynomial is
``g(x) = lcm(m_1(x), ..., m_{delta-1}(x))`` where ``m_i`` is the minimal polynomial of alpha^i and
alpha is a root of the primitive polynomial ``PRIMITIVE_POLYNOMIALS[m]``. Since minimal
polynomials are irreducible, the lcm is the product over the distinct cyclotomic cosets
``C_s = {s 2^j mod n}`` meeting {1, ..., delta - 1}. The parity polynomial is
``h(x) = (x^n - 1) / g(x)`` (degree k) and H is the (n - k) x n matrix whose row i is
``x^i h*(x)`` with ``h*(x) = x^k h(1/x)`` the reciprocal of h (Lin & Costello eq. 5.17): each row is the
previous one cyclically shifted right by one, the layout of the shared ``BCH_N*_K*.txt`` files.
"""
from __future__ import annotations

import re

import numpy as np

from eccflow.codes.code import Code
from eccflow.codes.registry import register_construction
from eccflow.errors import CodeFormatError

# Primitive polynomial of degree m, as an integer whose bit i is the coefficient of x^i.
# The table of Lin & Costello (Table 2.7) / Peterson & Weldon, also MATLAB's ``primpoly`` defaults.
PRIMITIVE_POLYNOMIALS: dict[int, int] = {
    3: 0b1011,  # x^3 + x + 1
    4: 0b10011,  # x^4 + x + 1
    5: 0b100101,  # x^5 + x^2 + 1
    6: 0b1000011,  # x^6 + x + 1
    7: 0b10001001,  # x^7 + x^3 + 1
    8: 0b100011101,  # x^8 + x^4 + x^3 + x^2 + 1
    9: 0b1000010001,  # x^9 + x^4 + 1
    10: 0b10000001001,  # x^10 + x^3 + 1
}


class GF2m:
    """GF(2^m) built from a primitive polynomial: elements are ints, alpha = 2 (the class x)."""

    def __init__(self, m: int, primitive_poly: int | None = None) -> None:
        if m not in PRIMITIVE_POLYNOMIALS:
            raise CodeFormatError(f"GF(2^m): m must be in {min(PRIMITIVE_POLYNOMIALS)}..{max(PRIMITIVE_POLYNOMIALS)}, got {m}")
        poly = PRIMITIVE_POLYNOMIALS[m] if primitive_poly is None else int(primitive_poly)
        if poly >> m != 1:
            raise CodeFormatError(f"GF(2^{m}): polynomial {poly:#b} does not have degree {m}")
        self.m, self.n, self.poly = m, (1 << m) - 1, poly
        exp = np.zeros(2 * self.n, dtype=np.int64)
        log = np.full(self.n + 1, -1, dtype=np.int64)
        value = 1
        for i in range(self.n):
            if log[value] != -1:
                raise CodeFormatError(f"GF(2^{m}): polynomial {poly:#b} is not primitive (alpha has order {i})")
            exp[i], log[value] = value, i
            value <<= 1
            if value >> m:
                value ^= poly
        exp[self.n :] = exp[: self.n]
        self.exp, self.log = exp, log

    def mul(self, a: int, b: int) -> int:
        """Product in GF(2^m) via alpha^(log a + log b)."""
        if a == 0 or b == 0:
            return 0
        return int(self.exp[self.log[a] + self.log[b]])

    def minimal_polynomial(self, coset: list[int]) -> np.ndarray:
        """prod_{j in coset} (x - alpha^j): binary coefficients, lowest degree first."""
        coeffs = [1]
        for j in coset:
            root = int(self.exp[j % self.n])
            shifted = [0] + coeffs  # x * p(x)
            scaled = [self.mul(root, c) for c in coeffs] + [0]  # alpha^j * p(x)
            coeffs = [a ^ b for a, b in zip(shifted, scaled)]
        if any(c > 1 for c in coeffs):
            raise CodeFormatError(f"GF(2^{self.m}): coset {coset} is not closed under squaring")
        return np.asarray(coeffs, dtype=np.uint8)


def cyclotomic_cosets(n: int) -> list[list[int]]:
    """Cyclotomic cosets of 2 modulo n, C_s = {s, 2s, 4s, ...} (mod n), ordered by leader s."""
    seen = np.zeros(n, dtype=bool)
    cosets = []
    for s in range(n):
        if seen[s]:
            continue
        coset, j = [], s
        while not seen[j]:
            seen[j] = True
            coset.append(j)
            j = 2 * j % n
        cosets.append(coset)
    return cosets


def poly_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Product of binary polynomials (coefficients lowest degree first)."""
    return (np.convolve(a.astype(np.int64), b.astype(np.int64)) % 2).astype(np.uint8)


def poly_divmod(num: np.ndarray, den: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Binary polynomial long division num = q den + r (coefficients lowest degree first)."""
    rem = num.astype(np.uint8).copy()
    d = den.size - 1
    if den[d] != 1:
        raise CodeFormatError("polynomial division: divisor must have a leading coefficient 1")
    quot = np.zeros(max(rem.size - d, 1), dtype=np.uint8)
    for shift in range(rem.size - 1 - d, -1, -1):
        if rem[shift + d]:
            quot[shift] = 1
            rem[shift : shift + d + 1] ^= den
    return quot, rem[:d]


def bch_generator_polynomial(field: GF2m, t: int) -> np.ndarray:
    """g(x) = lcm of the minimal polynomials of alpha^1 .. alpha^(2t), lowest degree first."""
    wanted = {i % field.n for i in range(1, 2 * t + 1)}
    g = np.ones(1, dtype=np.uint8)
    for coset in cyclotomic_cosets(field.n):
        if wanted.intersection(coset):
            g = poly_mul(g, field.minimal_polynomial(coset))
    return g


def cyclic_parity_check(h: np.ndarray, n: int) -> np.ndarray:
    """(n - k) x n matrix with row i = x^i h*(x), h*(x) = x^k h(1/x) (h lowest degree first, deg h = k)."""
    k = h.size - 1
    reciprocal = h[::-1]
    offset = np.arange(n)[None, :] - np.arange(n - k)[:, None]
    inside = (offset >= 0) & (offset <= k)
    return np.where(inside, reciprocal[np.clip(offset, 0, k)], 0).astype(np.uint8)


def bch_code(m: int, t: int, primitive_poly: int | None = None) -> Code:
    """Primitive narrow-sense BCH code of length 2^m - 1 and designed distance 2t + 1.

    ``primitive_poly`` (bit i = coefficient of x^i) overrides the default table entry (the name then ends in
    ``_p<poly>``); the code changes only by a permutation of coordinates. ``meta`` holds ``delta`` (designed
    distance), g(x), h(x) and the primitive polynomial, coefficients lowest degree first.
    """
    if not isinstance(m, (int, np.integer)) or not 3 <= m <= 10:
        raise CodeFormatError(f"BCH: m must be an integer in 3..10 (n = 2^m - 1 = 7..1023), got {m!r}")
    n = (1 << int(m)) - 1
    if not isinstance(t, (int, np.integer)) or t < 1:
        raise CodeFormatError(f"BCH: t must be a positive integer (designed distance 2t + 1), got {t!r}")
    field = GF2m(int(m), primitive_poly)
    g = bch_generator_polynomial(field, int(t))
    k = n - (g.size - 1)
    if k <= 0:
        raise CodeFormatError(f"BCH: t = {t} is too large for n = {n}: g(x) has degree {g.size - 1}, leaving k = {k}")
    x_n_minus_1 = np.zeros(n + 1, dtype=np.uint8)
    x_n_minus_1[[0, n]] = 1
    h, rem = poly_divmod(x_n_minus_1, g)
    if rem.any():
        raise CodeFormatError(f"BCH(m={m}, t={t}): internal error, g(x) does not divide x^n - 1")
    meta = {
        "m": int(m),
        "t": int(t),
        "delta": 2 * int(t) + 1,
        "primitive_polynomial": [int(b) for b in np.binary_repr(field.poly)[::-1]],
        "generator_polynomial": g.tolist(),
        "parity_polynomial": h.tolist(),
    }
    custom = "" if field.poly == PRIMITIVE_POLYNOMIALS[int(m)] else f"_p{field.poly}"
    return Code(cyclic_parity_check(h, n), name=f"BCH_m{m}_t{t}{custom}", family="BCH", expected_k=k, meta=meta)


def _build(match: re.Match[str]) -> Code:
    return bch_code(int(match["m"]), int(match["t"]))


register_construction(
    r"bch_m(?P<m>\d+)_t(?P<t>\d+)",
    _build,
    "bch_m6_t3",
    "primitive narrow-sense binary BCH code, n = 2^m - 1 (3 <= m <= 10), designed distance 2t + 1",
)
