"""Time-budgeted training of one transformer decoder, then Monte-Carlo -ln(BER) against BP.

    .venv/bin/python benchmarks/transformer_training.py --code BCH_n31_k16 --pipeline ecct \
        --profile quick --budget-s 1200 --out benchmarks/results/ecct_budget [--set decoder.layers=6 ...]

Composes the pipeline's resolved config (profile + ``--set`` overrides), measures the training step
rate on a short calibration fit, sizes ``max_epochs`` so that the cosine schedule ends inside
``--budget-s`` seconds of training, trains (``eccflow.train.fit``, per-epoch validation logged to
CSV), then the selected checkpoint and every ``--baseline`` (default BP-5 and BP-50) decode the same random
codewords on the Eb/N0 grid under ``--rule`` (``errors``: ``--min-frame-errors`` frame errors; ``paper``: more
than 100 frame errors and at least 1e5 frames, as the ECCT / AECCT test loops; ``strict``; ``budget``), capped at
``--max-frames``; the tables give each decoder's rates, the paired differences and the published row for the
code and model size.
Writes ``<tag>.json`` (config, step rate, learning curve, the tables), ``<tag>.md`` and ``<tag>.png`` (the
validation learning curve against training words, with the evaluated baselines as lines). Runs on the
CPU or, with ``--accelerator gpu``, on a lent GPU (training and evaluation both on the device).
"""
from __future__ import annotations

import argparse
import csv
import datetime
import json
import platform
import shutil
import tempfile
from pathlib import Path

import torch

from eccflow.codes import get_code
from eccflow.config import compose
from eccflow.eval import evaluate_paired, markdown_table
from eccflow.eval.baselines import parse_baseline
from eccflow.eval.published import baseline_method, published_comparison, published_method, published_table
from eccflow.eval.report import paired_table
from eccflow.lit import load_decoder
from eccflow.train import fit


def learning_curve(metrics_csv: Path) -> list[dict[str, float]]:
    """Per-epoch validation rows (epoch, step, every ``val/...`` metric) from Lightning's CSV log."""
    rows: dict[int, dict[str, float]] = {}
    with metrics_csv.open() as handle:
        for row in csv.DictReader(handle):
            values = {k: float(v) for k, v in row.items() if k.startswith("val/") and v != ""}
            if values:
                epoch = int(float(row["epoch"]))
                rows.setdefault(epoch, {"epoch": epoch, "step": int(float(row["step"]))}).update(values)
    return [rows[e] for e in sorted(rows)]


def plot_learning_curve(record: dict, path: Path) -> Path:
    """-ln(BER) on the validation stream at each Eb/N0 against training words, the baselines' evaluated
    -ln(BER) (Monte-Carlo, evaluation words) as horizontal lines."""
    import math

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    batch = int(record["config"]["data"]["batch_size"])
    curve = record["learning_curve"]
    keys = sorted({k[len("val/neg_ln_ber_"):] for row in curve for k in row if k.startswith("val/neg_ln_ber_")},
                  key=lambda k: float(k[:-2]))
    fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 3.6), squeeze=False)
    for ax, key in zip(axes[0], keys):
        rows = [r for r in curve if f"val/neg_ln_ber_{key}" in r]
        ax.plot([(r["step"] + 1) * batch for r in rows], [r[f"val/neg_ln_ber_{key}"] for r in rows], marker="o", ms=3,
                label=record["tag"].split("_cpu")[0])
        for shade, (name, results) in zip(("0.6", "0.3", "0.0", "0.45"), list(record["tables"].items())[1:]):  # baselines
            point = next((p for p in results if f"{p['ebn0_db']:g}dB" == key), None)
            if point is not None and point["ber"] > 0:
                ax.axhline(-math.log(point["ber"]), ls="--", lw=1, color=shade, label=f"{name} (evaluation)")
    finish_panels(fig, list(axes[0]), path, "-ln(BER)", [f"{record['config']['code']}, Eb/N0 {key}" for key in keys])
    return path


def finish_panels(fig, axes: list, path: Path, ylabel: str, titles: list[str], xlabels: list[str] | None = None) -> None:
    """Label the learning-curve panels (training words on x unless ``xlabels`` says otherwise), put the legend in
    the first, write the PNG."""
    import matplotlib.pyplot as plt

    for ax, title, xlabel in zip(axes, titles, xlabels or ["training words seen"] * len(axes)):
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def steps_per_second(code, config: dict, accelerator: str, calibration_batches: int) -> float:
    """Training steps per second of this config, from a one-epoch fit of ``calibration_batches`` steps."""
    probe = json.loads(json.dumps(config))
    probe["trainer"]["max_epochs"] = 1
    probe["data"]["batches_per_epoch"] = calibration_batches
    probe["data"]["val_frames"] = 100
    with tempfile.TemporaryDirectory() as tmp:
        _, metrics = fit(code, probe, Path(tmp), progress=False)
    return calibration_batches / metrics["train_seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--code", required=True)
    parser.add_argument("--pipeline", default="ecct")
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--stage", default="train", help="config block holding the optimiser settings")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    parser.add_argument("--budget-s", type=float, required=True, help="training wall-clock budget (seconds)")
    parser.add_argument("--calibration-batches", type=int, default=200)
    parser.add_argument("--accelerator", default="cpu", choices=["cpu", "gpu"])
    parser.add_argument("--ebn0", type=float, nargs="+", default=[4.0, 5.0, 6.0])
    parser.add_argument("--min-frame-errors", type=int, default=100)
    parser.add_argument("--rule", default="errors", choices=["paper", "strict", "budget", "errors"],
                        help="Monte-Carlo stop rule (errors: --min-frame-errors)")
    parser.add_argument("--baseline", action="append", default=None,
                        help="baseline spec decoded on the same words (hard, bp:L, minsum:L, osd:order); default bp:5 bp:50")
    parser.add_argument("--max-frames", type=int, default=1_000_000)
    parser.add_argument("--eval-batch-size", type=int, default=10_000)
    parser.add_argument("--keep-checkpoint", action="store_true", help="copy model.ckpt next to the results")
    parser.add_argument("--tag", default=None)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    device = "cuda" if args.accelerator == "gpu" else "cpu"
    if device == "cuda":
        torch.set_float32_matmul_precision("high")
    code = get_code(args.code)
    config = compose(code.name, args.pipeline, args.profile, [f"trainer.accelerator={args.accelerator}", *args.set])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    dec = config["decoder"]
    tag = args.tag or f"{args.pipeline}_{code.name}_N{dec['layers']}_d{dec['d_model']}_{args.accelerator}"

    rate = steps_per_second(code, config, args.accelerator, args.calibration_batches)
    batches = int(config["data"]["batches_per_epoch"])
    epochs = max(1, int(args.budget_s * rate * 0.95 / batches))  # 5% for per-epoch validation
    config["trainer"]["max_epochs"] = epochs
    config["stages"][args.stage]["max_epochs"] = epochs
    print(f"{tag}: {rate:.1f} steps/s -> {epochs} epochs x {batches} batches of {config['data']['batch_size']}", flush=True)

    from lightning.pytorch.loggers import CSVLogger

    with tempfile.TemporaryDirectory() as tmp:
        logger = CSVLogger(tmp, name="curve", version=0)
        checkpoint, train_metrics = fit(code, config, Path(tmp), logger=logger, progress=False, stage=args.stage)
        curve = learning_curve(Path(logger.log_dir) / "metrics.csv")
        model = load_decoder(checkpoint).to(device)
        if args.keep_checkpoint:
            shutil.copyfile(checkpoint, out / f"{tag}.ckpt")
    label = f"{dec['family']} N={dec['layers']} d={dec['d_model']}"
    baselines = [parse_baseline(spec) for spec in (args.baseline or ["bp:5", "bp:50"])]
    decoders = {label: model, **{b.label: b.build(code).to(device) for b in baselines}}
    with torch.inference_mode():
        evaluation = evaluate_paired(decoders, code, args.ebn0, pairs=[(label, b.label) for b in baselines],
                                     rule=args.rule, min_frame_errors=args.min_frame_errors, max_frames=args.max_frames,
                                     batch_size=args.eval_batch_size, seed=2024, codewords="random", device=device,
                                     progress=False)
    tables = evaluation.curves
    methods = {label: published_method(dec), **{b.label: baseline_method(b.kind, b.parameter) for b in baselines}}
    published = published_comparison(code.name, methods, tables)
    machine = torch.cuda.get_device_name(0) if device == "cuda" else platform.processor() or platform.machine()
    record = {"tag": tag, "date": datetime.date.today().isoformat(), "machine": machine, "torch": torch.__version__,
              "threads": torch.get_num_threads(), "steps_per_second": rate, "epochs": epochs, "train": train_metrics,
              "config": config, "learning_curve": curve,
              "tables": {name: [r.to_dict() for r in results] for name, results in tables.items()},
              "evaluation": evaluation.to_dict(), "published": published}
    (out / f"{tag}.json").write_text(json.dumps(record, indent=2, default=str))
    lines = [f"# {tag}", "", f"Machine: {machine}, torch {torch.__version__}; {rate:.1f} training steps/s; "
             f"{epochs} epochs x {batches} batches of {config['data']['batch_size']} in {train_metrics['train_seconds']:.0f} s.", ""]
    lines += [markdown_table(results, title=f"{code.name}: {name}") for name, results in tables.items()]
    lines += [paired_table(evaluation.paired, title="Paired differences (same words; positive: the model is better)"),
              "### Published values", "", published_table(published)]
    (out / f"{tag}.md").write_text("\n".join(lines) + "\n")
    plot_learning_curve(record, out / f"{tag}.png")
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    main()
