"""Spectra of the Tanner graph.

* SAP signature: the two algebraically largest eigenvalues of the bipartite adjacency
  A = [[0, H^T], [H, 0]], which equal the two largest singular values of H.
* Laplacian eigenpairs of the Tanner graph (n + m nodes, variables first), L = D - A or the
  normalised L_sym = I - D^{-1/2} A D^{-1/2}; the smallest ones give AECCT's spectral positional encoding.
"""
from __future__ import annotations

import numpy as np
import scipy.linalg as la
import scipy.sparse as sp
import scipy.sparse.linalg as sla

from eccflow.codes.code import Code
from eccflow.errors import ConfigError

_DENSE_LIMIT = 600  # below this many nodes a dense solver is faster and always converges


def spectral_signature(code: Code, count: int = 2) -> np.ndarray:
    """The ``count`` largest singular values of H (descending) = largest eigenvalues of A."""
    H = code.H_sparse
    limit = min(H.shape)
    if not 1 <= count <= limit:
        raise ConfigError(f"signature size must lie in 1..{limit} for {code.name}, got {count}")
    if count >= limit - 1 or limit <= _DENSE_LIMIT:
        values = la.svdvals(code.H.astype(np.float64))[:count]
    else:
        values = np.sort(sla.svds(H, k=count, return_singular_vectors=False, random_state=0))[::-1]
    return np.asarray(values, dtype=np.float64)


def tanner_adjacency(code: Code) -> sp.csr_matrix:
    """Bipartite adjacency [[0, H^T], [H, 0]] over (variables, checks)."""
    H = code.H_sparse
    return sp.bmat([[None, H.T], [H, None]], format="csr")


def tanner_laplacian(code: Code, normalized: bool = False) -> sp.csr_matrix:
    """L = D - A, or I - D^{-1/2} A D^{-1/2} (isolated nodes keep a zero row)."""
    A = tanner_adjacency(code)
    degree = np.asarray(A.sum(axis=1)).ravel()
    if not normalized:
        return (sp.diags(degree) - A).tocsr()
    inv_sqrt = np.where(degree > 0, 1.0 / np.sqrt(np.maximum(degree, 1e-300)), 0.0)
    D = sp.diags(inv_sqrt)
    return (sp.diags((degree > 0).astype(float)) - D @ A @ D).tocsr()


def laplacian_eigenpairs(code: Code, count: int, normalized: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The ``count`` smallest eigenvalues (ascending) and eigenvectors (nodes x count) of the Laplacian.

    Eigenvector signs are fixed so that each vector's largest-magnitude entry is positive.
    """
    L = tanner_laplacian(code, normalized)
    size = L.shape[0]
    if not 1 <= count <= size:
        raise ConfigError(f"eigenpair count must lie in 1..{size} for {code.name}, got {count}")
    if size <= _DENSE_LIMIT or count >= size - 1:
        values, vectors = la.eigh(L.toarray(), subset_by_index=(0, count - 1))
    else:
        # Shift-invert just below 0 finds the smallest eigenvalues of the PSD Laplacian quickly.
        values, vectors = sla.eigsh(L.tocsc(), k=count, sigma=-1e-3, which="LM", v0=np.ones(size))
        order = np.argsort(values)
        values, vectors = values[order], vectors[:, order]
    pivot = np.abs(vectors).argmax(axis=0)
    vectors = vectors * np.sign(vectors[pivot, np.arange(vectors.shape[1])])
    return values, vectors
