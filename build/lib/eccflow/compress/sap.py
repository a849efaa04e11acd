"""SAP: spectral-aligned reuse of pruning masks across codes (SAP paper, sections on signature and library).

Signature of a code: the ``count`` largest singular values of H (= largest eigenvalues of the Tanner
adjacency [[0, H^T], [H, 0]]). Distance d = ||sig_1 - sig_2||_2, similarity S = exp(-d / T) (monotone
in d, so T changes no ranking, only the scale tau is read on). A library holds, per backbone, entries
(code, signature, mask); for a target code the nearest entry is reused when S >= tau, otherwise a
mask is derived (Fisher) and inserted.

The library is one JSON file per backbone. Inserts hold an exclusive file lock, re-read the file, add
the entry and replace the file atomically, so concurrent pipelines lose no entry and a reader never
sees a half-written file.
"""
from __future__ import annotations

import fcntl
import json
import math
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from eccflow.codes import Code
from eccflow.codes.spectra import spectral_signature
from eccflow.compress.fisher import UnitMask
from eccflow.errors import ConfigError
from eccflow.files import atomic_write_text

FORMAT_VERSION = 1


def signature(code: Code, count: int = 2) -> list[float]:
    """The ``count`` (1..4) largest singular values of H, descending."""
    if not 1 <= count <= 4:
        raise ConfigError(f"the SAP signature uses 1 to 4 eigenvalues, got {count}")
    return [float(v) for v in spectral_signature(code, count)]


def similarity(a: list[float], b: list[float], temperature: float, count: int | None = None) -> float:
    """S = exp(-||a - b||_2 / T) over the leading ``count`` (default: all common) eigenvalues."""
    if not temperature > 0:
        raise ConfigError(f"the similarity temperature T must be > 0, got {temperature}")
    k = min(len(a), len(b), count or 4)
    return math.exp(-float(np.linalg.norm(np.subtract(a[:k], b[:k]))) / temperature)


@dataclass
class LibraryEntry:
    code: str
    signature: list[float]
    mask: UnitMask

    def to_dict(self) -> dict:
        return {"code": self.code, "signature": self.signature, "mask": self.mask.__dict__}


@dataclass
class Retrieval:
    entry: LibraryEntry | None
    similarity: float
    reuse: bool


class MaskLibrary:
    """Masks of one backbone (``backbone_id``), persisted at ``path``."""

    def __init__(self, path: str | Path, backbone_id: str) -> None:
        self.path, self.backbone_id = Path(path), backbone_id

    def entries(self) -> list[LibraryEntry]:
        """All entries; a missing file is an empty library, a damaged or foreign one a clear error."""
        if not self.path.is_file():
            return []
        try:
            data = json.loads(self.path.read_text())
            backbone, entries = data["backbone"], data["entries"]
            version = data["version"]
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise ConfigError(f"mask library {self.path} is truncated or corrupt ({type(err).__name__}: {err}); "
                              "it was left untouched") from None
        if version != FORMAT_VERSION:
            raise ConfigError(f"mask library {self.path} has format version {version}, this eccflow reads {FORMAT_VERSION}")
        if backbone != self.backbone_id:
            raise ConfigError(f"mask library {self.path} belongs to backbone {backbone!r}, not {self.backbone_id!r}; "
                              "masks do not transfer between backbones")
        try:
            return [LibraryEntry(e["code"], [float(v) for v in e["signature"]], UnitMask(**e["mask"])) for e in entries]
        except (KeyError, TypeError, ValueError) as err:
            raise ConfigError(f"mask library {self.path} has a malformed entry ({type(err).__name__}: {err})") from None

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(self.path.suffix + ".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def insert(self, entry: LibraryEntry) -> int:
        """Add (or replace, by code name) an entry atomically; returns the new number of entries."""
        with self._locked():
            entries = [e for e in self.entries() if e.code != entry.code] + [entry]
            payload = {"version": FORMAT_VERSION, "backbone": self.backbone_id, "entries": [e.to_dict() for e in entries]}
            atomic_write_text(self.path, json.dumps(payload))
        return len(entries)

    def retrieve(self, target: list[float], tau: float, temperature: float, count: int = 2) -> Retrieval:
        """Nearest entry by similarity of the leading ``count`` eigenvalues; ``reuse`` when S >= tau.

        Entries store 4 eigenvalues so the signature size is an ablation, not a rebuild; ties go to
        the earlier entry, so retrieval is deterministic.
        """
        if not 1 <= count <= 4:
            raise ConfigError(f"the SAP signature uses 1 to 4 eigenvalues, got {count}")
        if not 0 <= tau <= 1:
            raise ConfigError(f"the reuse threshold tau must lie in [0, 1], got {tau}")
        best: tuple[float, LibraryEntry | None] = (-1.0, None)
        for entry in self.entries():
            s = similarity(entry.signature, target, temperature, count)
            if s > best[0]:
                best = (s, entry)
        score, entry = best
        return Retrieval(entry, max(score, 0.0), entry is not None and score >= tau)

    def least_similar(self, target: list[float], temperature: float, count: int = 2) -> Retrieval:
        """The entry farthest from ``target`` (the SAP paper's cross-family, mismatched-mask control); its mask is
        always used. An empty library is a ConfigError."""
        entries = self.entries()
        if not entries:
            raise ConfigError(f"the mask library {self.path} is empty: the mismatched-mask arm needs at least one "
                              "entry (run PIPELINE=sap_library on a few codes first)")
        scored = [(similarity(e.signature, target, temperature, count), i, e) for i, e in enumerate(entries)]
        score, _, entry = min(scored, key=lambda t: (t[0], t[1]))
        return Retrieval(entry, score, True)


def random_mask_like(mask: UnitMask, seed: int) -> UnitMask:
    """A mask keeping, in every block, as many heads and FFN channels as ``mask`` (so the same FLOPs), chosen
    uniformly at random with a fixed ``seed``: the random-mask control of a structured-pruning comparison."""
    rng = np.random.default_rng(seed)
    heads = [sorted(int(i) for i in rng.choice(mask.num_heads, size=len(kept), replace=False)) for kept in mask.heads]
    channels = [sorted(int(i) for i in rng.choice(mask.d_ff, size=len(kept), replace=False)) for kept in mask.channels]
    return UnitMask(heads=heads, channels=channels, num_heads=mask.num_heads, d_ff=mask.d_ff)
