"""Copy the tables of a finished EW-GNN pipeline into benchmarks/results/<dir>/ and print a -ln(BER) summary.

Re-running the pipeline with the same code, pipeline and profile hits the stage cache (seconds) and returns
every stage's outputs; their ber_table.md / .json / ber_curves.png are copied under a per-stage name.

    .venv/bin/python benchmarks/ewgnn_collect.py --code BCH_n63_k45 --pipeline ewgnn --out benchmarks/results/ewgnn_BCH_n63_k45
"""
from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from eccflow.pipelines import run_pipeline


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--code", required=True)
    parser.add_argument("--pipeline", default="ewgnn")
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    summary = run_pipeline(args.code, args.pipeline, args.profile, log=lambda _: None)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for stage, info in summary["stages"].items():
        if not stage.startswith("evaluate"):
            continue
        if not info.get("cached", False):
            print(f"note: {stage} was not cached (the pipeline ran it now)")
        name = stage.replace(":", "_")
        table = Path(info["outputs"]["ber_table"])
        for source in (table, table.with_name("ber_table.md"), table.with_name("ber_curves.png")):
            shutil.copyfile(source, out / f"{name}_{source.name}")
        for label, points in json.loads(table.read_text()).items():
            cells = " | ".join(f"{p['neg_ln_ber']:.2f} [{p['neg_ln_ber_ci95'][0]:.2f}, {p['neg_ln_ber_ci95'][1]:.2f}] "
                               f"({p['frame_errors']} FE / {p['frames']} fr)" for p in points)
            code = stage.split(":", 1)[1] if ":" in stage else args.code
            rows.append(f"| {code} | {label} | {cells} |")
    train = summary["stages"]["train"]["metrics"]
    print(f"train: {train.get('train_seconds', float('nan')) / 60:.1f} CPU minutes, {train.get('decoder_params'):.0f} parameters, "
          f"best val NVE {train.get('best_val_nve', float('nan')):.3f}")
    header = "| code | decoder | 4 dB | 5 dB | 6 dB |\n|---|---|---|---|---|"
    text = header + "\n" + "\n".join(rows) + "\n"
    (out / "summary.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
