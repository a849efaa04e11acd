"""Fused CPU attention: softmax(Q K^T / sqrt(d_h) + g) V in one C pass per (batch element, head, query).

With the 4-dimensional heads of ECCT N=2 d=32 the written-out attention spends most of its time moving
(B, h, N, N) score tensors through memory (matmul, bias add, softmax, their backward, layout copies).
The kernel in ``fused_attention.c`` makes the heads its vector lanes: it reads Q, K, V head-innermost,
(B, N, 3, d_h, HP) with HP the head count padded to a multiple of eight, visits per query only the keys some
head may attend to (``key_slots``), and writes the context in the same layout; its backward gives the
gradients of Q, K, V and of the bias g. :class:`~eccflow.nn.attention.CodeAwareSelfAttention` gets that
layout without copies by permuting its projections' weights; :func:`fused_attention` converts any other
input.

The C file is compiled once per machine with the system C compiler (``CC``, else ``cc``) into
``$ECCFLOW_KERNEL_CACHE`` (default ``~/.cache/eccflow/kernels``), keyed by the source, the flags and the
CPU. Where no compiler is found, :func:`kernel` returns ``None`` and callers use the written-out form.
"""
from __future__ import annotations

import ctypes
import hashlib
import logging
import math
import os
import platform
import shutil
import subprocess
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
import torch.nn.functional as F

SOURCE = Path(__file__).with_name("fused_attention.c")
FLAGS = ["-O3", "-march=native", "-fno-math-errno", "-std=c11", "-fPIC", "-shared"]

LANES = 8  # the C file's vector width: heads are padded to a multiple of it
_lock = threading.Lock()
_state: dict[str, object] = {}


class KernelUnavailable(RuntimeError):
    """The fused kernel could not be built on this machine (the message says why)."""


def _cpu_signature() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("flags"):
                    return line
    except OSError:
        pass
    return platform.processor()


def _library_path(compiler: str) -> Path:
    key = hashlib.sha256("\0".join([SOURCE.read_text(), compiler, *FLAGS, platform.machine(), _cpu_signature()])
                         .encode()).hexdigest()[:16]
    cache = Path(os.environ.get("ECCFLOW_KERNEL_CACHE", Path.home() / ".cache" / "eccflow" / "kernels"))
    return cache / f"fused_attention-{key}.so"


def _build() -> ctypes.CDLL:
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not compiler:
        raise KernelUnavailable("no C compiler found (set CC or install gcc)")
    target = _library_path(compiler)
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target.parent) as scratch:  # atomic: concurrent builders race safely
            built = Path(scratch) / target.name
            result = subprocess.run([compiler, *FLAGS, str(SOURCE), "-o", str(built), "-lm"],
                                    capture_output=True, text=True)
            if result.returncode:
                raise KernelUnavailable(f"{compiler} failed on {SOURCE.name}: {result.stderr.strip()[:500]}")
            os.replace(built, target)
    library = ctypes.CDLL(str(target))
    i64, f32, ptr = ctypes.c_int64, ctypes.c_float, ctypes.c_void_p
    library.eccflow_attention_forward.argtypes = [ptr, ptr, ptr, i64, i64, i64, i64, i64, i64, f32, ptr, ptr]
    library.eccflow_attention_backward.argtypes = [ptr, ptr, ptr, ptr, i64, i64, i64, i64, i64, i64, f32, ptr, ptr]
    library.eccflow_attention_forward.restype = library.eccflow_attention_backward.restype = ctypes.c_int
    return library


def kernel() -> ctypes.CDLL | None:
    """The compiled kernel, built on first use; ``None`` where it cannot be built (reason in :func:`build_error`)."""
    with _lock:
        if "library" not in _state:
            try:
                _state["library"] = _build()
            except (KernelUnavailable, OSError) as error:
                _state["library"], _state["error"] = None, str(error)
                logging.getLogger("eccflow").warning(
                    "fused attention kernel unavailable (%s); the CPU uses the written-out attention", error)
        return _state["library"]  # type: ignore[return-value]


def build_error() -> str | None:
    """Why the kernel is unavailable, or ``None``."""
    kernel()
    return _state.get("error")  # type: ignore[return-value]


def _forget_pool() -> None:
    """A forked child inherits the pool object but not its threads: it starts its own."""
    _state.pop("pool", None)


os.register_at_fork(after_in_child=_forget_pool)


def _pool(threads: int) -> ThreadPoolExecutor:
    with _lock:
        pool = _state.get("pool")
        if pool is None or pool._max_workers < threads:  # type: ignore[union-attr]
            pool = _state["pool"] = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="eccflow-attention")
        return pool  # type: ignore[return-value]


def _split(batch: int) -> list[tuple[int, int]]:
    """Batch ranges, one per torch CPU thread (ctypes releases the GIL, so the ranges run in parallel)."""
    parts = max(1, min(torch.get_num_threads(), batch))
    edges = [round(batch * k / parts) for k in range(parts + 1)]
    return [(edges[k], edges[k + 1]) for k in range(parts)]


def _run(calls: list) -> None:
    if len(calls) == 1:
        codes = [calls[0]()]
    else:
        codes = list(_pool(len(calls)).map(lambda call: call(), calls))
    if any(codes):
        raise MemoryError("fused attention kernel: scratch allocation failed")


def key_slots(bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per query, the keys some head may attend to, packed: ``keys`` (N, K) and a (N, K) validity mask.

    K is the largest number of such keys over queries; shorter rows are padded with their own query.
    """
    allowed = torch.isfinite(bias).any(dim=0)  # (N, N)
    width = int(allowed.sum(dim=1).max())
    keys = torch.sort(allowed.to(torch.int8), dim=1, descending=True, stable=True).indices[:, :width]
    valid = allowed.gather(1, keys)
    own = torch.arange(bias.shape[1], device=bias.device).unsqueeze(1).expand_as(keys)
    return torch.where(valid, keys, own).to(torch.int32).contiguous(), valid


def slot_bias(bias: torch.Tensor, keys: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """(h, N, N) bias -> (N, K, HP) per key slot, heads innermost and padded with zeros to a multiple of LANES;
    -inf on padding slots. Differentiable, so the bias gradient flows back through this gather."""
    heads = bias.shape[0]
    gathered = bias.gather(2, keys.long().unsqueeze(0).expand(heads, -1, -1)).permute(1, 2, 0)  # (N, K, h)
    return F.pad(gathered, (0, padded_heads(heads) - heads)).masked_fill(~valid.unsqueeze(-1), float("-inf"))


def padded_heads(heads: int) -> int:
    return -(-heads // LANES) * LANES


def head_minor(x: torch.Tensor, heads: int) -> torch.Tensor:
    """(B, N, 3 h d_h) in (part, head, channel) order -> (B, N, 3, d_h, HP), heads innermost, zero-padded."""
    batch, tokens, channels = x.shape
    moved = x.view(batch, tokens, 3, heads, channels // (3 * heads)).transpose(-1, -2)
    missing = padded_heads(heads) - heads
    return (F.pad(moved, (0, missing)) if missing else moved).contiguous()


class FusedAttention(torch.autograd.Function):
    """(qkv (B, N, 3, d_h, HP), keys (N, K), bias per slot (N, K, HP)) -> context (B, N, d_h, HP); float32 CPU."""

    @staticmethod
    def forward(ctx, qkv: torch.Tensor, keys: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        library = kernel()
        batch, tokens, _, d_head, lanes = qkv.shape
        slots, scale = keys.shape[1], 1.0 / math.sqrt(d_head)
        out = qkv.new_empty(batch, tokens, d_head, lanes)
        prob = qkv.new_empty(batch, tokens, slots, lanes)
        _run([lambda b0=b0, b1=b1: library.eccflow_attention_forward(
            qkv.data_ptr(), keys.data_ptr(), bias.data_ptr(), b0, b1, tokens, slots, d_head, lanes, scale,
            out.data_ptr(), prob.data_ptr()) for b0, b1 in _split(batch)])
        ctx.save_for_backward(qkv, keys, prob)
        ctx.scale = scale
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out: torch.Tensor):  # type: ignore[override]
        library = kernel()
        qkv, keys, prob = ctx.saved_tensors
        batch, tokens, _, d_head, lanes = qkv.shape
        slots = keys.shape[1]
        grad_out = grad_out.contiguous()
        grad_qkv = torch.zeros_like(qkv)
        ranges = _split(batch)
        want_bias = ctx.needs_input_grad[2]
        grad_bias = qkv.new_zeros(len(ranges), tokens, slots, lanes) if want_bias else None
        _run([lambda b0=b0, b1=b1, part=part: library.eccflow_attention_backward(
            qkv.data_ptr(), keys.data_ptr(), prob.data_ptr(), grad_out.data_ptr(), b0, b1, tokens, slots, d_head,
            lanes, ctx.scale, grad_qkv.data_ptr(), grad_bias[part].data_ptr() if want_bias else None)
            for part, (b0, b1) in enumerate(ranges)])
        return grad_qkv, None, (grad_bias.sum(dim=0) if want_bias else None)


def fused_attention(qkv: torch.Tensor, bias: torch.Tensor, heads: int) -> torch.Tensor:
    """softmax(Q K^T / sqrt(d_h) + g) V from the packed projection.

    Parameters
    ----------
    qkv : (B, N, 3 h d_h) float32 CPU tensor, Q, K, V as the projection writes them ((B, N, 3, h, d_h)).
    bias : (h, N, N) additive score bias g, -inf where a head may not attend (every row keeps one finite entry).
    heads : h.

    Output
    ------
    (B, N, h d_h) context, heads concatenated. Differentiable in ``qkv`` and ``bias`` (first order).
    """
    if kernel() is None:
        raise KernelUnavailable(f"fused attention kernel unavailable: {build_error()}")
    batch, tokens, channels = qkv.shape
    keys, valid = key_slots(bias.detach())
    context = FusedAttention.apply(head_minor(qkv, heads), keys, slot_bias(bias, keys, valid).contiguous())
    return context[..., :heads].transpose(-1, -2).reshape(batch, tokens, channels // 3)
