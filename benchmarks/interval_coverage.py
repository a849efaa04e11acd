"""Coverage of the BER interval over independent runs of the command a new user would type.

Runs ``eccflow eval --code C --decoder bp --iters 5 --ebn0 E --max-frames 5000 --batch-size 5000 --seed S`` for
S = 1001..1040, pools the BER over all runs' frames (the best estimate of the true BER) and counts how many of
the runs' 95% intervals contain it: the frame-clustered interval eccflow reports, and the binomial interval over
n x frames bits that it reported before (bits as independent trials), from the same counts.

    python benchmarks/interval_coverage.py --out benchmarks/results/interval_coverage
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from eccflow.cli import main
from eccflow.eval.intervals import wilson_interval
from eccflow.eval.report import write_markdown_report


def run(code: str, ebn0: float, seeds: list[int]) -> dict:
    points = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in seeds:
            path = Path(tmp) / f"{seed}.json"
            argv = ["eval", "--code", code, "--decoder", "bp", "--iters", "5", "--ebn0", f"{ebn0:g}", "--max-frames",
                    "5000", "--batch-size", "5000", "--seed", str(seed), "--json", str(path), "--plot",
                    str(Path(tmp) / f"{seed}.png"), "--quiet"]
            assert main(argv) == 0
            points.append(json.loads(path.read_text())["decoders"]["bp L=5"][0])
    bits = sum(p["frames"] * p["bits_per_frame"] for p in points)
    pooled = sum(p["bit_errors"] for p in points) / bits
    new = sum(p["ber_ci95"][0] <= pooled <= p["ber_ci95"][1] for p in points)
    old = sum(lo <= pooled <= hi for lo, hi in (wilson_interval(p["bit_errors"], p["frames"] * p["bits_per_frame"])
                                                 for p in points))
    return {"code": code, "ebn0_db": ebn0, "runs": len(points), "frames": sum(p["frames"] for p in points),
            "pooled_ber": pooled, "covered_clustered": new, "covered_bits_as_trials": old,
            "median_frame_errors": sorted(p["frame_errors"] for p in points)[len(points) // 2]}


def main_cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=["BCH_n63_k45:4", "BCH_n63_k45:5", "POLAR_n64_k32:4"],
                        help="CODE:EBN0 pairs")
    parser.add_argument("--out", default="benchmarks/results/interval_coverage")
    args = parser.parse_args()
    seeds = list(range(1001, 1041))
    rows, results = [], []
    for case in args.cases:
        code, ebn0 = case.split(":")
        r = run(code, float(ebn0), seeds)
        results.append(r)
        rows.append(f"| {code} | {r['ebn0_db']:g} | {r['runs']} | {r['frames']} | {r['pooled_ber']:.4e} | "
                    f"{r['median_frame_errors']} | {r['covered_clustered']} / {r['runs']} | "
                    f"{r['covered_bits_as_trials']} / {r['runs']} |")
        print(rows[-1], flush=True)
    out = Path(args.out)
    write_markdown_report(out / "coverage.md", "BER interval coverage over 40 independent runs (seeds 1001-1040)",
                          "python benchmarks/interval_coverage.py --out " + args.out,
                          ["code", "Eb/N0 (dB)", "runs", "pooled frames", "pooled BER", "median frame errors per run",
                           "covered: frame-clustered (now)", "covered: bits as trials (before)"], rows)
    (out / "coverage.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main_cli()
