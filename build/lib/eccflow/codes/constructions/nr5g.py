"""5G NR LDPC mother codes (3GPP TS 38.212, section 5.3.2).

A base graph H_BG (BG1: 46 x 68, Table 5.3.2-2; BG2: 42 x 52, Table 5.3.2-3) lists, for each of the
eight set indices i_LS, a shift value V_ij at every non-zero position. For a lifting size Z from
Table 5.3.2-1 (Z = a 2^j, a in {2, 3, 5, 7, 9, 11, 13, 15}; i_LS is the row of the table holding Z),
H is H_BG with every -1 entry replaced by the Z x Z zero matrix and every other entry by the identity
cyclically shifted right by P_ij = V_ij mod Z: row r of that block has its one at column (r + P_ij) mod Z.

Conventions of the standard kept in ``Code.meta``: the first k_b = 22 (BG1) or 10 (BG2) base columns,
k_b Z bits, carry the information (systematic part; K' < k_b Z is met by filler bits), and the first
2Z of them are punctured: the encoder output starts at d_0 = c_{2Z} (section 5.3.2), so they never
enter the circular buffer of rate matching (section 5.4.2.1, N_cb <= 66 Z or 50 Z). H itself is the full (unshortened, unpunctured)
mother code, of length 68 Z or 52 Z and rank 46 Z or 42 Z.

The shift tables live in ``eccflow/codes/data/nr5g_base_graphs.json`` (see its ``transcription`` note).
"""
from __future__ import annotations

import json
import re
from functools import lru_cache
from importlib.resources import files

import numpy as np

from eccflow.codes.code import Code
from eccflow.codes.registry import register_construction
from eccflow.errors import CodeFormatError, ConfigError

# Table 5.3.2-1: the lifting sizes Z of each set index i_LS (all a 2^j <= 384).
LIFTING_SIZES: dict[int, tuple[int, ...]] = {
    0: (2, 4, 8, 16, 32, 64, 128, 256),
    1: (3, 6, 12, 24, 48, 96, 192, 384),
    2: (5, 10, 20, 40, 80, 160, 320),
    3: (7, 14, 28, 56, 112, 224),
    4: (9, 18, 36, 72, 144, 288),
    5: (11, 22, 44, 88, 176, 352),
    6: (13, 26, 52, 104, 208),
    7: (15, 30, 60, 120, 240),
}
_SET_INDEX: dict[int, int] = {z: i_ls for i_ls, sizes in LIFTING_SIZES.items() for z in sizes}

BASE_GRAPH_SHAPES: dict[int, tuple[int, int]] = {1: (46, 68), 2: (42, 52)}
INFO_COLUMNS: dict[int, int] = {1: 22, 2: 10}  # k_b of the mother code (section 5.3.2)
_DATA_FILE = "nr5g_base_graphs.json"


def _check_base_graph(base_graph: int) -> int:
    if isinstance(base_graph, bool) or not isinstance(base_graph, (int, np.integer)) or base_graph not in BASE_GRAPH_SHAPES:
        raise ConfigError(f"5G NR LDPC: base graph must be 1 or 2, got {base_graph!r}")
    return int(base_graph)


def set_index(Z: int) -> int:
    """Set index i_LS of lifting size Z (the row of Table 5.3.2-1 that contains Z)."""
    if isinstance(Z, bool) or not isinstance(Z, (int, np.integer)) or int(Z) not in _SET_INDEX:
        valid = ", ".join(str(z) for z in sorted(_SET_INDEX))
        raise ConfigError(f"5G NR LDPC: lifting size Z = {Z!r} is not in TS 38.212 Table 5.3.2-1; valid Z: {valid}")
    return _SET_INDEX[int(Z)]


@lru_cache(maxsize=None)
def shift_table(base_graph: int) -> np.ndarray:
    """V_ij of base graph 1 or 2 for every set index: int array (8, rows, columns), -1 for zero blocks."""
    bg = _check_base_graph(base_graph)
    text = files("eccflow.codes").joinpath("data", _DATA_FILE).read_text(encoding="utf-8")
    entry = json.loads(text)[f"bg{bg}"]
    shape = (int(entry["rows"]), int(entry["columns"]))
    if shape != BASE_GRAPH_SHAPES[bg]:
        raise CodeFormatError(f"{_DATA_FILE}: bg{bg} is {shape[0]} x {shape[1]}, expected {BASE_GRAPH_SHAPES[bg]}")
    values = np.asarray(entry["entries"], dtype=np.int64)
    if values.ndim != 2 or values.shape[1] != 2 + len(LIFTING_SIZES):
        raise CodeFormatError(f"{_DATA_FILE}: bg{bg} entries must be [i, j, V_0..V_7] rows, got shape {values.shape}")
    rows, cols, shifts = values[:, 0], values[:, 1], values[:, 2:]
    if rows.min() < 0 or rows.max() >= shape[0] or cols.min() < 0 or cols.max() >= shape[1]:
        raise CodeFormatError(f"{_DATA_FILE}: bg{bg} has a position outside {shape[0]} x {shape[1]}")
    if shifts.min() < 0:
        raise CodeFormatError(f"{_DATA_FILE}: bg{bg} has a negative shift value at a listed position")
    table = np.full((len(LIFTING_SIZES), *shape), -1, dtype=np.int64)
    table[:, rows, cols] = shifts.T
    if int((table[0] >= 0).sum()) != len(values):
        raise CodeFormatError(f"{_DATA_FILE}: bg{bg} lists a position twice")
    table.setflags(write=False)
    return table


def base_matrix(base_graph: int, Z: int) -> np.ndarray:
    """Shift matrix P_ij = V_ij mod Z for set index i_LS(Z), -1 where H_BG has no entry."""
    table = shift_table(base_graph)[set_index(Z)]
    return np.where(table >= 0, table % int(Z), -1)


def lift(base: np.ndarray, Z: int) -> np.ndarray:
    """Expand a shift matrix into H: -1 -> Z x Z zeros, P -> identity shifted right by P (row r, column (r+P) mod Z)."""
    block_rows, block_cols = np.nonzero(base >= 0)
    shifts = base[block_rows, block_cols]
    r = np.arange(Z)
    H = np.zeros((base.shape[0] * Z, base.shape[1] * Z), dtype=np.uint8)
    H[(block_rows[:, None] * Z + r).ravel(), (block_cols[:, None] * Z + (r + shifts[:, None]) % Z).ravel()] = 1
    return H


def nr5g_ldpc_code(base_graph: int, Z: int) -> Code:
    """Lifted 5G NR LDPC mother code of base graph 1 or 2 and lifting size Z (TS 38.212 section 5.3.2)."""
    bg = _check_base_graph(base_graph)
    i_ls = set_index(Z)
    Z = int(Z)
    rows, cols = BASE_GRAPH_SHAPES[bg]
    k_b = INFO_COLUMNS[bg]
    meta = {
        "base_graph": bg,
        "Z": Z,
        "set_index": i_ls,
        "base_shape": [rows, cols],
        "info_columns": k_b,
        "info_bits": k_b * Z,
        "systematic": f"codeword bits 0..{k_b * Z - 1} are the information bits (filler bits pad K' < {k_b * Z})",
        "punctured_bits": 2 * Z,
        "punctured": f"bits 0..{2 * Z - 1} (base columns 0 and 1) are never transmitted",
        "circular_buffer_bits": (cols - 2) * Z,
    }
    return Code(lift(base_matrix(bg, Z), Z), name=f"NR5G_BG{bg}_Z{Z}", family="NR5G", meta=meta)


def _build(match: re.Match[str]) -> Code:
    return nr5g_ldpc_code(int(match["bg"]), int(match["z"]))


register_construction(
    r"nr5g_bg(?P<bg>\d+)_z(?P<z>\d+)",
    _build,
    "nr5g_bg2_z20",
    "3GPP TS 38.212 LDPC mother code, base graph 1 (n = 68 Z) or 2 (n = 52 Z), Z from Table 5.3.2-1",
)
