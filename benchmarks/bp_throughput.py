"""Decoding throughput of our sum-product BP, side by side with two peers when installed: sionna's
LDPCBPDecoder (PyTorch) and the C++ BP of the ``ldpc`` package (Roffe's BP+OSD library).

Every decoder gets the same parity-check matrix (every stored row), the same iterations (flooding) and the
same channel LLRs (all-zero codeword, BPSK-AWGN). Ours runs without and with early stop (decoded words
leave the batch); sionna has no early stop; ``ldpc`` always stops a word once its syndrome is zero and
decodes one word per call (``update_channel_probs`` with p_v = 1 / (1 + e^|llr_v|), then ``decode`` of the
hard decisions), the way a Python user drives it. sionna takes logits ln(p1/p0), so it is fed -LLR.
Per configuration: one warm-up call of each on 256 frames, then ``--repeats`` timed calls alternating the
decoders under ``torch.inference_mode``; frames/s = batch / median time. Agreement is the fraction of
frames whose n hard decisions are identical (last timed outputs; ours with early stop against ``ldpc``).

    .venv-bench/bin/python benchmarks/bp_throughput.py [--quick] [--out PATH]
"""
from __future__ import annotations

import argparse
import datetime
import importlib
import importlib.metadata
import os
import platform
import shlex
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
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
    fps: dict[str, float]  # decoder -> frames/s: ours, ours-es, sionna, ldpc (those that ran)
    fer: dict[str, float]
    agreement: dict[str, float]  # "sionna": ours vs sionna; "ldpc": ours with early stop vs ldpc

    def ratio(self, a: str, b: str) -> float | None:
        return self.fps[a] / self.fps[b] if a in self.fps and b in self.fps else None


def sionna_decoder(code: Code, iterations: int) -> Decode | None:
    """sionna's flooding sum-product decoder on ``code.H``, or ``None`` if sionna is not installed."""
    try:
        from sionna.phy.fec.ldpc import LDPCBPDecoder
    except ImportError:
        return None
    decoder = LDPCBPDecoder(code.H_sparse, cn_update="boxplus-phi", num_iter=iterations, hard_out=True)
    return lambda llr: decoder(-llr)  # sionna's input is the logit ln(p1/p0) = -LLR


def ldpc_decoder(code: Code, iterations: int) -> Decode | None:
    """The ``ldpc`` package's product-sum BP (parallel schedule) on ``code.H``, or ``None`` if not installed."""
    try:
        from ldpc import BpDecoder
    except ImportError:
        return None
    decoder = BpDecoder(code.H_sparse.astype(np.uint8), error_rate=0.1, max_iter=iterations, bp_method="product_sum",
                        schedule="parallel", input_vector_type="received_vector", omp_thread_count=1)

    def decode(llr: torch.Tensor) -> torch.Tensor:
        values = llr.numpy().astype(np.float64)
        hard = (values < 0).astype(np.uint8)
        error_probability = 1.0 / (1.0 + np.exp(np.abs(values)))
        bits = np.empty_like(hard)
        for frame in range(values.shape[0]):
            decoder.update_channel_probs(error_probability[frame])
            bits[frame] = decoder.decode(hard[frame])
        return torch.from_numpy(bits)

    return decode


def timed(fn: Decode, llr: torch.Tensor) -> tuple[float, torch.Tensor]:
    start = time.perf_counter()
    bits = fn(llr)
    return time.perf_counter() - start, bits


def run_config(code: Code, llr: torch.Tensor, iterations: int, threads: int, repeats: int, peers: list[str]) -> Row:
    torch.set_num_threads(threads)
    ours = BeliefPropagationDecoder(code, iterations=iterations, check_update="sum-product")
    ours_es = BeliefPropagationDecoder(code, iterations=iterations, check_update="sum-product", early_stop=True)
    decoders: dict[str, Decode] = {"ours": lambda x: ours(x).bits, "ours-es": lambda x: ours_es(x).bits}
    for name, build in (("sionna", sionna_decoder), ("ldpc", ldpc_decoder)):
        peer = build(code, iterations) if name in peers else None
        if peer is not None:
            decoders[name] = peer
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
    agreement = {peer: float(outputs[mine].to(outputs[peer].dtype).eq(outputs[peer]).all(dim=1).float().mean())
                 for peer, mine in (("sionna", "ours"), ("ldpc", "ours-es")) if peer in outputs}
    return Row(code, batch, iterations, threads, fps, fer, agreement)


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


def report(rows: list[Row], args: argparse.Namespace, versions: dict[str, str], started: str) -> str:
    peers = "; ".join(f"{name} {version}" for name, version in versions.items()) or "no peer installed"
    lines = [
        "# BP decoding throughput: eccflow vs sionna and the ldpc package",
        "",
        f"- Date: {started}",
        f"- Machine: {machine_line()}",
        f"- torch {torch.__version__}; {peers}; Python {platform.python_version()}",
        f"- Command: `{command_line()}`",
        f"- Sum-product (sionna: `boxplus-phi`; ldpc: `product_sum`, parallel schedule), flooding, all rows of H; "
        f"all-zero codeword, BPSK-AWGN at Eb/N0 = {args.ebn0} dB (rate k/n), same LLRs to all; "
        f"one warm-up call on {WARMUP_FRAMES} frames, then the median of {args.repeats} alternating timed calls; "
        "`torch.inference_mode`.",
        "- ours: no early stop (as sionna); ours ES: early stop, decoded words leave the batch; ldpc stops every "
        "word at a zero syndrome and decodes one word per call. Ratios > 1 mean ours is faster.",
        "- FER: frames not decoded to the all-zero word. Agreement: frames with identical hard decisions "
        "(ours vs sionna; ours ES vs ldpc).",
        "",
        "| code | n | edges | batch | iters | threads | ours f/s | ours ES f/s | sionna f/s | ldpc f/s "
        "| ours/sionna | ours/ldpc | ours ES/ldpc | FER ours | FER ours ES | FER sionna | FER ldpc "
        "| agree sionna | agree ldpc |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.code.name} | {r.code.n} | {r.code.num_edges} | {r.batch} | {r.iterations} | {r.threads} "
            + "".join(f"| {fmt(r.fps.get(name), ',.0f')} " for name in ("ours", "ours-es", "sionna", "ldpc"))
            + "".join(f"| {fmt(r.ratio(a, b), '.2f')} " for a, b in (("ours", "sionna"), ("ours", "ldpc"), ("ours-es", "ldpc")))
            + "".join(f"| {fmt(r.fer.get(name), '.4f')} " for name in ("ours", "ours-es", "sionna", "ldpc"))
            + "".join(f"| {fmt(r.agreement.get(name), '.4f')} " for name in ("sionna", "ldpc")) + "|"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help=f"markdown file (default {DEFAULT_OUT}; with --quick {QUICK_OUT})")
    parser.add_argument("--quick", action="store_true", help="tiny run: batch 200, 5 iterations, 1 thread, 2 repeats")
    parser.add_argument("--codes", nargs="+", default=["BCH_n63_k45", "LDPC_n121_k60", "nr5g_bg2_z20"])
    parser.add_argument("--batches", nargs="+", type=int, default=[1000])
    parser.add_argument("--iterations", nargs="+", type=int, default=[5, 20])
    parser.add_argument("--threads", nargs="+", type=int, default=[1])
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

    versions = {}
    for name in ("sionna", "ldpc"):
        try:
            versions[name] = importlib.metadata.version("sionna-no-rt" if name == "sionna" else name)
            importlib.import_module(name)
        except (ImportError, importlib.metadata.PackageNotFoundError):
            versions.pop(name, None)
            print(f"{name} not installed: not timed", file=sys.stderr)
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    rows = []
    for name in args.codes:
        code = get_code(name)
        for batch in args.batches:
            generator = torch.Generator().manual_seed(args.seed)
            _, llr = awgn_llr(torch.zeros(batch, code.n), args.ebn0, code.rate, generator=generator)
            for iterations in args.iterations:
                for threads in args.threads:
                    row = run_config(code, llr, iterations, threads, args.repeats, list(versions))
                    rows.append(row)
                    speeds = ", ".join(f"{k} {v:,.0f}" for k, v in row.fps.items())
                    print(f"{code.name} B={batch} L={iterations} T={threads}: {speeds} frames/s", flush=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report(rows, args, versions, started))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
