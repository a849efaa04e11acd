"""Transformer decoder costs: mask sparsity, FLOPs per frame, dense vs sparse attention, throughput.

    .venv/bin/python benchmarks/transformer_costs.py [--quick] [--out benchmarks/results/transformer_costs.md]

1. For every shared code: tokens N = n + m, fraction of query-key products the ECCT mask (Tanner
   distance <= 2) and AECCT's head-partitioned attention (half the heads on each ring) avoid
   (AECCT Fig. 5 analogue); FLOPs per decoded frame of FECCT N=6, d=128 from torch's FLOP counter
   (dense attention, i.e. what a masked dense implementation pays; SAP Table 1 "Full" analogue),
   and its parameter count (the same for every code).
2. Dense masked vs sparse (edge-list) attention: forward time of one ECCT block per code size,
   which sets ``SPARSE_MIN_TOKENS`` for ``impl: auto``.
3. Inference throughput (frames/s) of ECCT N=2/d=32 and N=6/d=128 on BCH(63,45) and LDPC(121,60),
   dense vs sparse, measured side by side (median of repeats, ``torch.inference_mode``).
"""
from __future__ import annotations

import argparse
import datetime
import platform
from pathlib import Path

import torch

from eccflow.codes import get_code
from eccflow.eval.timing import alternating_medians
from eccflow.codes.registry import shared_code_files
from eccflow.config import decoder_preset
from eccflow.decoders.flops import flops_per_frame
from eccflow.decoders.transformer import TransformerDecoder

FECCT_PAPER = decoder_preset("fecct", "paper")
ECCT_SMALL = decoder_preset("ecct", "small")
ECCT_PAPER = decoder_preset("ecct", "paper")



def sparsity_table(names: list[str]) -> list[str]:
    lines = ["## 1. Mask sparsity and FLOPs per frame (FECCT N=6, d=128)", "",
             "| code | n | m | tokens N | ECCT mask: products avoided | HPSA: products avoided | FECCT FLOPs/frame (dense) | FECCT params |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name in names:
        code = get_code(name)
        model = TransformerDecoder(code, FECCT_PAPER).eval()
        distance = model.graph.distance
        tokens = distance.shape[0]
        ecct = model.graph.kept_fraction  # max_distance 2: the ECCT mask
        first = float(((distance == 0) | (distance == 1)).float().mean())
        second = float(((distance == 0) | (distance == 2)).float().mean())
        hpsa = (first + second) / 2  # half the heads on each ring
        flops = flops_per_frame(model, code.n)
        params = sum(p.numel() for p in model.parameters())
        lines.append(f"| {code.name} | {code.n} | {code.num_checks} | {tokens} | {1 - ecct:.1%} | {1 - hpsa:.1%} | "
                     f"{flops / 1e6:,.1f} M | {params:,} |")
    return lines


def impl_table(names: list[str], max_batch: int, repeats: int) -> list[str]:
    lines = ["## 2. Dense masked vs sparse attention (one ECCT block, d=32, 8 heads, forward)", "",
             f"batch: {max_batch}, fewer for long codes so that the dense score tensor stays under 256 MB; "
             f"median of {repeats}; times per frame; ratio > 1 means sparse is faster.", "",
             "| code | tokens N | kept pairs | batch | dense us/frame | sparse us/frame | dense/sparse |", "|---|---:|---:|---:|---:|---:|---:|"]
    for name in names:
        code = get_code(name)
        model = TransformerDecoder(code, {**ECCT_SMALL, "layers": 1}).eval()
        tokens = code.n + code.num_checks
        batch = max(4, min(max_batch, int(64e6 // (8 * tokens * tokens))))
        llr = 2 * torch.randn(batch, code.n)
        with torch.inference_mode():
            x = model.embed(llr, model.graph)
            block, distance = model.blocks[0], model.graph.distance
            dense, sparse = alternating_medians([lambda: block(x, distance, "dense"),
                                                 lambda: block(x, distance, "sparse")], repeats)
        kept = model.graph.kept_fraction
        lines.append(f"| {code.name} | {distance.shape[0]} | {kept:.1%} | {batch} | {1e6 * dense / batch:.1f} | "
                     f"{1e6 * sparse / batch:.1f} | {dense / sparse:.2f} |")
    return lines


def throughput_table(batch: int, repeats: int) -> list[str]:
    lines = ["## 3. Inference throughput (frames/s)", "", f"batch {batch}; median of {repeats}.", "",
             "| code | model | dense frames/s | sparse frames/s | sparse/dense |", "|---|---|---:|---:|---:|"]
    for name in ("BCH_n63_k45", "LDPC_n121_k60"):
        code = get_code(name)
        llr = 2 * torch.randn(batch, code.n)
        for label, arch in (("ECCT N=2 d=32", ECCT_SMALL), ("ECCT N=6 d=128", ECCT_PAPER)):
            fps = {}
            for impl in ("dense", "sparse"):
                model = TransformerDecoder(code, {**arch, "impl": impl}).eval()
                with torch.inference_mode():
                    fps[impl] = batch / alternating_medians([lambda: model(llr)], repeats)[0]
            lines.append(f"| {code.name} | {label} | {fps['dense']:,.0f} | {fps['sparse']:,.0f} | {fps['sparse'] / fps['dense']:.2f} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results/transformer_costs.md")
    parser.add_argument("--quick", action="store_true", help="a few codes, small batches")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    shared = sorted(shared_code_files(), key=str.lower)
    impl_codes = ["BCH_n31_k16", "BCH_n63_k45", "LDPC_n121_k60", "BCH_n255_k207", "POLAR_n512_k256", "LDPC_n648_k486",
                  "nr5g_bg2_z20", "POLAR_n1024_k512"]
    batch, repeats = (32, 2) if args.quick else (256, 5)
    if args.quick:
        shared, impl_codes = shared[:4], impl_codes[:3]
    started = datetime.datetime.now(datetime.timezone.utc)
    lines = ["# Transformer decoder costs", "",
             f"- Date: {started:%Y-%m-%d %H:%M} UTC; {platform.processor() or platform.machine()}, torch {torch.__version__}, "
             f"{args.threads} threads",
             f"- Command: `.venv/bin/python benchmarks/transformer_costs.py{' --quick' if args.quick else ''} --threads {args.threads}`", ""]
    lines += sparsity_table(shared) + [""]
    lines += impl_table(impl_codes, batch if not args.quick else 8, repeats) + [""]
    lines += throughput_table(batch, repeats) + [""]
    text = "\n".join(lines)
    print(text)
    Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
