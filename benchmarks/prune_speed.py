"""Does a Fisher-pruned backbone decode faster on the CPU? Pruned vs unpruned FECCT, measured side by side.

    .venv/bin/python benchmarks/prune_speed.py [--checkpoint PRETRAINED.ckpt] [--threads 1] \
        [--out benchmarks/results/prune_speed.md]

For each code: the backbone (the given pretrained FECCT, else a fresh one of each preset), a Fisher mask
at ``--flops-reduction`` derived on the code's calibration stream, physical removal of the pruned
heads and channels, then inference time of both models on the same LLR batch (median of repeats,
alternating the two so that machine drift hits both). Reports FLOPs per frame (torch's counter),
parameters and the unpruned / pruned time ratio.
"""
from __future__ import annotations

import argparse
import copy
import datetime
import platform
import time
from pathlib import Path

import torch

from eccflow.eval.timing import alternating_medians
from eccflow.codes import get_code
from eccflow.compress.fisher import apply_mask, derive_mask
from eccflow.config import decoder_preset
from eccflow.decoders.flops import flops_per_frame
from eccflow.decoders.transformer import TransformerDecoder
from eccflow.lit import load_decoder

PRESETS = {f"FECCT N={p['layers']} d={p['d_model']}": p for p in (decoder_preset("fecct", size) for size in ("small", "paper"))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=None, help="pretrained FECCT (else fresh presets)")
    parser.add_argument("--codes", nargs="+", default=["BCH_n63_k45", "POLAR_n64_k48", "LDPC_n121_k60"])
    parser.add_argument("--flops-reduction", type=float, default=0.4)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="benchmarks/results/prune_speed.md")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    lines = ["# Pruned vs unpruned backbone: CPU inference", "",
             f"- Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; {platform.processor() or platform.machine()}, "
             f"torch {torch.__version__}, {args.threads} thread(s); batch {args.batch}; median of {args.repeats} alternating repeats",
             f"- Command: `.venv/bin/python benchmarks/prune_speed.py{f' --checkpoint {args.checkpoint}' if args.checkpoint else ''} "
             f"--threads {args.threads} --flops-reduction {args.flops_reduction}`", "",
             "| backbone | code | FLOPs/frame full | pruned | FLOPs kept | params full | pruned | ms full | ms pruned | speed-up |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    models = {"pretrained " + Path(args.checkpoint).name: None} if args.checkpoint else PRESETS
    for label, preset in models.items():
        for name in args.codes:
            code = get_code(name)
            full = (load_decoder(args.checkpoint, code=code) if preset is None else TransformerDecoder(code, preset)).eval()
            mask = derive_mask(full, [4.0, 5.0, 6.0], 256, 256, seed=7919, flops_keep=1.0 - args.flops_reduction)
            pruned = apply_mask(copy.deepcopy(full), mask).eval()
            llr = 2.0 + 2.0 * torch.randn(args.batch, code.n)
            with torch.inference_mode():
                t_full, t_pruned = alternating_medians([lambda: full(llr), lambda: pruned(llr)], args.repeats)
            f_full, f_pruned = flops_per_frame(full, code.n), flops_per_frame(pruned, code.n)
            p_full, p_pruned = (sum(p.numel() for p in m.parameters()) for m in (full, pruned))
            lines.append(f"| {label} | {code.name} | {f_full / 1e6:.2f} M | {f_pruned / 1e6:.2f} M | {f_pruned / f_full:.3f} | "
                         f"{p_full:,} | {p_pruned:,} | {1e3 * t_full:.1f} | {1e3 * t_pruned:.1f} | {t_full / t_pruned:.2f}x |")
            print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
