"""Terminated protograph-based spatially coupled LDPC codes (Mitchell, Lentmaier & Costello, "Spatially
coupled LDPC codes constructed from protographs", IEEE Trans. IT 2015).

A b_c x b_v base protograph B is edge-spread into w component matrices B_0 + ... + B_{w-1} = B. The
terminated coupled protograph of length L has (L + w - 1) b_c rows and L b_v columns, with block
(t + i, t) = B_i for positions t = 0..L-1 and i = 0..w-1: check position s touches variable positions
s - w + 1 .. s. Each entry e of the coupled protograph is lifted to the sum of e M x M circulant
permutation matrices with distinct seeded random shifts (row r of shift s has its one in column
(r + s) mod M). Design rate = 1 - (L + w - 1) b_c / (L b_v); k = n - rank(H) may exceed it.

Node order is position-major: variable ((t b_v + j) M + r) is copy r of proto-variable j at position t,
check ((s b_c + i) M + r) likewise, so a window decoder can slice H by position.
"""
from __future__ import annotations

import math
import re

import numpy as np

from eccflow.codes.code import Code
from eccflow.codes.registry import register_construction
from eccflow.errors import CodeFormatError, ConfigError


def default_protograph(dv: int, dc: int) -> np.ndarray:
    """(dv/g) x (dc/g) all-g protograph, g = gcd(dv, dc): (3, 6) gives B = [[3, 3]]."""
    g = math.gcd(dv, dc)
    return np.full((dv // g, dc // g), g, dtype=np.int64)


def default_edge_spreading(B: np.ndarray, w: int) -> list[np.ndarray]:
    """Even split of every entry e into w parts, B_i = floor((e + w - 1 - i) / w) (Hermite: they sum to e)."""
    return [(B + w - 1 - i) // w for i in range(w)]


def coupled_protograph(components: list[np.ndarray], L: int) -> np.ndarray:
    """Terminated coupling: (L + w - 1) b_c x L b_v matrix with block (t + i, t) = B_i."""
    w = len(components)
    b_c, b_v = components[0].shape
    coupled = np.zeros(((L + w - 1) * b_c, L * b_v), dtype=np.int64)
    for t in range(L):
        for i, component in enumerate(components):
            coupled[(t + i) * b_c : (t + i + 1) * b_c, t * b_v : (t + 1) * b_v] = component
    return coupled


def lift(proto: np.ndarray, M: int, rng: np.random.Generator) -> np.ndarray:
    """Replace each entry e by a sum of e circulant permutations with distinct random shifts."""
    rows, cols = proto.shape
    H = np.zeros((rows * M, cols * M), dtype=np.uint8)
    r = np.arange(M)
    for a, b in zip(*np.nonzero(proto)):
        for shift in rng.choice(M, size=int(proto[a, b]), replace=False):
            H[a * M + r, b * M + (r + shift) % M] = 1
    return H


def _validate(dv: int, dc: int, w: int, L: int, M: int, seed: int) -> None:
    for label, value in (("dv", dv), ("dc", dc), ("w", w), ("L", L), ("M", M)):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise CodeFormatError(f"SC-LDPC: {label} must be a positive integer, got {value!r}")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"SC-LDPC: seed must be a non-negative integer, got {seed!r}")
    if dc <= dv:
        raise CodeFormatError(f"SC-LDPC: check degree dc = {dc} must exceed dv = {dv}")


def _protograph(dv: int, dc: int, protograph: np.ndarray | None) -> np.ndarray:
    if protograph is None:
        return default_protograph(dv, dc)
    B = np.asarray(protograph)
    if B.ndim != 2 or B.size == 0 or B.dtype.kind not in "iu" or (B < 0).any():
        raise CodeFormatError(f"SC-LDPC: protograph must be a non-empty 2-D array of non-negative integers, got {protograph!r}")
    if not ((B.sum(axis=0) == dv).all() and (B.sum(axis=1) == dc).all()):
        raise CodeFormatError(
            f"SC-LDPC: protograph column sums {B.sum(axis=0).tolist()} / row sums {B.sum(axis=1).tolist()} "
            f"must all equal dv = {dv} / dc = {dc}"
        )
    return B.astype(np.int64)


def _components(B: np.ndarray, w: int, edge_spreading: list[np.ndarray] | None) -> list[np.ndarray]:
    if edge_spreading is None:
        parts = default_edge_spreading(B, w)
        if not parts[-1].any():
            raise CodeFormatError(
                f"SC-LDPC: coupling width w = {w} exceeds the largest protograph entry {int(B.max())}; "
                "the default edge spreading would leave B_{w-1} = 0 (give edge_spreading explicitly)"
            )
        return parts
    parts = [np.asarray(part) for part in edge_spreading]
    if len(parts) != w:
        raise CodeFormatError(f"SC-LDPC: edge_spreading has {len(parts)} components, expected w = {w}")
    for i, part in enumerate(parts):
        if part.shape != B.shape or part.dtype.kind not in "iu" or (part < 0).any():
            raise CodeFormatError(f"SC-LDPC: edge_spreading[{i}] must be a non-negative integer {B.shape} array, got {part!r}")
    if not np.array_equal(sum(parts), B):
        raise CodeFormatError(f"SC-LDPC: edge_spreading components sum to {sum(parts).tolist()}, not the protograph {B.tolist()}")
    if not parts[0].any() or not parts[-1].any():
        raise CodeFormatError("SC-LDPC: edge_spreading components B_0 and B_{w-1} must be non-zero (else w is smaller)")
    return [part.astype(np.int64) for part in parts]


def sc_ldpc_code(
    dv: int = 3,
    dc: int = 6,
    w: int = 3,
    L: int = 20,
    M: int = 50,
    seed: int = 0,
    protograph: np.ndarray | None = None,
    edge_spreading: list[np.ndarray] | None = None,
) -> Code:
    """Terminated (dv, dc) SC-LDPC code with coupling width w, L positions and lifting factor M.

    ``meta`` holds what a window decoder needs: ``positions`` (L), ``vars_per_position`` (b_v M),
    ``checks_per_position`` (b_c M), ``check_positions`` (L + w - 1), the base ``protograph``, its
    ``edge_spreading`` and the ``coupled_protograph``; per node, ``proto_var`` / ``proto_check`` (column /
    row of the coupled protograph it lifts) and ``var_position`` / ``check_position`` (spatial position).
    """
    _validate(dv, dc, w, L, M, seed)
    B = _protograph(dv, dc, protograph)
    components = _components(B, w, edge_spreading)
    largest = max(int(part.max()) for part in components)
    if largest > M:
        raise CodeFormatError(
            f"SC-LDPC: lifting factor M = {M} is smaller than the edge-spread entry {largest} (needs {largest} distinct shifts)"
        )
    b_c, b_v = B.shape
    coupled = coupled_protograph(components, L)
    H = lift(coupled, M, np.random.default_rng(seed))
    proto_check = np.repeat(np.arange(coupled.shape[0]), M)
    proto_var = np.repeat(np.arange(coupled.shape[1]), M)
    meta = {
        "dv": int(dv),
        "dc": int(dc),
        "coupling_width": int(w),
        "positions": int(L),
        "lifting": int(M),
        "seed": int(seed),
        "protograph": B,
        "edge_spreading": components,
        "coupled_protograph": coupled,
        "vars_per_position": b_v * int(M),
        "checks_per_position": b_c * int(M),
        "check_positions": int(L + w - 1),
        "proto_check": proto_check,
        "proto_var": proto_var,
        "check_position": proto_check // b_c,
        "var_position": proto_var // b_v,
        "design_rate": 1.0 - (L + w - 1) * b_c / (L * b_v),
    }
    custom = protograph is not None or edge_spreading is not None
    name = f"SCLDPC_dv{dv}_dc{dc}_w{w}_L{L}_M{M}" + (f"_s{seed}" if seed else "") + ("_custom" if custom else "")
    return Code(H, name=name, family="SC-LDPC", meta=meta)


def _build(match: re.Match[str]) -> Code:
    seed = int(match["s"]) if match["s"] is not None else 0
    return sc_ldpc_code(int(match["dv"]), int(match["dc"]), int(match["w"]), int(match["L"]), int(match["M"]), seed)


register_construction(
    r"scldpc_dv(?P<dv>\d+)_dc(?P<dc>\d+)_w(?P<w>\d+)_L(?P<L>\d+)_M(?P<M>\d+)(?:_s(?P<s>\d+))?",
    _build,
    "scldpc_dv3_dc6_w3_L20_M50",
    "terminated protograph SC-LDPC code: (dv, dc) base protograph, coupling width w, L positions, lifting M",
)
