"""Regular (dv, dc) LDPC codes: Gallager's random construction and progressive edge growth (PEG).

* Gallager (1962, *Low-Density Parity-Check Codes*, sec. 2.2): H stacks dv sub-matrices of n / dc rows;
  the first has row i covering columns i dc .. (i + 1) dc - 1, the others are seeded random column
  permutations of it. Each sub-matrix's rows sum to the all-ones word, so rank(H) <= m - (dv - 1):
  those redundant rows are kept.
* PEG (Hu, Eleftheriou & Arnold, "Regular and irregular progressive edge-growth Tanner graphs",
  IEEE Trans. IT 2005): variables are processed in order; each new edge of variable j goes to a check
  that is unreachable from j, or else at the largest BFS distance from j in the graph built so far,
  ties broken by lowest current check degree, then uniformly at random (seeded). Checks already
  holding dc edges are not eligible, so the result is exactly (dv, dc)-regular with m = n dv / dc;
  the few last edges this cap forces to a shallow depth are re-placed by degree-preserving edge swaps.

k = n - rank(H) in both cases.
"""
from __future__ import annotations

import re

import numpy as np

from eccflow.codes.code import Code
from eccflow.codes.registry import register_construction
from eccflow.errors import CodeFormatError, ConfigError


def _check_degrees(kind: str, n: int, dv: int, dc: int, seed: int) -> None:
    for label, value in (("n", n), ("dv", dv), ("dc", dc)):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise CodeFormatError(f"{kind}: {label} must be a positive integer, got {value!r}")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"{kind}: seed must be a non-negative integer, got {seed!r}")
    if dv < 2:
        raise CodeFormatError(f"{kind}: variable degree dv must be >= 2, got {dv}")
    if dc <= dv:
        raise CodeFormatError(f"{kind}: check degree dc = {dc} must exceed dv = {dv} for a positive rate")
    if dc > n:
        raise CodeFormatError(f"{kind}: check degree dc = {dc} exceeds the length n = {n}")
    if (n * dv) % dc:
        raise CodeFormatError(f"{kind}: dc = {dc} does not divide n * dv = {n * dv}; no (dv, dc)-regular graph exists")


def _suffix(seed: int) -> str:
    return f"_s{seed}" if seed else ""


def gallager_code(n: int, dv: int, dc: int, seed: int = 0) -> Code:
    """Gallager's regular (dv, dc) ensemble member: dv stacked, column-permuted band matrices."""
    _check_degrees("Gallager LDPC", n, dv, dc, seed)
    if n % dc:
        raise CodeFormatError(f"Gallager LDPC: n = {n} must be a multiple of dc = {dc} (each sub-matrix has n / dc rows)")
    rng = np.random.default_rng(seed)
    rows_per_block = n // dc
    block = np.zeros((rows_per_block, n), dtype=np.uint8)
    block[np.repeat(np.arange(rows_per_block), dc), np.arange(n)] = 1
    blocks = [block] + [block[:, rng.permutation(n)] for _ in range(dv - 1)]
    meta = {"dv": int(dv), "dc": int(dc), "seed": int(seed), "construction": "gallager"}
    return Code(np.vstack(blocks), name=f"GALLAGER_n{n}_dv{dv}_dc{dc}{_suffix(seed)}", family="LDPC", meta=meta)


class _PegGraph:
    """Tanner graph under construction: ``var_checks`` (n x dv) and ``check_vars`` (m x dc), -1 = free slot."""

    def __init__(self, n: int, m: int, dv: int, dc: int) -> None:
        self.m = m
        self.var_checks = np.full((n, dv), -1, dtype=np.int64)
        self.check_vars = np.full((m, dc), -1, dtype=np.int64)
        self.degree = np.zeros(m, dtype=np.int64)

    def connect(self, v: int, c: int) -> None:
        self.var_checks[v, np.flatnonzero(self.var_checks[v] < 0)[0]] = c
        self.check_vars[c, np.flatnonzero(self.check_vars[c] < 0)[0]] = v
        self.degree[c] += 1

    def disconnect(self, v: int, c: int) -> None:
        self.var_checks[v, self.var_checks[v] == c] = -1
        self.check_vars[c, self.check_vars[c] == v] = -1
        self.degree[c] -= 1

    def depths(self, v: int) -> np.ndarray:
        """BFS depth of every check seen from variable v (0 = neighbours of v); m + 1 = unreachable."""
        depth = np.full(self.m, self.m + 1, dtype=np.int64)
        seen = np.zeros(self.var_checks.shape[0], dtype=bool)
        seen[v] = True
        frontier, level = np.array([v]), 0
        while frontier.size:
            # Marks sized one past the end: free slots (-1) land on the spare last entry.
            reached = np.zeros(self.m + 1, dtype=bool)
            reached[self.var_checks[frontier].ravel()] = True
            checks = np.flatnonzero(reached[:-1] & (depth > self.m))
            if checks.size == 0:
                break
            depth[checks] = level
            found = np.zeros(seen.size + 1, dtype=bool)
            found[self.check_vars[checks].ravel()] = True
            frontier = np.flatnonzero(found[:-1] & ~seen)
            seen[frontier] = True
            level += 1
        return depth

    def depths_without(self, v: int, c: int) -> np.ndarray:
        """``depths(v)`` with the edge (v, c) removed: a cycle through (v, c) has length 2 depth[c] + 2."""
        self.disconnect(v, c)
        depth = self.depths(v)
        self.connect(v, c)
        return depth

    def swap(self, v: int, c: int, u: int, c2: int) -> None:
        """Edges (v, c), (u, c2) -> (v, c2), (u, c): every degree is unchanged."""
        self.disconnect(v, c)
        self.disconnect(u, c2)
        self.connect(v, c2)
        self.connect(u, c)


def _repair_forced_edges(graph: _PegGraph, forced: list[tuple[int, int]], target: int, rng: np.random.Generator) -> None:
    """Degree-preserving swaps for edges the degree cap forced below the PEG depth ``target``.

    Edge (v, c) is exchanged with an edge (u, c2) (random order) when afterwards every cycle through the two
    new edges has depth >= ``target``, or else the largest depth reachable above the current one; cycles
    through no new edge are untouched, so no swap creates a cycle shorter than those it removes.
    """
    n, dv = graph.var_checks.shape
    for v, c in forced:
        if c not in graph.var_checks[v]:
            continue
        reach = graph.depths_without(v, c)
        owners = np.repeat(np.arange(n), dv)
        for need in range(target, reach[c], -1):
            ends = graph.var_checks.ravel()
            ok = (reach[ends] >= need) & (owners != v) & ~(graph.var_checks[owners] == c).any(axis=1)
            ok &= ~np.isin(ends, graph.var_checks[v])
            swapped = False
            for e in rng.permutation(np.flatnonzero(ok)):
                u, c2 = int(owners[e]), int(ends[e])
                graph.swap(v, c, u, c2)
                if graph.depths_without(v, c2)[c2] >= need and graph.depths_without(u, c)[c] >= need:
                    swapped = True
                    break
                graph.swap(v, c2, u, c)
            if swapped:
                break


def peg_code(n: int, dv: int, dc: int, seed: int = 0) -> Code:
    """PEG (dv, dc)-regular Tanner graph on n variables and n dv / dc checks.

    Capping check degrees at dc can leave the last variables no free check at the depth PEG would pick
    (the final variable's dv edges are fully forced); those edges are then repaired by degree-preserving
    swaps (``_repair_forced_edges``) up to the smallest depth PEG reached without the cap.
    """
    _check_degrees("PEG LDPC", n, dv, dc, seed)
    m = n * dv // dc
    rng = np.random.default_rng(seed)
    graph = _PegGraph(n, m, dv, dc)
    forced: list[tuple[int, int]] = []
    free_depths: list[int] = []
    for v in range(n):
        for e in range(dv):
            depth = graph.depths(v) if e else np.full(m, m + 1, dtype=np.int64)
            open_ = np.ones(m, dtype=bool)
            open_[graph.var_checks[v, :e]] = False
            eligible = open_ & (graph.degree < dc)
            if not eligible.any():
                raise CodeFormatError(
                    f"PEG LDPC(n={n}, dv={dv}, dc={dc}, seed={seed}): no free check left for variable {v}; try another seed"
                )
            best = depth[eligible].max()
            candidates = np.flatnonzero(eligible & (depth == best))
            candidates = candidates[graph.degree[candidates] == graph.degree[candidates].min()]
            c = int(rng.choice(candidates))
            if best < depth[open_].max():
                forced.append((v, c))
            elif e:
                free_depths.append(int(best))
            graph.connect(v, c)
    if forced and free_depths:
        _repair_forced_edges(graph, forced, min(free_depths), rng)
    H = np.zeros((m, n), dtype=np.uint8)
    H[graph.var_checks.ravel(), np.repeat(np.arange(n), dv)] = 1
    meta = {"dv": int(dv), "dc": int(dc), "seed": int(seed), "construction": "peg"}
    return Code(H, name=f"PEG_n{n}_dv{dv}_dc{dc}{_suffix(seed)}", family="LDPC", meta=meta)


def _seed(match: re.Match[str]) -> int:
    return int(match["s"]) if match["s"] is not None else 0


_PATTERN = r"_n(?P<n>\d+)_dv(?P<dv>\d+)_dc(?P<dc>\d+)(?:_s(?P<s>\d+))?"

register_construction(
    "gallager" + _PATTERN,
    lambda mt: gallager_code(int(mt["n"]), int(mt["dv"]), int(mt["dc"]), _seed(mt)),
    "gallager_n96_dv3_dc6",
    "Gallager's regular (dv, dc) LDPC construction, optional _s<seed> (default 0)",
)
register_construction(
    "peg" + _PATTERN,
    lambda mt: peg_code(int(mt["n"]), int(mt["dv"]), int(mt["dc"]), _seed(mt)),
    "peg_n512_dv3_dc6",
    "progressive-edge-growth regular (dv, dc) LDPC code, optional _s<seed> (default 0)",
)
