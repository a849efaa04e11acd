"""The shipped universal FECCT on codes that never entered its pretraining: zero-shot, and after the quick
profile's fine-tune (at most 5 CPU minutes on one thread), each beside hard decision, BP-5, BP-50 and OSD-2 on
the same words, with the published ECCT N=2 d=32 row where one exists.

    python benchmarks/universal_heldout.py run --out DIR [--code C ...] [--override K=V ...]   # one pipeline per code
    python benchmarks/universal_heldout.py report --out DIR                                   # table, tallies, PNG

``run`` is ``make pipeline CODE=C PIPELINE=fecct`` for each held-out code of the shipped backbone's manifest
(resumable: finished stages are cached), then copies both evaluations' tables to ``DIR/<code>.json`` with the
backbone's checksum and step; a code already measured on the same backbone is skipped. ``report`` writes
``heldout.md`` / ``heldout.png``, counts the points where the paired interval says zero-shot beats BP-5 and where
the fine-tuned model beats BP-50, and logs both files to MLflow (experiment ``eccflow-universal``).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import torch

from eccflow.eval.timing import frames_per_second

from eccflow.codes import get_code
from eccflow.errors import ConfigError, EccflowError
from eccflow.eval.published import published_for
from eccflow.pipelines import run_pipeline
from eccflow.pretrained import load_backbone

EBN0 = (4.0, 5.0, 6.0)
MIN_FRAME_ERRORS = 100
STAGES = {"zero-shot": "evaluate:zeroshot", "fine-tuned": "evaluate"}


def decoding_speed(code_name: str) -> float:
    """Frames/s of the shipped backbone on one CPU thread, on a batch of 500 words."""
    code = get_code(code_name)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return frames_per_second(load_backbone().decoder(code), torch.randn(500, code.n) + 2.0)
    finally:
        torch.set_num_threads(threads)


def run(args: argparse.Namespace) -> None:
    backbone = load_backbone()
    codes = args.code or backbone.manifest["training"]["heldout"]
    args.out.mkdir(parents=True, exist_ok=True)
    for name in codes:
        target = args.out / f"{get_code(name).name}.json"
        if target.is_file() and json.loads(target.read_text())["backbone_sha256"] == backbone.sha256:
            print(f"{name}: measured on this backbone already, skipped")
            continue
        summary = run_pipeline(name, "fecct", "quick", args.override)
        tables = {label: json.loads(Path(summary["stages"][stage]["outputs"]["ber_table"]).read_text())
                  for label, stage in STAGES.items()}
        finetune = summary["stages"]["finetune"]["metrics"]
        record = {"code": get_code(name).name, "n": get_code(name).n, "k": get_code(name).k,
                  "backbone_sha256": backbone.sha256, "backbone_steps": backbone.manifest["training"]["steps"],
                  "overrides": args.override, "finetune": finetune, "tables": tables,
                  "frames_per_s_one_thread": decoding_speed(name),
                  "command": "python " + " ".join(sys.argv)}
        target.write_text(json.dumps(record, indent=2) + "\n")
        print(f"{name}: done")


def point(curve: list[dict], ebn0: float) -> dict | None:
    return next((p for p in curve if math.isclose(p["ebn0_db"], ebn0)), None)


def verdict(table: dict, baseline: str, ebn0: float) -> str | None:
    """The paired BER verdict of the table's model against ``baseline`` at ``ebn0`` (None: not measured)."""
    for d in table["paired"]:
        if d["baseline"] == baseline and math.isclose(d["ebn0_db"], ebn0):
            return d["ber_verdict"]
    return None


def cell(p: dict | None) -> str:
    if p is None:
        return "-"
    flag = "" if p["frame_errors"] >= MIN_FRAME_ERRORS else "*"
    value = "inf" if p["neg_ln_ber"] is None else f"{p['neg_ln_ber']:.2f}"  # no bit error seen
    return f"{value} / {p['fer']:.1e} ({p['frame_errors']}){flag}"


def markdown(records: list[dict]) -> tuple[str, dict]:
    lines = ["# Shipped universal FECCT on held-out codes: zero-shot and after a 5-minute fine-tune", "",
             f"Backbone: `eccflow/pretrained/universal_fecct.ckpt`, {records[0]['backbone_steps']:,} pretraining steps "
             f"(SHA-256 {records[0]['backbone_sha256'][:16]}...). Commands: "
             f"{'; '.join(sorted({r['command'] for r in records}))}; then `python benchmarks/universal_heldout.py report`.", "",
             "Cells: -ln(BER) / FER (frame errors); `*`: fewer than 100 frame errors, not a result. Verdicts: the "
             "paired interval of the -ln(BER) difference on the same words (better / worse / tie).", ""]
    tally = {"zero-shot vs bp L=5": [0, 0], "fine-tuned vs bp L=50": [0, 0]}
    for r in records:
        fine = r["tables"]["fine-tuned"]
        zero = r["tables"]["zero-shot"]
        published = {row.ebn0_db: row.neg_ln_ber for row in published_for(r["code"], "ECCT", layers=2, d_model=32)}
        lines += [f"## {r['code']} (n={r['n']}, k={r['k']}); fine-tune {r['finetune'].get('steps', 0):.0f} steps "
                  f"in {r['finetune']['train_seconds']:.0f} s; {r['frames_per_s_one_thread']:.0f} frames/s on one thread", "",
                  "| decoder | 4 dB | 5 dB | 6 dB |", "|---|---|---|---|"]
        model = zero["model"]
        rows = [("FECCT zero-shot", zero["decoders"][model]), ("FECCT fine-tuned", fine["decoders"][fine["model"]])]
        rows += [(name, fine["decoders"][name]) for name in fine["baselines"]]
        for label, curve in rows:
            lines.append(f"| {label} | " + " | ".join(cell(point(curve, e)) for e in EBN0) + " |")
        lines.append("| ECCT N=2 d=32, published | " + " | ".join(f"{published[e]:.2f}" if e in published else "-"
                                                                 for e in EBN0) + " |")
        for label, table, baseline, key in (("zero-shot", zero, "bp L=5", "zero-shot vs bp L=5"),
                                            ("fine-tuned", fine, "bp L=50", "fine-tuned vs bp L=50")):
            verdicts = [verdict(table, baseline, e) for e in EBN0]
            tally[key][0] += sum(v == "better" for v in verdicts)
            tally[key][1] += sum(v is not None for v in verdicts)
            lines.append(f"| {label} vs {baseline}, paired | " + " | ".join(v or "-" for v in verdicts) + " |")
        lines.append("")
    lines += ["## Goals", ""]
    for key, goal in (("zero-shot vs bp L=5", 0.8), ("fine-tuned vs bp L=50", 0.5)):
        better, total = tally[key]
        share = better / total if total else math.nan
        lines.append(f"- {key}: better at {better} of {total} points ({share:.0%}); goal {goal:.0%}: "
                     f"{'met' if share >= goal else 'not met'}")
    return "\n".join(lines) + "\n", tally


def plot(records: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(records), figsize=(3.2 * len(records), 3.4), squeeze=False)
    for ax, r in zip(axes[0], records):
        fine, zero = r["tables"]["fine-tuned"], r["tables"]["zero-shot"]
        curves = {"FECCT zero-shot": zero["decoders"][zero["model"]], "FECCT fine-tuned": fine["decoders"][fine["model"]],
                  **{name: fine["decoders"][name] for name in fine["baselines"]}}
        for label, curve in curves.items():
            finite = [p for p in curve if p["neg_ln_ber"] is not None]
            ax.plot([p["ebn0_db"] for p in finite], [p["neg_ln_ber"] for p in finite], marker="o", ms=3, label=label)
        ax.set_title(r["code"], fontsize=9)
        ax.set_xlabel("Eb/N0 (dB)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("-ln(BER)")
    axes[0][0].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def report(args: argparse.Namespace) -> None:
    import mlflow

    from eccflow.track import configure_mlflow, get_or_create_experiment

    shipped = load_backbone().sha256
    found = [json.loads(p.read_text()) for p in args.out.glob("*.json")]
    records = sorted((r for r in found if r["backbone_sha256"] == shipped), key=lambda r: (r["n"], r["code"]))
    if not records:
        raise ConfigError(f"no <code>.json in {args.out} measured on the shipped backbone (SHA-256 {shipped[:16]}...): "
                          "run the run command first")
    text, tally = markdown(records)
    stale = sorted(f"{r['code']} (step {r['backbone_steps']:,})" for r in found if r["backbone_sha256"] != shipped)
    if stale:  # measured on an earlier shipped backbone: kept on disk until re-run, never mixed into the table
        text += f"\nNot yet measured on this backbone (their files hold an earlier one): {', '.join(stale)}.\n"
    (args.out / "heldout.md").write_text(text)
    plot(records, args.out / "heldout.png")
    configure_mlflow()
    mlflow.set_experiment(experiment_id=get_or_create_experiment("eccflow-universal"))
    with mlflow.start_run(run_name="held-out table"):
        mlflow.log_metrics({f"better_{k.replace(' ', '_').replace('=', '')}": v[0] / max(v[1], 1) for k, v in tally.items()})
        for name in ("heldout.md", "heldout.png"):
            mlflow.log_artifact(str(args.out / name))
    print(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["run", "report"])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/universal/heldout"))
    parser.add_argument("--code", action="append", help="run: these codes (default: the manifest's held-out list)")
    parser.add_argument("--override", action="append", default=[], help="run: pipeline overrides")
    args = parser.parse_args()
    try:
        run(args) if args.command == "run" else report(args)
    except EccflowError as error:
        sys.exit(f"error: {error}")


if __name__ == "__main__":
    main()
