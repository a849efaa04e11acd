"""Regular (dv, dc) LDPC codes: Gallager's random construction and progressive edge growth (PEG).

* Gallager (1962, *Low-Density Parity-Check Codes*, sec. 2.2): H stacks dv sub-matrices of n / dc rows;
  the first has row i covering columns i dc .. (i + 1) dc - 1, the others are seeded random column
  permutations of it. Each sub-matrix's rows sum to the all-ones word, so rank(H) <= m - (dv - 1):
  those redundant rows are kept.
* PEG (Hu, Eleftheriou & Arnold, "Regular and irregular progressive edge-growth Tanner graphs",
  IEEE Trans. IT 2005): variables are processed in order; each new edge of variable j goes to a check
  that is unreachable from j, or else at the largest BFS distance from j in the graph built so far,
  ties broken by lowest current check degree, then uniformly at random (seeded). Checks already
  holding dc edges are not eligible, so the result is exactly (dv, dc)-regular with m = n dv / dc.

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


def _bfs_distances(j: int, var_checks: np.ndarray, check_vars: np.ndarray, m: int) -> np.ndarray:
    """BFS depth of every check seen from variable j (0 = neighbours of j); m + 1 = unreachable."""
    dist = np.full(m, m + 1, dtype=np.int64)
    seen_vars = np.zeros(var_checks.shape[0], dtype=bool)
    seen_vars[j] = True
    frontier = np.array([j])
    depth = 0
    while frontier.size:
        checks = var_checks[frontier].ravel()
        checks = np.unique(checks[checks >= 0])
        checks = checks[dist[checks] > m]
        if checks.size == 0:
            break
        dist[checks] = depth
        variables = check_vars[checks].ravel()
        variables = np.unique(variables[variables >= 0])
        frontier = variables[~seen_vars[variables]]
        seen_vars[frontier] = True
        depth += 1
    return dist


def peg_code(n: int, dv: int, dc: int, seed: int = 0) -> Code:
    """PEG (dv, dc)-regular Tanner graph on n variables and n dv / dc checks."""
    _check_degrees("PEG LDPC", n, dv, dc, seed)
    m = n * dv // dc
    rng = np.random.default_rng(seed)
    var_checks = np.full((n, dv), -1, dtype=np.int64)
    check_vars = np.full((m, dc), -1, dtype=np.int64)
    degree = np.zeros(m, dtype=np.int64)
    for j in range(n):
        for e in range(dv):
            eligible = degree < dc
            eligible[var_checks[j, :e]] = False
            if not eligible.any():
                raise CodeFormatError(
                    f"PEG LDPC(n={n}, dv={dv}, dc={dc}, seed={seed}): no free check left for variable {j}; try another seed"
                )
            dist = _bfs_distances(j, var_checks, check_vars, m) if e else np.full(m, m + 1, dtype=np.int64)
            candidates = np.flatnonzero(eligible)
            candidates = candidates[dist[candidates] == dist[candidates].max()]
            candidates = candidates[degree[candidates] == degree[candidates].min()]
            c = int(rng.choice(candidates))
            var_checks[j, e] = c
            check_vars[c, degree[c]] = j
            degree[c] += 1
    H = np.zeros((m, n), dtype=np.uint8)
    H[var_checks.ravel(), np.repeat(np.arange(n), dv)] = 1
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
