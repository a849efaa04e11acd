"""Gray-labelled square M-QAM and M-PSK constellations, bit mapper and bit-LLR demapper.

Conventions:

* Unit average symbol energy: E_s = (1/M) sum_x |x|^2 = 1.
* Labels are written MSB first: point ``points[l]`` carries the b = log2 M bits of the integer l,
  ``labels[l] = (l >> (b-1), ..., l & 1)``; the Gray structure lives in where each label sits.
* Gray code: binary-reflected, g(i) = i XOR (i >> 1).
* QAM (b even, L = 2^(b/2) levels per axis): the first b/2 bits label the in-phase axis, the last
  b/2 the quadrature axis; axis level i in [0, L) has amplitude L - 1 - 2i (scaled) and label g(i),
  so bit 0 sits on the positive side of each axis as in BPSK x_s = 1 - 2x (4-QAM is two BPSKs).
* PSK: the point exp(j 2 pi k / M) carries label g(k) (BPSK: bit 0 -> +1, bit 1 -> -1).
* Channel y = x + w, w ~ CN(0, N0) (N0/2 per real dimension). Bit-LLR
  LLR_j(y) = ln P(b_j = 0 | y) / P(b_j = 1 | y)  (positive means 0), for equiprobable symbols:
      exact log-MAP:  LLR_j = logsumexp_{x in X_j^0} (-|y - x|^2 / N0) - logsumexp_{x in X_j^1} (-|y - x|^2 / N0)
      max-log:        LLR_j = (min_{x in X_j^1} |y - x|^2 - min_{x in X_j^0} |y - x|^2) / N0
  where X_j^c is the set of points whose j-th label bit is c. |exact - max-log| <= ln(M/2).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

import torch

from eccflow.errors import ConfigError


class Modulation(str, Enum):
    """Constellation family."""

    QAM = "qam"
    PSK = "psk"


class Labelling(str, Enum):
    """Bit labelling of the constellation points (only Gray is implemented)."""

    GRAY = "gray"


class Demapping(str, Enum):
    """Bit-LLR rule: exact log-MAP (logsumexp over the constellation) or its max-log approximation."""

    EXACT = "exact"
    MAXLOG = "maxlog"


def gray_code(num_bits: int) -> torch.Tensor:
    """Binary-reflected Gray code g(i) = i XOR (i >> 1), i = 0 .. 2^num_bits - 1; int64 (2^num_bits,)."""
    i = torch.arange(2**num_bits)
    return i ^ (i >> 1)


def _inverse_gray(num_bits: int) -> torch.Tensor:
    """g^{-1}: entry l is the index i with g(i) = l; int64 (2^num_bits,)."""
    return torch.argsort(gray_code(num_bits))


def _label_bits(order: int, num_bits: int) -> torch.Tensor:
    """Row l holds the bits of l, MSB first; int64 (order, num_bits)."""
    shifts = torch.arange(num_bits - 1, -1, -1)
    return (torch.arange(order)[:, None] >> shifts) & 1


def parse_demapping(demapping: str | Demapping) -> Demapping:
    """``Demapping`` from its name; ConfigError on an unknown name."""
    try:
        return Demapping(demapping)
    except ValueError:
        raise ConfigError(
            f"demapping must be one of {[d.value for d in Demapping]}, got {demapping!r}"
        ) from None


def check_noise_variance(n0: float | torch.Tensor) -> None:
    """Raise ConfigError unless every N0 is finite and > 0."""
    if isinstance(n0, torch.Tensor):
        ok = bool(torch.isfinite(n0).all()) and bool((n0 > 0).all())
    else:
        ok = math.isfinite(n0) and n0 > 0
    if not ok:
        raise ConfigError(f"noise variance N0 must be finite and > 0, got {n0!r}")


@dataclass(frozen=True, eq=False)
class Constellation:
    """A labelled constellation of M = 2^b points with unit average energy.

    Attributes:
        points: complex64 (M,), ``points[l]`` is the point whose label is the integer l.
        labels: int64 (M, b), ``labels[l]`` are the bits of l, MSB first.
        modulation: the family (QAM or PSK).
        labelling: the labelling name (Gray).
    """

    points: torch.Tensor
    labels: torch.Tensor
    modulation: Modulation
    labelling: Labelling

    @property
    def order(self) -> int:
        """M, the number of points."""
        return self.points.shape[0]

    @property
    def bits_per_symbol(self) -> int:
        """b = log2 M."""
        return self.labels.shape[1]

    def map(self, bits: torch.Tensor) -> torch.Tensor:
        """Bits (..., N*b) of 0/1 values -> symbols (..., N) complex64; symbol t carries bits t*b .. t*b+b-1."""
        b = self.bits_per_symbol
        if bits.dim() == 0 or bits.shape[-1] % b:
            raise ConfigError(
                f"the last axis of the bits must be a multiple of bits_per_symbol = {b}, got shape {tuple(bits.shape)}"
            )
        if bool(((bits != 0) & (bits != 1)).any()):
            raise ConfigError("bits must be 0 or 1")
        grouped = bits.reshape(*bits.shape[:-1], -1, b).long()
        weights = 2 ** torch.arange(b - 1, -1, -1, device=bits.device)
        return self.points.to(bits.device)[(grouped * weights).sum(-1)]

    def demap(
        self, y: torch.Tensor, n0: float | torch.Tensor, demapping: str | Demapping = Demapping.EXACT
    ) -> torch.Tensor:
        """Received symbols y (..., N) complex -> bit-LLRs (..., N*b), positive means bit 0.

        Exact: LLR_j = lse_{X_j^0}(-|y-x|^2/N0) - lse_{X_j^1}(-|y-x|^2/N0); max-log replaces lse by max.
        ``n0`` is a float or a tensor broadcastable to y's shape (e.g. (B, 1) for per-word N0).
        Memory is O(N b M) per call.
        """
        method = parse_demapping(demapping)
        if not torch.is_complex(y):
            raise ConfigError(f"received symbols must be a complex tensor, got dtype {y.dtype}")
        check_noise_variance(n0)
        points = self.points.to(device=y.device, dtype=y.dtype)
        # squared distances |y - x|^2, (..., N, M), in the real dtype of y
        dist2 = (y.real.unsqueeze(-1) - points.real) ** 2 + (y.imag.unsqueeze(-1) - points.imag) ** 2
        scale = n0.to(dist2).unsqueeze(-1) if isinstance(n0, torch.Tensor) else n0
        metric = -dist2 / scale
        # per bit j: point indices sorted so that the M/2 points with bit 0 come first, (b, M)
        by_bit = torch.argsort(self.labels.T, dim=1, stable=True).to(y.device)
        grouped = metric[..., by_bit]  # (..., N, b, M)
        half = self.order // 2
        if method is Demapping.EXACT:
            llr = torch.logsumexp(grouped[..., :half], -1) - torch.logsumexp(grouped[..., half:], -1)
        else:
            llr = grouped[..., :half].amax(-1) - grouped[..., half:].amax(-1)
        return llr.flatten(-2)


def make_constellation(
    modulation: str | Modulation, order: int, labelling: str | Labelling = Labelling.GRAY
) -> Constellation:
    """Gray square M-QAM (M = 4, 16, 64, ...) or Gray M-PSK (M = 2, 4, 8, ...) with E_s = 1."""
    try:
        modulation = Modulation(modulation)
    except ValueError:
        raise ConfigError(f"modulation must be one of {[m.value for m in Modulation]}, got {modulation!r}") from None
    try:
        labelling = Labelling(labelling)
    except ValueError:
        raise ConfigError(f"labelling {labelling!r} is not implemented: only 'gray' labelling is available") from None
    if isinstance(order, bool) or not isinstance(order, int) or order < 2 or order & (order - 1):
        raise ConfigError(f"constellation order M must be a power of two >= 2, got {order!r}")
    b = order.bit_length() - 1
    labels = _label_bits(order, b)
    if modulation is Modulation.QAM:
        if b % 2:
            raise ConfigError(
                f"square QAM needs an even number of bits per symbol (M = 4, 16, 64, 256, ...), got M = {order}"
            )
        half = b // 2
        side = 2**half
        level = _inverse_gray(half).double()  # axis level index of each axis label
        amplitude = side - 1 - 2 * level
        label = torch.arange(order)
        points = torch.complex(amplitude[label >> half], amplitude[label & (side - 1)])
    else:
        position = _inverse_gray(b).double()  # index k around the circle of each label
        points = torch.polar(torch.ones(order, dtype=torch.float64), 2 * math.pi * position / order)
    points = points / points.abs().pow(2).mean().sqrt()
    return Constellation(points.to(torch.complex64), labels, modulation, labelling)
