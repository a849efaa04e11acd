"""Keep freed host memory in the process between training steps (glibc malloc settings).

glibc's ``malloc`` serves every block above its mmap threshold (128 kB to 32 MB) with a fresh ``mmap`` and
unmaps it on ``free``: each step's activation tensors then come back as new pages, each zeroed by the kernel on
its first touch. The bare ECCT step on BCH(31,16), one CPU thread, spends 10 ms of system time per 102 ms step
at batch 128 and 334 ms per 957 ms step at batch 1024 that way (``benchmarks/results/training_throughput/``).
Setting ``M_MMAP_MAX`` to 0 and the trim threshold to its maximum keeps freed blocks in the heap, so later steps
reuse them; the process keeps its peak memory instead of returning it. Numerics are unchanged. PyTorch's CPU tuning guide
reaches the same effect by preloading jemalloc or tcmalloc.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import platform

M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # mallopt parameters (malloc.h)
_applied = False


def keep_freed_memory() -> bool:
    """Apply the glibc settings once per process; True when they are in force (False off glibc, e.g. macOS)."""
    global _applied
    if _applied:
        return True
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    _applied = bool(libc.mallopt(M_MMAP_MAX, 0)) and bool(libc.mallopt(M_TRIM_THRESHOLD, 2**31 - 1))
    return _applied
