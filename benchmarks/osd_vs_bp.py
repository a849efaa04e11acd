"""OSD (orders 0, 1, 2) vs sum-product BP (L = 5, 50) on BCH(63,45): -ln(BER) at 4 / 5 / 6 dB.

Regenerate with:

    .venv/bin/python benchmarks/osd_vs_bp.py --out benchmarks/results/osd_vs_bp
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from eccflow.codes import get_code
from eccflow.eval.device import device_name
from eccflow.decoders.factory import build_classical_decoder
from eccflow.eval import evaluate, plot_curves

ARMS = [("bp", 5, None), ("bp", 50, None), ("osd", None, 0), ("osd", None, 1), ("osd", None, 2)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--code", default="BCH_n63_k45")
    parser.add_argument("--ebn0", type=float, nargs="*", default=[4.0, 5.0, 6.0])
    parser.add_argument("--min-frame-errors", type=int, default=300)
    parser.add_argument("--max-frames", type=int, default=400_000)
    parser.add_argument("--batch-size", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", default="benchmarks/results/osd_vs_bp")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    code = get_code(args.code)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    curves, rows = {}, []
    for kind, iters, order in ARMS:
        label = f"BP L={iters}" if kind == "bp" else f"OSD order {order}"
        decoder = build_classical_decoder(kind, code, iterations=iters or 5, order=order if order is not None else 2).to(args.device)
        start = time.perf_counter()
        results = evaluate(decoder, code, args.ebn0, min_frame_errors=args.min_frame_errors,
                           max_frames=args.max_frames, batch_size=args.batch_size, seed=args.seed, device=args.device, progress=False)
        curves[label] = results
        for r in results:
            rows.append({"decoder": label, **r.to_dict()})
            print(f"{label:12s} {r.ebn0_db:g} dB  -ln(BER) {r.neg_ln_ber:.2f} [{r.neg_ln_ber_ci95[0]:.2f}, "
                  f"{r.neg_ln_ber_ci95[1]:.2f}]  frames {r.frames}  frame errors {r.frame_errors}  "
                  f"{r.frames / r.seconds:.0f} frames/s", flush=True)
        print(f"{label}: {time.perf_counter() - start:.0f}s", flush=True)
    (out / "osd_vs_bp.json").write_text(json.dumps(rows, indent=2))
    plot_curves(curves, out / "osd_vs_bp.png", title=f"{code.name}: OSD vs BP")
    lines = [
        f"# OSD vs sum-product BP on {code.name} (-ln BER, Wilson 95% intervals)",
        "",
        f"Command: `.venv/bin/python benchmarks/osd_vs_bp.py --code {args.code} --min-frame-errors "
        f"{args.min_frame_errors} --max-frames {args.max_frames} --seed {args.seed} --device {args.device}`  ",
        f"Machine: {device_name(args.device)}, torch {torch.__version__}, "
        f"{time.strftime('%Y-%m-%d')}. Random codewords; frames/s includes channel simulation.",
        "",
        "| decoder | Eb/N0 | -ln(BER) | 95% CI | FER | frames | frame errors | frames/s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['decoder']} | {r['ebn0_db']:g} | {r['neg_ln_ber']:.2f} | [{r['neg_ln_ber_ci95'][0]:.2f}, "
                     f"{r['neg_ln_ber_ci95'][1]:.2f}] | {r['fer']:.2e} | {r['frames']} | {r['frame_errors']} | "
                     f"{r['frames'] / r['seconds']:.0f} |")
    (out / "osd_vs_bp.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
