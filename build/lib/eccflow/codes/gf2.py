"""Linear algebra over GF(2) on bit-packed numpy rows.

Matrices are ``uint8`` arrays of 0/1. Internally rows are packed eight columns per byte
(``numpy.packbits``), so one row XOR touches ``n/8`` bytes; elimination costs
O(rank * m * n / 8) byte operations.
"""
from __future__ import annotations

import numpy as np


def _as_bits(matrix: np.ndarray) -> np.ndarray:
    a = np.asarray(matrix)
    if a.ndim != 2:
        raise ValueError(f"expected a 2-D GF(2) matrix, got shape {a.shape}")
    return (a % 2).astype(np.uint8)


def rref(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reduced row echelon form over GF(2).

    Returns ``(R, pivots)``: ``R`` has ``rank`` non-zero rows first (uint8, same shape as the input)
    and ``pivots[i]`` is the column of row ``i``'s leading one.
    """
    a = _as_bits(matrix)
    m, n = a.shape
    packed = np.packbits(a, axis=1)
    pivots: list[int] = []
    row = 0
    for col in range(n):
        if row == m:
            break
        byte, mask = col >> 3, np.uint8(0x80 >> (col & 7))
        has_one = (packed[row:, byte] & mask) != 0
        if not has_one.any():
            continue
        pivot = row + int(np.argmax(has_one))
        if pivot != row:
            packed[[row, pivot]] = packed[[pivot, row]]
        others = (packed[:, byte] & mask) != 0
        others[row] = False
        packed[others] ^= packed[row]
        pivots.append(col)
        row += 1
    reduced = np.unpackbits(packed, axis=1, count=n).astype(np.uint8)
    return reduced, np.asarray(pivots, dtype=np.int64)


def rank(matrix: np.ndarray) -> int:
    """GF(2) rank."""
    return int(rref(matrix)[1].size)


def nullspace(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Basis of ``{x : A x = 0 (mod 2)}``.

    Returns ``(N, free)``: rows of ``N`` (``len(free)`` x n) span the null space and ``N[:, free]``
    is the identity, i.e. the basis is systematic on the free (non-pivot) columns of ``rref(A)``.
    """
    a = _as_bits(matrix)
    n = a.shape[1]
    reduced, pivots = rref(a)
    free = np.setdiff1d(np.arange(n), pivots)
    basis = np.zeros((free.size, n), dtype=np.uint8)
    basis[np.arange(free.size), free] = 1
    # x_pivot[i] = sum_f R[i, f] x_f for each free column f.
    basis[:, pivots] = reduced[: pivots.size][:, free].T
    return basis, free


def generator_from_parity_check(H: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Generator ``G`` (k x n) with ``G H^T = 0``, systematic on the returned information set.

    ``G[:, info_set]`` is the k x k identity; ``info_set`` lists the free columns of ``rref(H)``,
    so when the last ``n - k`` columns of H are independent the result is ``[I_k | P]``.
    """
    return nullspace(H)


def systematic_form(H: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Standard form by row operations and a column permutation.

    Returns ``(H_std, G_std, perm)`` with ``H_std = [P^T | I_{n-k}]`` (independent rows only),
    ``G_std = [I_k | P]`` and ``perm`` such that ``H_std`` spans the row space of ``H[:, perm]``.
    """
    a = _as_bits(H)
    n = a.shape[1]
    reduced, pivots = rref(a)
    r = pivots.size
    free = np.setdiff1d(np.arange(n), pivots)
    perm = np.concatenate([free, pivots])
    h_std = reduced[:r][:, perm]
    parity = h_std[:, : n - r]  # (n-k) x k block, = P^T
    g_std = np.concatenate([np.eye(n - r, dtype=np.uint8), parity.T], axis=1)
    return h_std, g_std, perm


def independent_rows(matrix: np.ndarray) -> np.ndarray:
    """A basis of the row space (rank x n), as rows of the reduced echelon form."""
    reduced, pivots = rref(matrix)
    return reduced[: pivots.size]


def matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Matrix product over GF(2), by float32 BLAS (exact: every partial sum stays below 2^24)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape[-1] >= 2**24:
        raise ValueError(f"inner dimension {a.shape[-1]} too large for an exact float32 GF(2) product")
    return np.remainder(a.astype(np.float32) @ b.astype(np.float32), 2).astype(np.uint8)


def inverse(matrix: np.ndarray) -> np.ndarray:
    """Inverse of a square GF(2) matrix, by eliminating [A | I] to [I | A^{-1}]; ValueError if singular."""
    a = _as_bits(matrix)
    size = a.shape[0]
    if a.shape[1] != size:
        raise ValueError(f"only a square matrix has an inverse, got shape {a.shape}")
    reduced, pivots = rref(np.concatenate([a, np.eye(size, dtype=np.uint8)], axis=1))
    if pivots.size < size or pivots[size - 1] >= size:
        raise ValueError(f"the {size} x {size} matrix is singular over GF(2)")
    return reduced[:, size:]


def right_inverse(generator: np.ndarray, columns: np.ndarray | None = None) -> np.ndarray:
    """A pseudo-inverse G^+ (n x k) of a full-rank k x n generator: G G^+ = I_k over GF(2).

    With S an information set (``columns``; default the pivot columns of rref(G)) where G[:, S] is invertible,
    G^+ is zero outside the rows S and (G[:, S])^{-1} on them, so u = c G^+ recovers the message of every
    codeword c = u G. For a systematic G pass its identity columns: G^+ then just reads the message bits.
    """
    g = _as_bits(generator)
    k = g.shape[0]
    pivots = rref(g)[1] if columns is None else np.asarray(columns, dtype=np.int64)
    if pivots.size < k:
        raise ValueError(f"generator of shape {g.shape} has GF(2) rank {pivots.size} < {k} rows: no right inverse")
    if pivots.size != k:
        raise ValueError(f"an information set of a k = {k} generator has k columns, got {pivots.size}")
    pseudo = np.zeros((g.shape[1], k), dtype=np.uint8)
    pseudo[pivots] = inverse(g[:, pivots])
    return pseudo
