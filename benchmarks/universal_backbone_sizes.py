"""Backbone size of the shipped universal FECCT, by measurement: each size pretrains on the ``universal``
pipeline's mixture for the same CPU time, validated zero-shot on its held-out codes as it goes.

    python benchmarks/universal_backbone_sizes.py train --size 2x32 --budget-s 900 --out DIR   # one size per process
    python benchmarks/universal_backbone_sizes.py report --out DIR                              # curves, table, MLflow

``train`` writes ``size_<N>x<d>.json`` (steps/s, parameters, the learning curve: per validation the training words,
CPU seconds, per-code BER and BP-5 BER, -ln(BER) per held-out code and Eb/N0). ``report`` recomputes both NVEs and
draws held-out NVE against words and against CPU seconds (PNG), tabulates the last point per size (markdown) and
logs both to MLflow (experiment ``eccflow-universal``).
"""
from __future__ import annotations

import argparse
import datetime
import json
import math
import platform
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from transformer_training import finish_panels, learning_curve  # noqa: E402
from universal_pretrain import with_nve  # noqa: E402

from eccflow.codes import get_code  # noqa: E402
from eccflow.config import compose  # noqa: E402
from eccflow.errors import ConfigError  # noqa: E402
from eccflow.lit.families import build_network  # noqa: E402
from eccflow.train import fit  # noqa: E402

ANCHOR = "BCH_n31_k16"  # pretraining does not depend on CODE; compose needs one


def size_overrides(size: str) -> list[str]:
    try:
        layers, width = (int(v) for v in size.lower().split("x"))
    except ValueError:
        raise ConfigError(f"--size must be <layers>x<d_model>, e.g. 2x32, got {size!r}") from None
    return [f"decoder.layers={layers}", f"decoder.d_model={width}"]


def train(args: argparse.Namespace) -> None:
    torch.set_num_threads(1)
    overrides = size_overrides(args.size) + [f"data.val_frames={args.val_frames}", *args.set]
    config = compose(ANCHOR, "universal", args.profile, overrides)
    code = get_code(ANCHOR)
    probe = json.loads(json.dumps(config))
    probe["trainer"]["max_epochs"], probe["stages"]["pretrain"]["max_epochs"] = 1, 1
    probe["data"]["batches_per_epoch"], probe["data"]["val_frames"] = args.calibration_batches, 20
    probe["stages"]["pretrain"]["heldout"] = []
    with tempfile.TemporaryDirectory() as tmp:
        _, metrics = fit(code, probe, Path(tmp), progress=False, stage="pretrain")
    rate = args.calibration_batches / metrics["train_seconds"]
    per_point = max(1, int(args.budget_s * rate / args.points))
    config["data"]["batches_per_epoch"] = per_point
    config["trainer"]["max_epochs"] = config["stages"]["pretrain"]["max_epochs"] = args.points
    from lightning.pytorch.loggers import CSVLogger

    with tempfile.TemporaryDirectory() as tmp:
        logger = CSVLogger(tmp, name="curve", version=0)
        _, train_metrics = fit(code, config, Path(tmp), logger=logger, progress=False, stage="pretrain")
        curve = learning_curve(Path(logger.log_dir) / "metrics.csv")
    batch = int(config["data"]["batch_size"])
    seconds_per_step = train_metrics["train_seconds"] / (per_point * args.points)
    for row in curve:
        row["words"] = (row["step"] + 1) * batch
        row["train_seconds"] = (row["step"] + 1) * seconds_per_step
    parameters = sum(p.numel() for p in build_network(code, config["decoder"]).parameters())
    record = {"size": args.size, "layers": config["decoder"]["layers"], "d_model": config["decoder"]["d_model"],
              "parameters": parameters, "calibrated_steps_s": rate, "steps": per_point * args.points,
              "train_seconds": train_metrics["train_seconds"], "budget_s": args.budget_s, "batch": batch,
              "val_frames": args.val_frames, "codes": config["stages"]["pretrain"]["codes"],
              "heldout": config["stages"]["pretrain"]["heldout"], "curve": curve,
              "date": datetime.date.today().isoformat(), "machine": platform.machine(), "torch": torch.__version__,
              "command": "python " + " ".join(sys.argv)}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"size_{args.size}.json").write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps({k: v for k, v in record.items() if k not in ("curve", "codes", "heldout")}))


def heldout_mean(row: dict, heldout: list[str], ebn0_key: str) -> float:
    """Mean -ln(BER) over the held-out codes at one Eb/N0 (NaN if a code is missing)."""
    values = [row.get(f"val/neg_ln_ber_{get_code(c).name}_{ebn0_key}", math.nan) for c in heldout]
    return sum(values) / len(values)


def markdown(records: list[dict]) -> str:
    lines = ["# Universal FECCT backbone sizes at equal CPU time", "",
             f"Commands: {'; '.join(sorted({r['command'] for r in records}))}", "",
             "Mixture and held-out codes: the `universal` pipeline (`eccflow/conf/pipelines/universal.yaml`). NVE: mean over "
             "(code, Eb/N0) of BER(model) / BER(BP-5) on the fixed validation streams; below 1 beats BP-5.", "",
             "| size | parameters | steps/s | steps | words | mixture NVE | held-out NVE | held-out mean -ln(BER) 4 / 5 / 6 dB |",
             "|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in records:
        last = r["curve"][-1]
        means = " / ".join(f"{heldout_mean(last, r['heldout'], k):.2f}" for k in ("4dB", "5dB", "6dB"))
        lines.append(f"| N={r['layers']} d={r['d_model']} | {r['parameters']:,} | {r['steps'] / r['train_seconds']:.2f} | "
                     f"{r['steps']:,} | {last['words']:,} | {last['nve_mixture']:.3f} | "
                     f"{last['nve_heldout']:.3f} | {means} |")
    return "\n".join(lines) + "\n"


def plot(records: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    for r in records:
        label = f"N={r['layers']} d={r['d_model']}"
        rows = [row for row in r["curve"] if math.isfinite(row["nve_heldout"])]
        axes[0].plot([row["words"] for row in rows], [row["nve_heldout"] for row in rows], marker="o", ms=3, label=label)
        axes[1].plot([row["train_seconds"] / 60 for row in rows], [row["nve_heldout"] for row in rows], marker="o",
                     ms=3, label=label)
        axes[2].plot([row["words"] for row in rows], [row["nve_mixture"] for row in rows], marker="o", ms=3, label=label)
    for ax in axes:
        ax.axhline(1.0, color="grey", lw=0.8, ls="--")
    finish_panels(fig, list(axes), path, "NVE against BP-5 (lower is better)",
                  ["held-out codes, zero-shot", "held-out codes, zero-shot", "mixture codes"],
                  ["training words", "training CPU minutes (one thread)", "training words"])


def report(args: argparse.Namespace) -> None:
    import mlflow

    from eccflow.track import configure_mlflow, get_or_create_experiment

    records = sorted((json.loads(p.read_text()) for p in args.out.glob("size_*.json")), key=lambda r: r["parameters"])
    if not records:
        raise ConfigError(f"no size_*.json in {args.out}: run the train command first")
    for r in records:  # NVE from the per-code BERs, each code in its own list by its registered name
        mixture, heldout = ([get_code(c).name for c in r[k]] for k in ("codes", "heldout"))
        r["curve"] = [with_nve(row, mixture, heldout) for row in r["curve"]]
    stem = args.out / "sizes"
    stem.with_suffix(".md").write_text(markdown(records))
    plot(records, stem.with_suffix(".png"))
    configure_mlflow(None)
    with mlflow.start_run(experiment_id=get_or_create_experiment("eccflow-universal"), run_name="backbone sizes"):
        for suffix in (".md", ".png"):
            mlflow.log_artifact(str(stem.with_suffix(suffix)))
        for path in args.out.glob("size_*.json"):
            mlflow.log_artifact(str(path))
    print(stem.with_suffix(".md").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("train", help="pretrain one size for --budget-s CPU seconds")
    run.add_argument("--size", required=True, help="<layers>x<d_model>, e.g. 2x32")
    run.add_argument("--budget-s", type=float, required=True)
    run.add_argument("--points", type=int, default=8, help="validations along the run")
    run.add_argument("--val-frames", type=int, default=500, help="frames per (code, Eb/N0) validation stream")
    run.add_argument("--calibration-batches", type=int, default=40)
    run.add_argument("--profile", default="quick")
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    run.add_argument("--out", type=Path, required=True)
    rep = sub.add_parser("report", help="table, figure and MLflow run from the sizes trained")
    rep.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    try:
        train(args) if args.command == "train" else report(args)
    except ConfigError as error:
        sys.exit(f"error: {error}")


if __name__ == "__main__":
    main()
