"""Ternary AAP model against its full-precision parent and the classical baselines, all on the same frames.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/aecct_qat_paired.py --code BCH_n31_k16 \
        --parent mlruns/cache/train-KEY/model.ckpt --qat mlruns/cache/qat-KEY/model.ckpt \
        [--ebn0 4 5 6] [--frames 100000] --out FILE.md

The Monte-Carlo engine decodes one stream of random codewords and channel noise per Eb/N0 with the parent, the
ternary model, hard decision, BP-5, BP-50 and OSD-2 (``budget`` rule: a fixed number of frames). Gap =
-ln BER(ternary) - (-ln BER(parent)) with its paired 95% interval (delta method on the frame-level covariance);
every model against every baseline likewise, with the FER difference (Newcombe's paired score interval).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from eccflow.codes import get_code
from eccflow.config import read_group
from eccflow.eval import evaluate_paired, json_safe, markdown_table, paired_table
from eccflow.eval.baselines import parse_baseline
from eccflow.lit import load_decoder

BASELINES = ("hard", "bp:5", "bp:50", "osd:2")


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
    decoders = {"parent": load_decoder(args.parent).eval(), "ternary": load_decoder(args.qat).eval()}
    for spec in BASELINES:
        baseline = parse_baseline(spec)
        if baseline.too_long(code, int(read_group("stages", "evaluate")["osd_max_k"])) is None:
            decoders[baseline.label] = baseline.build(code)
    baselines = [name for name in decoders if name not in ("parent", "ternary")]
    pairs = [("ternary", "parent")] + [(m, b) for m in ("parent", "ternary") for b in baselines]
    evaluation = evaluate_paired(decoders, code, args.ebn0, pairs=pairs, rule="budget", max_frames=args.frames,
                                 batch_size=args.batch_size, seed=args.seed, progress=False)
    command = (f"OMP_NUM_THREADS=1 .venv/bin/python benchmarks/aecct_qat_paired.py --code {args.code} "
               f"--parent {args.parent} --qat {args.qat} --ebn0 {' '.join(f'{e:g}' for e in args.ebn0)} "
               f"--frames {args.frames} --seed {args.seed} --out {args.out}")
    text = [f"# Ternary AAP vs full-precision parent on {code.name}, same frames", "", f"Command: `{command}`", ""]
    text += [markdown_table(points, title=name) for name, points in evaluation.curves.items()]
    text.append(paired_table(evaluation.paired, title="Paired differences (positive: the first decoder is better)"))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(text))
    args.out.with_suffix(".json").write_text(json.dumps(json_safe(evaluation.to_dict()), indent=2))
    print("\n".join(text))


if __name__ == "__main__":
    main()
