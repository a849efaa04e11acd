"""Error propagation of WD, NWD and the adaptive NWD on long runs (the NWD paper's error-propagation study).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/nwd_ep.py --nwd NWD.ckpt --ep EP.ckpt \
        [--code scldpc_dv3_dc6_w3_L20_M50] [--ebn0 4.5] [--frame-errors 1000] [--decoders NAME ...] --out FILE.md

``--nwd`` / ``--ep``: the checkpoints of the pipeline's ``nwd`` and ``ep_train`` stages. Every decoder sees
the same channel words (same seed), so the EP probabilities P(window t fails | window t - 1 failed) are
compared on paired data; Wilson 95% intervals.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from eccflow.codes import get_code
from eccflow.config import compose
from eccflow.decoders.window import ChainDecoder, WindowDecoder
from eccflow.eval.chain import evaluate_chain
from eccflow.eval.report import write_markdown_report
from eccflow.lit import load_decoder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--code", default="scldpc_dv3_dc6_w3_L20_M50")
    parser.add_argument("--nwd", type=Path, required=True)
    parser.add_argument("--ep", type=Path, required=True)
    parser.add_argument("--ebn0", type=float, nargs="+", default=[4.5])
    parser.add_argument("--frame-errors", type=int, default=1000)
    parser.add_argument("--max-frames", type=int, default=400_000)
    parser.add_argument("--decoders", nargs="+", default=None, help="a subset of the decoder names below")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    code = get_code(args.code)
    d = compose(code.name, "nwd", "quick")["decoder"]
    wd = WindowDecoder(code, d["window"], d["target"], d["iterations"], neural=False, normalization=float(d["wd_normalization"]))
    decoders = {"WD": ChainDecoder(wd), "NWD (target)": ChainDecoder(load_decoder(args.nwd)),
                "adaptive NWD (ucn)": ChainDecoder(load_decoder(args.nwd), load_decoder(args.ep), "ucn"),
                "adaptive NWD (genie)": ChainDecoder(load_decoder(args.nwd), load_decoder(args.ep), "genie")}
    rows = []
    for name, chain in decoders.items():
        if args.decoders and name not in args.decoders:
            continue
        for p in evaluate_chain(chain, args.ebn0, min_frame_errors=args.frame_errors, max_frames=args.max_frames,
                                batch_size=2000):
            rows.append(f"| {name} | {p.ebn0_db:g} | {p.ep_probability:.3f} [{p.ep_ci95[0]:.3f}, {p.ep_ci95[1]:.3f}] | "
                        f"{p.ep_events} / {p.ep_trials} | {p.fer:.3e} | {p.ber:.2e} | {p.switched:.2e} | {p.frames} |")
            print(rows[-1], flush=True)
    command = (f"OMP_NUM_THREADS=1 .venv/bin/python benchmarks/nwd_ep.py --nwd {args.nwd} --ep {args.ep} "
               f"--ebn0 {' '.join(f'{e:g}' for e in args.ebn0)} --frame-errors {args.frame_errors} --out {args.out}")
    write_markdown_report(args.out, f"Error propagation on {code.name} (W = {d['window']}, p = {d['target']}, "
                          f"I = {d['iterations']})", command,
                          ["decoder", "Eb/N0 (dB)", "EP probability [95% CI]", "events / trials", "chain FER", "BER",
                           "windows switched", "frames"], rows)


if __name__ == "__main__":
    main()
