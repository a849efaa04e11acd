"""Does float32 change what sum-product BP decodes? The same channel words through eccflow's BP in float32 and
in float64: FER of each, frames whose decisions differ, frames that fail in one precision only.

    .venv/bin/python benchmarks/bp_float64.py [--frames 20000] [--out benchmarks/results/bp_float64.md]

Context: in saturation, phi(x) = -ln tanh(x / 2) near 0 amplifies float32 rounding, so posteriors of deep
sum-product drift between runtimes and precisions (benchmarks/results/export.md). This measures what that
drift does to the decisions. No early stop: every word runs all iterations in both precisions.
"""
from __future__ import annotations

import argparse
import datetime
import platform
import sys
from pathlib import Path

import torch

from eccflow.channels.words import bpsk_awgn_channel, draw_words
from eccflow.codes import get_code
from eccflow.decoders.message_passing import BeliefPropagationDecoder

POINTS = [("LDPC_n121_k60", 50, 3.0), ("BCH_n63_k45", 50, 4.0), ("LDPC_n121_k60", 5, 3.0)]


def row(code_name: str, iterations: int, ebn0_db: float, frames: int, seed: int) -> str:
    code = get_code(code_name)
    generator = torch.Generator().manual_seed(seed)
    words = draw_words(code, frames, "random", generator, torch.as_tensor(code.G.astype("float32")))
    llr = bpsk_awgn_channel(words, ebn0_db, code.rate, generator).float()
    decoder = BeliefPropagationDecoder(code, iterations=iterations, early_stop=False)
    with torch.no_grad():
        single = decoder(llr).bits
        double = decoder.double()(llr.double()).bits.float()
    fail32, fail64 = (single != words).any(1), (double != words).any(1)
    return (f"| {code.name} | {iterations} | {ebn0_db:g} | {frames} | {fail32.float().mean():.5f} | "
            f"{fail64.float().mean():.5f} | {int((single != double).any(1).sum())} | {int((fail32 & ~fail64).sum())} | "
            f"{int((fail64 & ~fail32).sum())} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", default="benchmarks/results/bp_float64.md")
    args = parser.parse_args()
    torch.set_num_threads(1)
    lines = ["# Sum-product BP in float32 and float64 on the same words", "",
             f"- Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; "
             f"{platform.processor() or platform.machine()}, torch {torch.__version__}",
             f"- Command: `.venv/bin/python {' '.join(sys.argv)}`; random codewords, BPSK-AWGN, seed {args.seed}", "",
             "| code | iterations | Eb/N0 | frames | FER float32 | FER float64 | frames decided differently | "
             "fail in float32 only | fail in float64 only |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for point in POINTS:
        lines.append(row(*point, args.frames, args.seed))
        print(lines[-1], flush=True)
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
