"""Codes by name: the shared benchmark files and parametric constructions.

``get_code("BCH_n63_k45")`` reads ``shared/codes/BCH_N63_K45.txt``; ``get_code("nr5g_bg2_z20")``
builds a code. Names are case-insensitive. A path to a code file is accepted in place of a name.
The shared folder is ``$ECCFLOW_CODES_DIR`` if set, else ``shared/codes`` inside or beside the repo.
"""
from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable

from eccflow.codes.code import Code
from eccflow.codes.io import canonical_name, load_code_file, parse_code_filename
from eccflow.errors import UnknownCodeError
from eccflow.home import checkout_root, home

_CODE_SUFFIXES = (".txt", ".alist")


@dataclass(frozen=True)
class Construction:
    """A parametric family reachable by name: ``pattern`` (full-match, case-insensitive) -> ``build``."""

    pattern: re.Pattern[str]
    build: Callable[[re.Match[str]], Code]
    example: str
    description: str


_CONSTRUCTIONS: list[Construction] = []


def register_construction(pattern: str, build: Callable[[re.Match[str]], Code], example: str, description: str) -> None:
    """Make a family of constructed codes addressable by name (called by each construction module)."""
    _CONSTRUCTIONS.append(Construction(re.compile(pattern, re.IGNORECASE), build, example, description))


def _load_constructions() -> None:
    # Importing the construction package registers every family exactly once.
    import eccflow.codes.constructions  # noqa: F401


def codes_dir() -> Path | None:
    """Folder holding the shared parity-check files, or ``None`` if none is found."""
    env = os.environ.get("ECCFLOW_CODES_DIR")
    if env:
        return Path(env)
    places = [home()]
    checkout = checkout_root()
    if checkout is not None:
        places += [checkout, checkout.parent]
    for candidate in (place / "shared" / "codes" for place in places):
        if candidate.is_dir():
            return candidate
    return None


@lru_cache(maxsize=None)
def _shared_files(directory: Path | None) -> dict[str, Path]:
    if directory is None:
        return {}
    files: dict[str, Path] = {}
    for path in sorted(directory.rglob("*")):
        if not path.is_file() or not path.name.endswith(_CODE_SUFFIXES):
            continue
        parsed = parse_code_filename(path)
        if parsed is None or path.name.count(".") > 1:
            continue
        files.setdefault(canonical_name(*parsed), path)
    return files


def shared_code_files() -> dict[str, Path]:
    """Canonical name (``FAMILY_n{n}_k{k}``) -> file, for every shared code file."""
    return _shared_files(codes_dir())


def list_codes() -> list[str]:
    """Names of the shared codes (sorted), then one example name per construction."""
    _load_constructions()
    return sorted(shared_code_files(), key=str.lower) + [c.example for c in _CONSTRUCTIONS]


def constructions() -> list[Construction]:
    _load_constructions()
    return list(_CONSTRUCTIONS)


@lru_cache(maxsize=128)
def _cached(key: str) -> Code:
    files = {name.lower(): path for name, path in shared_code_files().items()}
    if key.lower() in files:
        return load_code_file(files[key.lower()])
    for construction in _CONSTRUCTIONS:
        match = construction.pattern.fullmatch(key)
        if match is not None:
            return construction.build(match)
    path = Path(key)
    if path.suffix in _CODE_SUFFIXES or path.is_file():
        if not path.is_file():
            raise UnknownCodeError(f"code file {key!r} does not exist")
        return load_code_file(path)
    known = list(files) + [c.example.lower() for c in _CONSTRUCTIONS]
    close = difflib.get_close_matches(key.lower(), known, n=5, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else "; run `eccflow codes list`"
    where = f" (shared codes read from {codes_dir()})" if codes_dir() else " (no shared/codes folder found; set ECCFLOW_CODES_DIR)"
    raise UnknownCodeError(f"unknown code {key!r}{hint}{where}")


def get_code(name: str | Path | Code) -> Code:
    """A ``Code`` by registry name (case-insensitive), construction name, or file path."""
    if isinstance(name, Code):
        return name
    _load_constructions()
    key = str(name).strip()
    is_path = Path(key).suffix in _CODE_SUFFIXES or os.sep in key
    return _cached(key if is_path else key.lower())
