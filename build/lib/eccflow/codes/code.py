"""The ``Code`` object: a binary linear code given by its parity-check matrix H and Tanner graph."""
from __future__ import annotations

from functools import cached_property
from typing import Any

import numpy as np
import scipy.sparse as sp

from eccflow.codes import gf2
from eccflow.errors import CodeFormatError


class Code:
    """A binary linear (n, k) code.

    ``H`` is kept exactly as given (m x n, m may exceed n - k: redundant checks stay, they are part
    of the Tanner graph decoders pass messages on); ``k = n - rank(H)``.

    Tanner-graph edges are listed check-major (the CSR order of H): edge ``e`` joins variable
    ``edge_var[e]`` and check ``edge_check[e]``. Decoders gather and scatter on these two arrays.

    Args:
        H: parity-check matrix, any integer/bool array-like of 0/1 (m x n).
        name: registry name, e.g. ``"BCH_n63_k45"``.
        family: ``"BCH"``, ``"POLAR"``, ``"LDPC"``, ... (free text for custom codes).
        expected_k: if given (e.g. from a file name), must equal ``n - rank(H)``.
        meta: construction details (protograph, lifting, frozen set, ...).
    """

    def __init__(
        self,
        H: Any,
        name: str | None = None,
        family: str = "custom",
        expected_k: int | None = None,
        meta: dict[str, Any] | None = None,
    ) -> None:
        label = name or "code"
        matrix = np.asarray(H)
        if matrix.ndim != 2:
            raise CodeFormatError(f"{label}: H must be a 2-D matrix, got shape {matrix.shape}")
        if matrix.size == 0:
            raise CodeFormatError(f"{label}: H is empty (shape {matrix.shape})")
        if matrix.dtype.kind == "f" and not np.all(np.isfinite(matrix)):
            raise CodeFormatError(f"{label}: H contains NaN or infinite entries")
        if not np.isin(matrix, (0, 1)).all():
            bad = np.unique(matrix[~np.isin(matrix, (0, 1))])[:5]
            raise CodeFormatError(f"{label}: H must be binary (0/1), found entries {bad.tolist()}")
        matrix = matrix.astype(np.uint8)
        if not matrix.any():
            raise CodeFormatError(f"{label}: H is all-zero ({matrix.shape[0]} x {matrix.shape[1]}); it defines no checks")
        matrix.setflags(write=False)
        self.H = matrix
        self.name = name or f"custom_n{matrix.shape[1]}"
        self.family = family
        self.meta = dict(meta or {})
        if expected_k is not None and expected_k != self.k:
            raise CodeFormatError(
                f"{label}: stated k = {expected_k} but n - rank(H) = {self.n} - {self.rank} = {self.k}"
            )

    # ---- sizes -----------------------------------------------------------------------------
    @property
    def n(self) -> int:
        """Code length (columns of H)."""
        return int(self.H.shape[1])

    @property
    def num_checks(self) -> int:
        """Rows of H as stored (may exceed n - k)."""
        return int(self.H.shape[0])

    @cached_property
    def rank(self) -> int:
        """GF(2) rank of H."""
        return gf2.rank(self.H)

    @property
    def k(self) -> int:
        """Dimension, n - rank(H)."""
        return self.n - self.rank

    @property
    def rate(self) -> float:
        return self.k / self.n

    # ---- matrices --------------------------------------------------------------------------
    @cached_property
    def H_sparse(self) -> sp.csr_matrix:
        """H as a scipy CSR matrix (float64 ones), the form sparse eigensolvers take."""
        return sp.csr_matrix(self.H, dtype=np.float64)

    @cached_property
    def _generator(self) -> tuple[np.ndarray, np.ndarray]:
        G, info_set = gf2.generator_from_parity_check(self.H)
        if gf2.matmul(G, self.H.T).any():
            raise CodeFormatError(f"{self.name}: internal error, G H^T != 0")
        G.setflags(write=False)
        return G, info_set

    @property
    def G(self) -> np.ndarray:
        """Generator matrix (k x n), systematic on ``info_set``: ``G[:, info_set] = I_k``."""
        return self._generator[0]

    @property
    def info_set(self) -> np.ndarray:
        """Information positions on which ``G`` is the identity."""
        return self._generator[1]

    # ---- Tanner graph ----------------------------------------------------------------------
    @cached_property
    def _edges(self) -> tuple[np.ndarray, np.ndarray]:
        check, var = np.nonzero(self.H)  # row-major: check-major edge order
        return var.astype(np.int64), check.astype(np.int64)

    @property
    def edge_var(self) -> np.ndarray:
        """Variable-node index of every Tanner edge (length ``num_edges``)."""
        return self._edges[0]

    @property
    def edge_check(self) -> np.ndarray:
        """Check-node index of every Tanner edge (length ``num_edges``)."""
        return self._edges[1]

    @property
    def num_edges(self) -> int:
        return int(self.edge_var.size)

    @property
    def variable_degrees(self) -> np.ndarray:
        return self.H.sum(axis=0).astype(np.int64)

    @property
    def check_degrees(self) -> np.ndarray:
        return self.H.sum(axis=1).astype(np.int64)

    # ---- derived codes and checks ----------------------------------------------------------
    def dual(self) -> "Code":
        """The dual code: its parity-check matrix is this code's generator."""
        return Code(self.G, name=f"{self.name}_dual", family=self.family, meta={"dual_of": self.name})

    def syndrome(self, bits: np.ndarray) -> np.ndarray:
        """``H x^T mod 2`` for hard decisions ``bits`` (..., n) -> (..., m)."""
        bits = np.asarray(bits)
        if bits.shape[-1] != self.n:
            raise CodeFormatError(f"{self.name}: expected words of length {self.n}, got shape {bits.shape}")
        return (bits.astype(np.int64) @ self.H.T.astype(np.int64) % 2).astype(np.uint8)

    def encode(self, messages: np.ndarray) -> np.ndarray:
        """Codewords ``u G mod 2`` for messages ``u`` (..., k) -> (..., n)."""
        messages = np.asarray(messages)
        if messages.shape[-1] != self.k:
            raise CodeFormatError(f"{self.name}: expected messages of length {self.k}, got shape {messages.shape}")
        return gf2.matmul(messages.reshape(-1, self.k), self.G).reshape(*messages.shape[:-1], self.n)

    def summary(self) -> dict[str, Any]:
        """Plain-number description (n, k, rate, rows, rank, degrees, edges)."""
        dv, dc = self.variable_degrees, self.check_degrees
        return {
            "name": self.name,
            "family": self.family,
            "n": self.n,
            "k": self.k,
            "rate": round(self.rate, 4),
            "rows": self.num_checks,
            "rank": self.rank,
            "redundant_rows": self.num_checks - self.rank,
            "edges": self.num_edges,
            "variable_degree": [int(dv.min()), int(dv.max())],
            "check_degree": [int(dc.min()), int(dc.max())],
        }

    def __repr__(self) -> str:
        return f"Code({self.name!r}, family={self.family!r}, n={self.n}, k={self.k}, rows={self.num_checks})"
