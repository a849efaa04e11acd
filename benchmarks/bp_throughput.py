"""Decoding throughput of our sum-product BP, side by side with sionna's LDPCBPDecoder when installed.

Both decoders get the same parity-check matrix (every stored row), the same iterations (flooding, no
early stop) and the same channel LLRs (all-zero codeword, BPSK-AWGN); sionna takes logits
ln(p1/p0), so it is fed -LLR. Per configuration: one warm-up call of each on 256 frames, then ``--repeats`` timed
calls alternating ours / sionna under ``torch.inference_mode``; frames/s = batch / median time.
Agreement is the fraction of frames whose n hard decisions are identical (last timed outputs).

    .venv-bench/bin/python benchmarks/bp_throughput.py [--quick] [--out PATH]
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import shlex
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from eccflow.channels import awgn_llr
from eccflow.codes import Code, get_code
from eccflow.decoders.message_passing import BeliefPropagationDecoder

DEFAULT_OUT = "benchmarks/results/bp_throughput.md"
QUICK_OUT = "benchmarks/results/bp_throughput_quick.md"

WARMUP_FRAMES = 256  # warm-up call per decoder on a slice: allocator, lazy set-up
Decode = Callable[[torch.Tensor], torch.Tensor]  # LLRs (B, n), positive = bit 0 -> hard bits (B, n)


@dataclass
class Row:
    code: Code
    batch: int
    iterations: int
    threads: int
    ours_fps: float
    ours_fer: float
    peer_fps: float | None = None
    peer_fer: float | None = None
    agreement: float | None = None


def sionna_decoder(code: Code, iterations: int) -> Decode | None:
    """sionna's flooding sum-product decoder on ``code.H``, or ``None`` if sionna is not installed."""
    try:
        from sionna.phy.fec.ldpc import LDPCBPDecoder
    except ImportError:
        return None
    decoder = LDPCBPDecoder(code.H_sparse, cn_update="boxplus-phi", num_iter=iterations, hard_out=True)
    return lambda llr: decoder(-llr)  # sionna's input is the logit ln(p1/p0) = -LLR


def timed(fn: Decode, llr: torch.Tensor) -> tuple[float, torch.Tensor]:
    start = time.perf_counter()
    bits = fn(llr)
    return time.perf_counter() - start, bits


def run_config(code: Code, llr: torch.Tensor, iterations: int, threads: int, repeats: int, with_peer: bool) -> Row:
    torch.set_num_threads(threads)
    ours_module = BeliefPropagationDecoder(code, iterations=iterations, check_update="sum-product")
    decoders: dict[str, Decode] = {"ours": lambda x: ours_module(x).bits}
    peer = sionna_decoder(code, iterations) if with_peer else None
    if peer is not None:
        decoders["peer"] = peer
    times: dict[str, list[float]] = {name: [] for name in decoders}
    outputs: dict[str, torch.Tensor] = {}
    with torch.inference_mode():
        for fn in decoders.values():
            fn(llr[:WARMUP_FRAMES])
        for _ in range(repeats):
            for name, fn in decoders.items():
                seconds, outputs[name] = timed(fn, llr)
                times[name].append(seconds)
    batch = llr.shape[0]
    fps = {name: batch / statistics.median(t) for name, t in times.items()}
    fer = {name: float(bits.ne(0).any(dim=1).float().mean()) for name, bits in outputs.items()}
    row = Row(code, batch, iterations, threads, fps["ours"], fer["ours"])
    if peer is not None:
        row.peer_fps, row.peer_fer = fps["peer"], fer["peer"]
        row.agreement = float(outputs["ours"].eq(outputs["peer"]).all(dim=1).float().mean())
    return row


def machine_line() -> str:
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if line.startswith("model name")]
        model = names[0] if names else model
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{model}, {os.cpu_count()} logical cores, {platform.system()} {platform.release()}; 1-min load average at start {load:.2f}"


def command_line() -> str:
    python = Path(sys.executable)
    try:
        python = python.relative_to(Path.cwd())
    except ValueError:
        pass
    return shlex.join([str(python), *sys.argv])


def fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def report(rows: list[Row], args: argparse.Namespace, peer_version: str | None, started: str) -> str:
    lines = [
        "# BP decoding throughput: eccflow vs sionna",
        "",
        f"- Date: {started}",
        f"- Machine: {machine_line()}",
        f"- torch {torch.__version__}; sionna {peer_version or 'not installed'}; Python {platform.python_version()}",
        f"- Command: `{command_line()}`",
        f"- Sum-product (sionna: `boxplus-phi`, `llr_max` 20), flooding, no early stop, all rows of H; "
        f"all-zero codeword, BPSK-AWGN at Eb/N0 = {args.ebn0} dB (rate k/n), same LLRs to both; "
        f"one warm-up call on {WARMUP_FRAMES} frames, then the median of {args.repeats} alternating timed calls; `torch.inference_mode`.",
        "- ours/sionna > 1 means ours is faster. Agreement: fraction of frames with identical hard decisions. "
        "FER: frames not decoded to the all-zero word.",
        "",
        "| code | n | edges | batch | iters | threads | ours frames/s | sionna frames/s | ours/sionna | agreement | FER ours | FER sionna |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        ratio = r.ours_fps / r.peer_fps if r.peer_fps else None
        lines.append(
            f"| {r.code.name} | {r.code.n} | {r.code.num_edges} | {r.batch} | {r.iterations} | {r.threads} "
            f"| {r.ours_fps:,.0f} | {fmt(r.peer_fps, ',.0f')} | {fmt(ratio, '.2f')} | {fmt(r.agreement, '.4f')} "
            f"| {r.ours_fer:.4f} | {fmt(r.peer_fer, '.4f')} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help=f"markdown file (default {DEFAULT_OUT}; with --quick {QUICK_OUT})")
    parser.add_argument("--quick", action="store_true", help="tiny run: batch 200, 5 iterations, 1 thread, 2 repeats")
    parser.add_argument("--codes", nargs="+", default=["LDPC_n121_k60", "nr5g_bg2_z20"])
    parser.add_argument("--batches", nargs="+", type=int, default=[1000, 10000])
    parser.add_argument("--iterations", nargs="+", type=int, default=[5, 20])
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--ebn0", type=float, default=3.0, help="Eb/N0 in dB")
    parser.add_argument("--seed", type=int, default=2024)
    args = parser.parse_args()
    if args.quick:
        args.batches, args.iterations, args.threads, args.repeats = [200], [5], [1], 2
    for label, values in (("batches", args.batches), ("iterations", args.iterations), ("threads", args.threads)):
        if min(values) < 1:
            parser.error(f"--{label} must be positive, got {values}")
    if args.repeats < 1:
        parser.error(f"--repeats must be positive, got {args.repeats}")
    out = Path(args.out or (QUICK_OUT if args.quick else DEFAULT_OUT))

    try:
        import sionna

        peer_version: str | None = sionna.__version__
    except ImportError:
        peer_version = None
        print("sionna not installed: timing eccflow only", file=sys.stderr)
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    rows = []
    for name in args.codes:
        code = get_code(name)
        for batch in args.batches:
            generator = torch.Generator().manual_seed(args.seed)
            _, llr = awgn_llr(torch.zeros(batch, code.n), args.ebn0, code.rate, generator=generator)
            for iterations in args.iterations:
                for threads in args.threads:
                    row = run_config(code, llr, iterations, threads, args.repeats, peer_version is not None)
                    rows.append(row)
                    ratio = f", ratio {row.ours_fps / row.peer_fps:.2f}" if row.peer_fps else ""
                    print(
                        f"{code.name} B={batch} L={iterations} T={threads}: ours {row.ours_fps:,.0f} fps"
                        f", sionna {fmt(row.peer_fps, ',.0f')} fps{ratio}",
                        flush=True,
                    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report(rows, args, peer_version, started))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
