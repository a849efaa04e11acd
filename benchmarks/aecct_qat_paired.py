"""Ternary AAP model against its full-precision parent on the same frames (issue 5, acceptance 4).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/aecct_qat_paired.py --code BCH_n31_k16 \
        --parent mlruns/cache/train-KEY/model.ckpt --qat mlruns/cache/qat-KEY/model.ckpt \
        [--ebn0 4 5 6] [--frames 100000] --out FILE.md

Both models decode the same random codewords and channel noise (one generator per Eb/N0, as the Monte-Carlo
engine seeds it), a fixed number of frames each. Gap = -ln BER(ternary) - (-ln BER(parent)) = ln(BER_fp /
BER_q); its 95% interval comes from a paired Poisson bootstrap over frames (both models' bit errors of a
frame are resampled together), so the common channel noise cancels. Wilson intervals for each model alone.
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import torch

from eccflow.codes import get_code
from eccflow.data.awgn import draw_words
from eccflow.eval.metrics import wilson_interval
from eccflow.eval.montecarlo import bpsk_awgn_channel
from eccflow.eval.report import write_markdown_report
from eccflow.lit import load_decoder


def paired_bit_errors(models: list, code, ebn0_db: float, frames: int, batch_size: int, seed: int) -> np.ndarray:
    """Bit errors per frame (models, frames) on one shared stream of random codewords at ``ebn0_db``."""
    generator = torch.Generator().manual_seed(seed)
    G = torch.as_tensor(code.G.copy(), dtype=torch.float32)
    errors = []
    with torch.no_grad():
        for start in range(0, frames, batch_size):
            count = min(batch_size, frames - start)
            bits = draw_words(code, count, "random", generator, G)
            llr = bpsk_awgn_channel(bits, ebn0_db, code.rate, generator)
            errors.append(np.stack([(m(llr).bits.to(bits.dtype) != bits).sum(1).numpy() for m in models]))
    return np.concatenate(errors, axis=1)


def bootstrap_gap(errors: np.ndarray, resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% interval of ln(sum e_fp / sum e_q) under a paired Poisson(1) bootstrap over frames."""
    rng = np.random.default_rng(seed)
    gaps = np.empty(resamples)
    for r in range(resamples):
        weight = rng.poisson(1.0, errors.shape[1])
        fp, q = (errors * weight).sum(axis=1)
        gaps[r] = math.log(max(fp, 1) / max(q, 1))
    return float(np.quantile(gaps, 0.025)), float(np.quantile(gaps, 0.975))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--code", required=True)
    parser.add_argument("--parent", type=Path, required=True)
    parser.add_argument("--qat", type=Path, required=True)
    parser.add_argument("--ebn0", type=float, nargs="+", default=[4.0, 5.0, 6.0])
    parser.add_argument("--frames", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    code = get_code(args.code)
    models = [load_decoder(args.parent).eval(), load_decoder(args.qat).eval()]
    rows = []
    for index, ebn0 in enumerate(args.ebn0):
        errors = paired_bit_errors(models, code, ebn0, args.frames, args.batch_size, args.seed * 1_000_003 + index)
        bits = args.frames * code.n
        cells = []
        for e in errors.sum(axis=1):
            low, high = wilson_interval(int(e), bits)
            cells.append(f"{-math.log(e / bits):.2f} [{-math.log(high):.2f}, {-math.log(low):.2f}]")
        gap = math.log(errors[0].sum() / errors[1].sum())
        low, high = bootstrap_gap(errors)
        rows.append(f"| {ebn0:g} | {args.frames} | {cells[0]} | {cells[1]} | {gap:+.3f} [{low:+.3f}, {high:+.3f}] |")
        print(rows[-1], flush=True)
    command = (f"OMP_NUM_THREADS=1 .venv/bin/python benchmarks/aecct_qat_paired.py --code {args.code} "
               f"--parent {args.parent} --qat {args.qat} --ebn0 {' '.join(f'{e:g}' for e in args.ebn0)} "
               f"--frames {args.frames} --seed {args.seed} --out {args.out}")
    write_markdown_report(args.out, f"Ternary AAP vs full-precision parent on {code.name}, paired frames", command,
                          ["Eb/N0 (dB)", "frames", "parent -ln BER [95% CI]", "ternary -ln BER [95% CI]",
                           "gap [paired bootstrap 95% CI]"], rows)


if __name__ == "__main__":
    main()
