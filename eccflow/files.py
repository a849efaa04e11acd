"""Atomic file writes: a reader, or a process killed mid-write, never sees a half-written file."""
from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary sibling of ``path`` to write (same folder, suffix kept, unique per process); renamed over
    ``path`` when the block ends, removed if it raises. Creates the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically; returns the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def check_writable(path: str | Path, what: str) -> Path:
    """Fail now, not after the work, if ``path`` cannot be written: its folder is created and a probe file
    written and removed there. ``what`` names the setting in the error."""
    from eccflow.errors import ConfigError

    path = Path(path)
    probe = path.with_name(f".{path.name}.{os.getpid()}.probe")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise ConfigError(f"{what} {path}: cannot write there ({err.strerror or err})") from None
    return path
