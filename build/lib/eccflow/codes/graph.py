"""Tanner-graph structure: girth (length of the shortest cycle) of the bipartite graph of H."""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from eccflow.codes.code import Code


def _has_four_cycle(H: sp.csr_matrix) -> bool:
    """A 4-cycle exists iff two checks share >= 2 variables: an off-diagonal entry of H H^T >= 2."""
    overlap = (H @ H.T).tocoo()
    return bool(np.any((overlap.data >= 2) & (overlap.row != overlap.col)))


def _adjacency(H: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    """CSR neighbour arrays of the Tanner graph: variables are nodes 0..n-1, checks n..n+m-1."""
    adjacency = sp.bmat([[None, H.T], [H, None]], format="csr")
    return adjacency.indptr.astype(np.int64), adjacency.indices.astype(np.int64)


def _gather(indptr: np.ndarray, indices: np.ndarray, nodes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Neighbours of ``nodes`` concatenated, and for each the position in ``nodes`` it came from."""
    starts, counts = indptr[nodes], indptr[nodes + 1] - indptr[nodes]
    origin = np.repeat(np.arange(nodes.size), counts)
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    return indices[starts[origin] + offsets], origin


def girth(code_or_H: Code | np.ndarray) -> int | None:
    """Exact girth of the Tanner graph, or ``None`` if it has no cycle.

    First 4-cycles are found from H H^T. Otherwise a BFS runs from every variable node (every cycle of
    a bipartite graph passes through one): if, at depth d, two frontier nodes reach the same new node
    (excluding the edge back to each frontier node's parent), two distinct root paths of length d + 1
    meet, closing a walk of length 2(d + 1) that contains a cycle; for a root on a shortest cycle this
    happens first at 2(d + 1) = girth, so the minimum over roots is exact. A BFS stops as soon as
    2(d + 1) reaches the best cycle found so far.
    """
    code = code_or_H if isinstance(code_or_H, Code) else Code(code_or_H)
    H = sp.csr_matrix(code.H, dtype=np.int32)
    if _has_four_cycle(H):
        return 4
    indptr, indices = _adjacency(H)
    best = np.inf
    for root in range(code.n):
        frontier, parent = np.array([root]), np.array([-1])
        depth = 0
        while frontier.size and 2 * (depth + 1) < best:
            neighbours, origin = _gather(indptr, indices, frontier)
            forward = neighbours != parent[origin]
            neighbours, origin = neighbours[forward], origin[forward]
            ordered = np.sort(neighbours)
            if np.any(ordered[1:] == ordered[:-1]):
                best = 2 * (depth + 1)
                break
            frontier, parent = neighbours, frontier[origin]
            depth += 1
    return None if best == np.inf else int(best)


def tanner_distances(code: Code, max_distance: int) -> np.ndarray:
    """Shortest-path distances between the n + m Tanner-graph nodes (variables first), capped.

    Entry (i, j) is the number of edges on a shortest path, or ``max_distance + 1`` when the nodes
    are farther apart (or disconnected). Breadth-first over all sources at once: the set reached
    within d steps is the support of (I + A)^d, grown by one sparse product per step.
    """
    if max_distance < 0:
        raise ValueError(f"max_distance must be >= 0, got {max_distance}")
    H = sp.csr_matrix(code.H, dtype=np.float32)
    A = sp.bmat([[None, H.T], [H, None]], format="csr")
    size = A.shape[0]
    distance = np.full((size, size), max_distance + 1, dtype=np.int16)
    reached = np.eye(size, dtype=np.float32)
    np.fill_diagonal(distance, 0)
    for d in range(1, max_distance + 1):
        grown = (reached + A @ reached) > 0
        distance[grown & (reached == 0)] = d
        reached = grown.astype(np.float32)
    return distance
