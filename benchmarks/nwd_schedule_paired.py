"""WD against the NWD under its damping schedule on the same chains (the NWD paper's non-uniform schedule).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/nwd_schedule_paired.py --nwd NWD.ckpt --schedule schedule.json \
        [--skips 0 3 5] [--ebn0 4.0] [--frame-errors 500] --out FILE.md

``--nwd``: the plain target-specific NWD of the ``nwd`` stage; ``--schedule``: the ``schedule`` stage's JSON
(skip order from the damped NWD's schedule importance). Each row decodes the same channel words (same seed),
so the FER differences are paired; "not computed" counts the WD's I x W proto-check updates that the
NWD does not compute: the ones target pruning removes plus the ones the schedule skips. Wilson 95% intervals.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from eccflow.config import compose
from eccflow.decoders.window import ChainDecoder, WindowDecoder
from eccflow.decoders.window_complexity import window_complexity
from eccflow.eval.chain import evaluate_chain
from eccflow.eval.report import write_markdown_report
from eccflow.lit import load_decoder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nwd", type=Path, required=True)
    parser.add_argument("--schedule", type=Path, required=True)
    parser.add_argument("--skips", type=int, nargs="+", default=[0, 3, 5])
    parser.add_argument("--ebn0", type=float, nargs="+", default=[4.0])
    parser.add_argument("--frame-errors", type=int, default=500)
    parser.add_argument("--max-frames", type=int, default=200_000)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    plan = json.loads(args.schedule.read_text())
    net = load_decoder(args.nwd)
    settings = compose(net.code.name, "nwd", "quick")["decoder"]
    wd = WindowDecoder(net.code, net.window, net.target, net.iterations, neural=False,
                       normalization=float(settings["wd_normalization"]))
    total, pruned = plan["total_updates"], plan["pruned_updates"]
    wd_cost = window_complexity(wd)
    rows = []

    def run(name: str, decoder: WindowDecoder, not_computed: int) -> None:
        cost = window_complexity(decoder)
        energy, updates = cost.energy / wd_cost.energy, 1 - cost.check_updates / wd_cost.check_updates
        for p in evaluate_chain(ChainDecoder(decoder), args.ebn0, min_frame_errors=args.frame_errors,
                                max_frames=args.max_frames, batch_size=2000):
            rows.append(f"| {name} | {p.ebn0_db:g} | {not_computed} / {total} ({not_computed / total:.1%}; {updates:.1%} of lifted updates) | "
                        f"{energy:.2f} | {p.fer:.3e} [{p.fer_ci95[0]:.3e}, {p.fer_ci95[1]:.3e}] | "
                        f"{p.frame_errors} / {p.frames} | {p.ber:.2e} |")
            print(rows[-1], flush=True)

    run("WD", wd, 0)
    for skipped in args.skips:
        net.set_skip([tuple(u) for u in plan["order"][:skipped]])
        run(f"NWD (target) + {skipped} skipped by the schedule", net, pruned + skipped)
    command = (f"OMP_NUM_THREADS=1 .venv/bin/python benchmarks/nwd_schedule_paired.py --nwd {args.nwd} "
               f"--schedule {args.schedule} --skips {' '.join(map(str, args.skips))} "
               f"--ebn0 {' '.join(f'{e:g}' for e in args.ebn0)} --frame-errors {args.frame_errors} --out {args.out}")
    write_markdown_report(args.out, f"WD vs NWD under the damping schedule on {net.code.name} (W = {net.window}, "
                          f"p = {net.target}, I = {net.iterations}), paired chains", command,
                          ["decoder", "Eb/N0 (dB)", "CN updates not computed", "energy / WD", "chain FER [95% CI]",
                           "errors / chains", "BER"], rows)


if __name__ == "__main__":
    main()
