"""Large-batch recipe: learning-rate studies per batch size, then learning curves at equal training words.

    # 1. an Optuna study of the learning rate and warm-up at each batch size (eccflow's own studies)
    .venv/bin/python benchmarks/batch_size_curves.py studies --code BCH_n31_k16 --batches 128 512 2048 8192 \
        --words 262144 --trials 3 --out benchmarks/results/batch_size
    # 2. learning curves at equal training words with each batch's chosen settings
    .venv/bin/python benchmarks/batch_size_curves.py curves --code BCH_n31_k16 --batches 128 512 2048 8192 \
        --words 524288 --settings benchmarks/results/batch_size/studies --out benchmarks/results/batch_size

Both run ECCT (``--set`` overrides, default N=2 d=32) from the ``ecct`` pipeline's ``quick`` profile with
``data.batch_size`` B, ``--points`` validations spread evenly over ``--words`` training words
(``trainer.max_epochs`` = points, ``data.batches_per_epoch`` = words / (points B)) and the cosine schedule over
exactly those steps. ``studies`` runs one study per batch (objective: the best validation NVE against BP-5 on
the fixed validation stream, never the evaluation words) and writes its report under ``<out>/studies/``.
``curves`` trains each batch with its study's best ``lr`` and ``warmup`` (or ``--lr-at`` / ``--warmup``),
records -ln(BER) at each validation Eb/N0 against words seen, the BP-5 value on the same validation words and
the wall clock, and writes ``curves_<code>.json`` / ``.md`` / ``.png``; every run and the figure go to MLflow.
With ``--from-studies`` the curves are read from the MLflow runs of the studies' best trials instead (training
them again with the same settings and seed would repeat the same run).
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
import yaml

from eccflow.codes import get_code
from eccflow.config import compose
from eccflow.train import fit, optimizer_settings
from transformer_training import finish_panels, learning_curve  # benchmarks/, beside this script

MODEL = ["decoder.size=small"]  # ECCT N=2 d=32 (eccflow/conf/sizes.yaml)


def schedule_overrides(batch: int, words: int, points: int, val_frames: int) -> list[str]:
    """Overrides giving ``points`` validations over ``words`` training words at ``batch``."""
    steps_per_point = words // (points * batch)
    if steps_per_point < 1:
        raise SystemExit(f"--words {words} gives fewer than one step per validation at batch {batch} "
                         f"({points} points); raise --words or lower --points")
    return [f"data.batch_size={batch}", f"data.batches_per_epoch={steps_per_point}", f"trainer.max_epochs={points}",
            f"data.val_frames={val_frames}", "trainer.val_check_interval=null"]


def curve_rows(metrics_csv: Path, batch: int) -> list[dict[str, float]]:
    """The per-epoch validation rows of Lightning's CSV log with the steps done and the words seen (steps x batch)."""
    return [{**row, "step": row["step"] + 1, "words": (row["step"] + 1) * batch} for row in learning_curve(metrics_csv)]


def run_studies(args: argparse.Namespace) -> None:
    """One study per batch B: lr log-uniform over a ``--lr-width``-fold range centred on
    ``--lr-center * (B / 128) ** --lr-power``, warm-up uniform in [0, ``--warmup-high``]; the sampler seed
    differs per batch (``--sampler-seed + B``) so that the batches do not share their draws."""
    from eccflow.track.study import run_study

    for batch in args.batches:
        center = args.lr_center * (batch / 128) ** args.lr_power
        low, high = center / math.sqrt(args.lr_width), center * math.sqrt(args.lr_width)
        space = ("stages.train.search_space={lr: {type: float, low: %.4g, high: %.4g, log: true}, "
                 "warmup: {type: float, low: 0.0, high: %g}}" % (low, high, args.warmup_high))
        overrides = [*MODEL, *args.set, *schedule_overrides(batch, args.words, args.points, args.val_frames), space,
                     "stages.train.study.objectives=[best_val_nve]", "stages.train.study.pruner=none",
                     f"stages.train.study.sampler_seed={args.sampler_seed + batch}"]
        run_study(args.code, "train", trials=args.trials, pipeline="ecct", profile="quick", overrides=overrides,
                  study_name=f"batch-size-{args.code}-b{batch}-w{args.words}", study_dir=args.out / "studies",
                  storage=args.storage)


def chosen_settings(settings_dir: Path | None, code: str, batch: int) -> dict[str, float]:
    """The best ``lr`` / ``warmup`` of the batch's study (any code's study at that batch when ``code``'s is absent)."""
    if settings_dir is None:
        return {}
    found = sorted(settings_dir.glob(f"batch-size-{code}-b{batch}-w*/best_overrides.yaml")) or \
        sorted(settings_dir.glob(f"batch-size-*-b{batch}-w*/best_overrides.yaml"))
    if not found:
        raise SystemExit(f"no study report for batch {batch} under {settings_dir}")
    values = yaml.safe_load(found[-1].read_text())
    return {"lr": float(values["stages.train.lr"]), "warmup": float(values["stages.train.warmup"]),
            "study": found[-1].parent.name}


def study_curve(code: str, batch: int, words: int, storage: str | None) -> dict:
    """The best trial of the batch's study: its settings, wall clock and validation curve from its MLflow run."""
    import optuna
    from mlflow import MlflowClient

    from eccflow.track.study import default_storage_url

    name = f"batch-size-{code}-b{batch}-w{words}"
    best = optuna.load_study(study_name=name, storage=storage or default_storage_url()).best_trial
    client, run_id = MlflowClient(), best.user_attrs["mlflow_run_id"]
    run = client.get_run(run_id)
    rows: dict[int, dict[str, float]] = {}
    for key in (k for k in run.data.metrics if k.startswith("val/")):
        for point in client.get_metric_history(run_id, key):
            if point.step > 0:  # the trial's closing summary repeats the last values at step 0
                rows.setdefault(point.step + 1, {"step": point.step + 1, "words": (point.step + 1) * batch})[key] = point.value
    return {"batch": batch, "lr": float(best.params["lr"]), "warmup": float(best.params["warmup"]), "study": name,
            "trial": best.number, "mlflow_run_id": run_id, "train_seconds": run.data.metrics["train_seconds"],
            "curve": [rows[s] for s in sorted(rows)]}


def trained_curve(args: argparse.Namespace, batch: int, uri: str, experiment: str) -> dict:
    """Train ``batch`` with its study's (or ``--lr-at`` / ``--warmup``) settings in a nested MLflow run; its curve."""
    import mlflow
    from lightning.pytorch.loggers import CSVLogger, MLFlowLogger

    chosen = chosen_settings(args.settings, args.code, batch)
    lr_at = dict(item.split("=") for item in args.lr_at)
    if str(batch) not in lr_at and "lr" not in chosen:
        raise SystemExit(f"batch {batch}: give --lr-at {batch}=LR or --settings with its study")
    lr = float(lr_at.get(str(batch), chosen.get("lr")))
    warmup = args.warmup if args.warmup is not None else chosen.get("warmup", 0.0)
    overrides = [*MODEL, *args.set, *schedule_overrides(batch, args.words, args.points, args.val_frames),
                 f"stages.train.lr={lr}", f"stages.train.warmup={warmup}"]
    config = compose(args.code, "ecct", "quick", overrides)
    settings = optimizer_settings(config, "train")
    with mlflow.start_run(experiment_id=experiment, run_name=f"b{batch}", nested=True) as run:
        mlflow.log_params({"batch_size": batch, "lr": settings["lr"], "warmup": settings["warmup"],
                           "words": args.words, "code": args.code})
        with tempfile.TemporaryDirectory() as tmp:
            csv_logger = CSVLogger(tmp, name="curve", version=0)
            logger = MLFlowLogger(tracking_uri=uri, run_id=run.info.run_id, log_model=False)
            _, metrics = fit(get_code(args.code), config, Path(tmp), logger=[csv_logger, logger], progress=False)
            rows = curve_rows(Path(csv_logger.log_dir) / "metrics.csv", batch)
        for row in rows:
            mlflow.log_metrics({f"curve/{k.replace('val/', '')}": v for k, v in row.items() if k.startswith("val/")},
                               step=int(row["words"]))
    print(f"b{batch}: lr {settings['lr']:.3g}, warmup {settings['warmup']:.3f}, {metrics['train_seconds']:.0f} s, "
          f"final " + ", ".join(f"{k}={v:.3f}" for k, v in rows[-1].items() if k.startswith("val/neg_ln")), flush=True)
    return {"batch": batch, "lr": settings["lr"], "warmup": settings["warmup"], "study": chosen.get("study"),
            "train_seconds": metrics["train_seconds"], "curve": rows}


def run_curves(args: argparse.Namespace) -> None:
    import mlflow

    from eccflow.track import configure_mlflow, get_or_create_experiment

    uri = configure_mlflow(None)
    experiment = get_or_create_experiment("eccflow-batch-size")
    record = {"code": args.code, "words": args.words, "points": args.points, "val_frames": args.val_frames,
              "date": datetime.date.today().isoformat(), "machine": platform.machine(), "torch": torch.__version__,
              "threads": torch.get_num_threads(), "command": "python " + " ".join(sys.argv)}
    with mlflow.start_run(experiment_id=experiment, run_name=f"batch-size curves {args.code}") as parent:
        if args.from_studies:
            record["runs"] = [study_curve(args.code, batch, args.words, args.storage) for batch in args.batches]
            record["source"] = "the best trial of each batch's study (its MLflow run)"
        else:
            record["runs"] = [trained_curve(args, batch, uri, experiment) for batch in args.batches]
        args.out.mkdir(parents=True, exist_ok=True)
        stem = args.out / f"curves_{args.code}"
        stem.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
        stem.with_suffix(".md").write_text(markdown(record))
        plot(record, stem.with_suffix(".png"))
        for suffix in (".json", ".md", ".png"):
            mlflow.log_artifact(str(stem.with_suffix(suffix)))
        print(f"MLflow run {parent.info.run_id}; wrote {stem}.json/.md/.png")


def _ebn0_keys(record: dict) -> list[str]:
    return sorted({k[len("val/neg_ln_ber_"):] for r in record["runs"] for k in r["curve"][-1] if k.startswith("val/neg_ln_ber_")},
                  key=lambda k: float(k[:-2]))


def markdown(record: dict) -> str:
    keys = _ebn0_keys(record)
    base = record["runs"][0]["curve"][-1]
    lines = [f"# Learning curves at equal training words: {record['code']}", "",
             f"Command: `{record['command']}`; {record['words']:,} training words per batch size, {record['points']} "
             f"validations of {record['val_frames']:,} frames per Eb/N0 (the fixed validation stream); "
             f"{record['machine']}, torch {record['torch']}, {record['threads']} thread(s).", "",
             "| batch | lr | warm-up | steps | wall clock (s) | " + " | ".join(f"-ln(BER) {k}" for k in keys)
             + " | NVE vs BP-5 |", "|---:|---:|---:|---:|---:|" + "---:|" * len(keys) + "---:|"]
    for run in record["runs"]:
        last = run["curve"][-1]
        lines.append(f"| {run['batch']} | {run['lr']:.3g} | {run['warmup']:.3f} | {last['step']} | {run['train_seconds']:.0f} | "
                     + " | ".join(f"{last[f'val/neg_ln_ber_{k}']:.3f}" for k in keys) + f" | {last.get('val/nve', math.nan):.3f} |")
    lines.append("| BP-5 (same validation words) | | | | | " + " | ".join(
        f"{-math.log(max(base[f'val/baseline_ber_{k}'], 1e-12)):.3f}" for k in keys) + " | 1 |")
    lines += ["", "At each validation (words seen): -ln(BER) at " + ", ".join(keys), ""]
    for run in record["runs"]:
        lines.append(f"- b{run['batch']}: " + "; ".join(
            f"{r['words']:,}: " + "/".join(f"{r[f'val/neg_ln_ber_{k}']:.2f}" for k in keys) for r in run["curve"]))
    return "\n".join(lines) + "\n"


def plot(record: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = _ebn0_keys(record)
    fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 3.6), squeeze=False)
    for ax, key in zip(axes[0], keys):
        for run in record["runs"]:
            ax.plot([r["words"] for r in run["curve"]], [r[f"val/neg_ln_ber_{key}"] for r in run["curve"]], marker="o",
                    ms=3, label=f"batch {run['batch']} (lr {run['lr']:.2g})")
        base = record["runs"][0]["curve"][-1][f"val/baseline_ber_{key}"]
        ax.axhline(-math.log(max(base, 1e-12)), color="k", ls="--", lw=1, label="BP-5")
        ax.set_xscale("log")
    finish_panels(fig, list(axes[0]), path, "-ln(BER), validation", [f"{record['code']}, Eb/N0 {key}" for key in keys])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("what", choices=["studies", "curves"])
    parser.add_argument("--code", required=True)
    parser.add_argument("--batches", type=int, nargs="+", default=[128, 512, 2048, 8192])
    parser.add_argument("--words", type=int, required=True, help="training words per batch size")
    parser.add_argument("--points", type=int, default=8, help="validations over the run")
    parser.add_argument("--val-frames", type=int, default=20000)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--trials", type=int, default=5, help="studies: trials per batch size")
    parser.add_argument("--lr-center", type=float, default=3e-3, help="studies: centre of the lr range at batch 128")
    parser.add_argument("--lr-width", type=float, default=10.0, help="studies: high / low of the lr range")
    parser.add_argument("--lr-power", type=float, default=0.5, help="studies: the range's centre moves as (B / 128)^power")
    parser.add_argument("--warmup-high", type=float, default=0.2)
    parser.add_argument("--sampler-seed", type=int, default=0)
    parser.add_argument("--storage", default=None, help="studies: Optuna storage URL (default mlruns/optuna.db)")
    parser.add_argument("--settings", type=Path, default=None, help="curves: directory of the studies' reports")
    parser.add_argument("--lr-at", nargs="*", default=[], metavar="BATCH=LR", help="curves: learning rate per batch")
    parser.add_argument("--warmup", type=float, default=None, help="curves: warm-up fraction with --lr-at")
    parser.add_argument("--from-studies", action="store_true", help="curves: read the studies' best trials from MLflow")
    args = parser.parse_args()
    if args.what == "studies":
        run_studies(args)
    else:
        run_curves(args)


if __name__ == "__main__":
    main()
