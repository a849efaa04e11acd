"""Readers and writers for parity-check matrix files.

Two formats (see ``shared/codes/SOURCE.md``):

* dense ``.txt``: one row of H per line, 0/1 separated by whitespace;
* MacKay ``.alist``: ``n m`` / ``dv_max dc_max`` / column weights / row weights / per-column
  1-based row indices (0-padded) / per-row 1-based column indices (0-padded).

File names ``{FAMILY}_N{n}_K{k}.{txt|alist}`` state n and k; both are checked on load.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from eccflow.codes.code import Code
from eccflow.errors import CodeFormatError

_NAME = re.compile(r"^(?P<family>.+?)_N(?P<n>\d+)_K(?P<k>\d+)$", re.IGNORECASE)


def canonical_name(family: str, n: int, k: int) -> str:
    """Registry spelling of a code name, e.g. ``BCH_n63_k45``."""
    return f"{family}_n{n}_k{k}"


def parse_code_filename(path: str | Path) -> tuple[str, int, int] | None:
    """``(family, n, k)`` from a file name like ``LDPC_N49_K24.alist``, or ``None`` if it has no such form."""
    stem = Path(path).name.split(".")[0]
    match = _NAME.match(stem)
    if match is None:
        return None
    return match["family"], int(match["n"]), int(match["k"])


def _tokens(line: str, path: Path, lineno: int) -> list[int]:
    try:
        return [int(tok) for tok in line.split()]
    except ValueError:
        raise CodeFormatError(f"{path}: line {lineno} has a non-integer entry: {line.strip()[:60]!r}") from None


def read_dense(path: str | Path) -> np.ndarray:
    """Read a dense 0/1 matrix file (one row per line). Blank lines are ignored."""
    path = Path(path)
    rows: list[list[int]] = []
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        row = _tokens(line, path, lineno)
        if rows and len(row) != len(rows[0]):
            raise CodeFormatError(
                f"{path}: ragged matrix, line {lineno} has {len(row)} entries, line 1 has {len(rows[0])}"
            )
        bad = [v for v in row if v not in (0, 1)]
        if bad:
            raise CodeFormatError(f"{path}: line {lineno} has non-binary entries {sorted(set(bad))[:5]}")
        rows.append(row)
    if not rows:
        raise CodeFormatError(f"{path}: file holds no matrix rows")
    return np.asarray(rows, dtype=np.uint8)


def read_alist(path: str | Path) -> np.ndarray:
    """Read a MacKay alist file; both the column and row sections must describe the same H."""
    path = Path(path)
    lines = [(i, ln) for i, ln in enumerate(path.read_text().splitlines(), start=1) if ln.strip()]
    if len(lines) < 4:
        raise CodeFormatError(f"{path}: alist needs at least 4 header lines, found {len(lines)}")
    header = [_tokens(ln, path, i) for i, ln in lines[:4]]
    if len(header[0]) != 2 or len(header[1]) != 2:
        raise CodeFormatError(f"{path}: alist lines 1-2 must hold two integers each ('n m', 'dv_max dc_max')")
    n, m = header[0]
    dv_max, dc_max = header[1]
    if n <= 0 or m <= 0:
        raise CodeFormatError(f"{path}: alist sizes must be positive, got n={n} m={m}")
    col_w, row_w = header[2], header[3]
    if len(col_w) != n or len(row_w) != m:
        raise CodeFormatError(
            f"{path}: alist weight lines have {len(col_w)} column and {len(row_w)} row weights, expected {n} and {m}"
        )
    if len(lines) < 4 + n + m:
        raise CodeFormatError(f"{path}: alist has {len(lines) - 4} index lines, expected n + m = {n + m}")

    def section(start: int, count: int, weights: list[int], bound: int, what: str) -> list[list[int]]:
        out = []
        for j in range(count):
            lineno, text = lines[start + j]
            idx = [v for v in _tokens(text, path, lineno) if v != 0]
            if any(v < 1 or v > bound for v in idx):
                raise CodeFormatError(f"{path}: line {lineno}: {what} index outside 1..{bound}")
            if len(idx) != weights[j]:
                raise CodeFormatError(
                    f"{path}: line {lineno}: {what} list has {len(idx)} entries but its weight line says {weights[j]}"
                )
            if len(set(idx)) != len(idx):
                raise CodeFormatError(f"{path}: line {lineno}: repeated {what} index")
            out.append(idx)
        return out

    by_col = section(4, n, col_w, m, "row")
    by_row = section(4 + n, m, row_w, n, "column")
    if max(col_w) > dv_max or max(row_w) > dc_max:
        raise CodeFormatError(f"{path}: alist weights exceed the stated maxima dv_max={dv_max}, dc_max={dc_max}")
    H = np.zeros((m, n), dtype=np.uint8)
    for j, rows in enumerate(by_col):
        H[np.asarray(rows) - 1, j] = 1
    H_rows = np.zeros_like(H)
    for i, cols in enumerate(by_row):
        H_rows[i, np.asarray(cols) - 1] = 1
    if not np.array_equal(H, H_rows):
        diff = np.argwhere(H != H_rows)[0]
        raise CodeFormatError(
            f"{path}: alist column and row sections disagree (first at row {diff[0] + 1}, column {diff[1] + 1})"
        )
    return H


def write_dense(H: np.ndarray, path: str | Path) -> None:
    """Write H as a dense 0/1 text file."""
    Path(path).write_text("\n".join(" ".join(str(int(v)) for v in row) for row in np.asarray(H)) + "\n")


def write_alist(H: np.ndarray, path: str | Path) -> None:
    """Write H in MacKay's alist format (1-based indices, 0-padded to the maximum degree)."""
    H = np.asarray(H, dtype=np.uint8)
    m, n = H.shape
    col_w, row_w = H.sum(axis=0), H.sum(axis=1)
    dv_max, dc_max = int(col_w.max()), int(row_w.max())

    def padded(idx: np.ndarray, width: int) -> str:
        vals = list(idx + 1) + [0] * (width - idx.size)
        return " ".join(str(int(v)) for v in vals)

    lines = [f"{n} {m}", f"{dv_max} {dc_max}", " ".join(map(str, col_w)), " ".join(map(str, row_w))]
    lines += [padded(np.flatnonzero(H[:, j]), dv_max) for j in range(n)]
    lines += [padded(np.flatnonzero(H[i]), dc_max) for i in range(m)]
    Path(path).write_text("\n".join(lines) + "\n")


def read_matrix(path: str | Path) -> np.ndarray:
    """Read H from a ``.alist`` file or a dense text file (any other extension)."""
    path = Path(path)
    if not path.is_file():
        raise CodeFormatError(f"{path}: no such file")
    try:
        return read_alist(path) if path.name.endswith(".alist") else read_dense(path)
    except UnicodeDecodeError:
        raise CodeFormatError(f"{path}: not a text file (a code file is a dense 0/1 matrix or an .alist)") from None


def load_code_file(path: str | Path) -> Code:
    """Load a code file, checking n and k against a ``FAMILY_N{n}_K{k}`` file name when it has one."""
    path = Path(path)
    H = read_matrix(path)
    parsed = parse_code_filename(path)
    if parsed is None:
        return Code(H, name=path.name.split(".")[0], family="custom", meta={"source": str(path)})
    family, n, k = parsed
    if H.shape[1] != n:
        raise CodeFormatError(f"{path}: file name says n = {n} but the matrix has {H.shape[1]} columns")
    return Code(H, name=canonical_name(family, n, k), family=family.upper(), expected_k=k, meta={"source": str(path)})
