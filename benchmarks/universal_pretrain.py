"""The long pretraining of the shipped universal FECCT, run through the pipeline runner from a pinned commit,
stopped and resumed as often as needed, its training state committed so a fresh clone can resume it.

    python benchmarks/universal_pretrain.py start --commit REV    # first start: pin REV, run in the background
    python benchmarks/universal_pretrain.py resume                # resume (here, or on a fresh clone)
    python benchmarks/universal_pretrain.py save                  # copy state + learning curve into the repo
    python benchmarks/universal_pretrain.py status
    python benchmarks/universal_pretrain.py ship                  # the committed state -> eccflow/pretrained/

The run lives in a git worktree of the pinned commit (``--workdir``, default ``../eccflow-universal-run``) with
its own MLflow store and stage cache, so later changes to this checkout never touch its cache key. ``save``
copies the pretrain stage's ``last.ckpt`` (weights, optimiser, step, loop state: the data stream is a function of
the seed and the step) to ``benchmarks/results/universal/state/``, and merges the zero-shot learning curve
(every ``val/`` metric of every resumed run, by step) into ``curve.json`` and ``curve.png``, which it also logs
to the worktree's MLflow store (experiment ``eccflow-universal``). ``ship`` exports the committed state's network
as the package's ``universal_fecct`` backbone (the latest step, never a choice by held-out results). ``resume`` puts a
committed ``last.ckpt`` back into the stage folder when the worktree has none, then starts the runner, which
resumes from it.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "universal"
RUN_FILE = RESULTS / "run.json"
STATE = RESULTS / "state" / "last.ckpt"
ANCHOR = "BCH_n31_k16"  # the pretrain stage does not depend on CODE


def fail(message: str) -> None:
    sys.exit(f"error: {message}")


def git(*args: str, cwd: Path = REPO) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def read_run() -> dict:
    if not RUN_FILE.is_file():
        fail(f"{RUN_FILE.relative_to(REPO)} is missing: start the run first (start --commit REV)")
    return json.loads(RUN_FILE.read_text())


def environment(workdir: Path, threads: int = 1) -> dict[str, str]:
    """The worktree's own package, MLflow store and stage cache; ``threads`` intra-op threads (one by default: the
    machine has two cores, and the other one is for everything else)."""
    return {**os.environ, "PYTHONPATH": str(workdir), "ECCFLOW_CACHE_DIR": str(workdir / "mlruns" / "cache"),
            "MLFLOW_TRACKING_URI": f"sqlite:///{workdir / 'mlruns' / 'mlflow.db'}", "OMP_NUM_THREADS": str(threads)}


def ensure_worktree(workdir: Path, commit: str) -> None:
    if not (workdir / ".git").exists():
        git("worktree", "add", "--detach", str(workdir), commit)
    head = git("rev-parse", "HEAD", cwd=workdir)
    if head != git("rev-parse", commit):
        fail(f"{workdir} is at {head[:10]}, the run is pinned to {commit[:10]}: remove the worktree or pass its --workdir")


def stage_folder(workdir: Path) -> Path | None:
    folders = sorted((workdir / "mlruns" / "cache").glob("pretrain-*"))
    return folders[-1] if folders else None


def running(workdir: Path) -> bool:
    pid_file = workdir / "pretrain.pid"
    try:
        os.kill(int(pid_file.read_text()), 0)
        return True
    except (OSError, ValueError):
        return False


def launch(run: dict, workdir: Path, threads: int = 1) -> None:
    if running(workdir):
        fail(f"the run is already going (pid {(workdir / 'pretrain.pid').read_text()}); stop it first to restart")
    ensure_worktree(workdir, run["commit"])
    folder = stage_folder(workdir)
    if (folder is None or not (folder / "checkpoints" / "last.ckpt").is_file()) and STATE.is_file():
        folder = folder or key_folder(run, workdir)
        (folder / "checkpoints").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(STATE, folder / "checkpoints" / "last.ckpt")
        print(f"restored the committed state into {folder}")
    command = [sys.executable, "-m", "eccflow.cli", "pipeline", "--code", ANCHOR, "--pipeline", "universal",
               "--profile", run["profile"], *sum((["--override", o] for o in run["overrides"]), [])]
    log = open(workdir / "pretrain.log", "a")
    process = subprocess.Popen(command, cwd=workdir, env=environment(workdir, threads), stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)
    (workdir / "pretrain.pid").write_text(str(process.pid))
    print(f"running in the background: pid {process.pid}, log {workdir / 'pretrain.log'}")


def key_folder(run: dict, workdir: Path) -> Path:
    """The stage folder the runner will use (its cache key), computed by the pinned commit's own code."""
    probe = ("from eccflow.config import compose\nfrom eccflow.pipelines.runner import _load_stages, stage_key\n"
             "_load_stages()\n"  # registers which stages do not depend on the code: part of the key
             f"config = compose({ANCHOR!r}, 'universal', {run['profile']!r}, {run['overrides']!r})\n"
             "print('pretrain-' + stage_key('pretrain', config, {}))")
    name = subprocess.run([sys.executable, "-c", probe], cwd=workdir, env=environment(workdir), check=True,
                          capture_output=True, text=True).stdout.strip().splitlines()[-1]
    return workdir / "mlruns" / "cache" / name


def curve_from_store(workdir: Path) -> dict[int, dict[str, float]]:
    """Every ``val/`` metric of every pretrain run in the worktree's store, by training step."""
    import mlflow
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(environment(workdir)["MLFLOW_TRACKING_URI"])
    client = MlflowClient()
    rows: dict[int, dict[str, float]] = {}
    for experiment in client.search_experiments():
        for run in client.search_runs([experiment.experiment_id], "tags.stage = 'pretrain'"):
            for key in run.data.metrics:
                if key.startswith("val/"):
                    for point in client.get_metric_history(run.info.run_id, key):
                        rows.setdefault(int(point.step), {"step": int(point.step)})[key] = float(point.value)
    return rows


def with_nve(row: dict, mixture: list[str], heldout: list[str]) -> dict:
    """``row`` with ``nve_mixture`` and ``nve_heldout`` recomputed from its per-code BERs (mean of BER / BP-5 BER
    over the points where BP-5 erred), each code counted in the list it belongs to by its registered name."""
    from eccflow.lit.base import normalized_validation_error

    for label, names in (("nve_mixture", mixture), ("nve_heldout", heldout)):
        pairs = [(row[key], row[key.replace("val/ber_", "val/baseline_ber_")]) for key in row
                 if key.startswith("val/ber_") and key[len("val/ber_"):].rsplit("_", 1)[0] in names
                 and key.replace("val/ber_", "val/baseline_ber_") in row]
        row[label] = normalized_validation_error(pairs)
    return row


def save(run: dict, workdir: Path) -> None:
    folder = stage_folder(workdir)
    last = folder / "checkpoints" / "last.ckpt" if folder else None
    if last is None or not last.is_file():
        fail(f"no last.ckpt under {workdir / 'mlruns' / 'cache'}: nothing to save yet")
    STATE.parent.mkdir(parents=True, exist_ok=True)
    import torch

    copy = STATE.with_suffix(".tmp")
    shutil.copyfile(last, copy)
    try:  # the run may have been writing it at that moment: keep the previous state then
        state = torch.load(copy, map_location="cpu", weights_only=False)
    except Exception as error:  # noqa: BLE001 - any unreadable file means the same thing here
        copy.unlink()
        fail(f"{last} could not be read ({type(error).__name__}); it was probably being written: run save again")
    copy.replace(STATE)
    curve_file = RESULTS / "curve.json"
    merged = {int(r["step"]): r for r in json.loads(curve_file.read_text())["curve"]} if curve_file.is_file() else {}
    for step, row in curve_from_store(workdir).items():
        merged.setdefault(step, {}).update(row)
    batch = int(run["batch_size"])
    sys.path.insert(0, str(REPO))
    from eccflow.codes import get_code

    mixture, heldout = ([get_code(c).name for c in run[k]] for k in ("codes", "heldout"))
    rows = [with_nve({**merged[s], "words": (s + 1) * batch}, mixture, heldout) for s in sorted(merged)]
    curve_file.write_text(json.dumps({"batch_size": batch, "curve": rows}, indent=2) + "\n")
    run.update(saved_step=int(state["global_step"]), saved_epoch=int(state["epoch"]),
               saved_words=int(state["global_step"]) * batch)
    RUN_FILE.write_text(json.dumps(run, indent=2) + "\n")
    plot(rows, run, RESULTS / "curve.png")
    log_curve(workdir, state)
    print(f"saved step {state['global_step']} (epoch {state['epoch']}) and {len(rows)} curve points")


def log_curve(workdir: Path, state: dict) -> None:
    """The learning curve's PNG and JSON as a run of experiment ``eccflow-universal`` in the worktree's store, next
    to the training runs whose metrics they plot."""
    import mlflow

    sys.path.insert(0, str(REPO))
    from eccflow.track import configure_mlflow, get_or_create_experiment

    configure_mlflow(environment(workdir)["MLFLOW_TRACKING_URI"])
    with mlflow.start_run(experiment_id=get_or_create_experiment("eccflow-universal"),
                          run_name=f"pretraining curve at step {state['global_step']}"):
        mlflow.log_artifact(str(RESULTS / "curve.png"))
        mlflow.log_artifact(str(RESULTS / "curve.json"))


def plot(rows: list[dict], run: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from eccflow.codes import get_code

    fig, axes = plt.subplots(1, 4, figsize=(17, 3.8))
    heldout = [get_code(c).name for c in run["heldout"]]
    for ax, key in zip(axes[:3], ("4dB", "5dB", "6dB")):
        for name in heldout:
            points = [(r["words"], r[f"val/neg_ln_ber_{name}_{key}"]) for r in rows if f"val/neg_ln_ber_{name}_{key}" in r]
            if points:
                ax.plot(*zip(*points), marker="o", ms=2, lw=1, label=name)
        ax.set_title(f"held-out codes, zero-shot, {key}")
        ax.set_ylabel("-ln(BER), validation stream")
    for key, label in (("nve_heldout", "held-out (zero-shot)"), ("nve_mixture", "mixture")):
        points = [(r["words"], r[key]) for r in rows if key in r and math.isfinite(r[key])]
        if points:
            axes[3].plot(*zip(*points), marker="o", ms=2, label=label)
    axes[3].axhline(1.0, color="grey", lw=0.8, ls="--")
    axes[3].set_title("NVE against BP-5 (lower is better)")
    for ax in axes:
        ax.set_xlabel("training words")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=6)
    axes[3].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def ship(run: dict) -> None:
    if not STATE.is_file():
        fail(f"{STATE.relative_to(REPO)} is missing: save a state first")
    sys.path.insert(0, str(REPO))
    from eccflow.lit import read_checkpoint
    from eccflow.pretrained import SHIPPED, export_backbone

    step = int(read_checkpoint(STATE)["global_step"])
    training = {"pipeline": "universal", "profile": run["profile"], "overrides": run["overrides"],
                "mixture": run["codes"], "heldout": run["heldout"], "steps": step, "words": step * int(run["batch_size"]),
                "batch_size": int(run["batch_size"]), "state": str(STATE.relative_to(REPO)),
                "curve": str((RESULTS / "curve.json").relative_to(REPO))}
    backbone = export_backbone(STATE, REPO / "eccflow" / "pretrained", SHIPPED, training, commit=run["commit"])
    print(f"shipped step {step} as {backbone.path.relative_to(REPO)} ({backbone.path.stat().st_size:,} bytes, "
          f"SHA-256 {backbone.sha256[:16]}...)")


def status(run: dict, workdir: Path) -> None:
    alive = running(workdir)
    folder = stage_folder(workdir)
    done = folder is not None and (folder / "DONE.json").is_file()
    print(json.dumps({"commit": run["commit"], "running": alive, "finished": done, "stage_folder": str(folder),
                      "saved_step": run.get("saved_step")}, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["start", "resume", "save", "status", "ship"])
    parser.add_argument("--commit", help="start: the commit the run is pinned to")
    parser.add_argument("--profile", default="quick", help="start: the config profile")
    parser.add_argument("--override", action="append", default=[], help="start: config overrides (the run's budget)")
    parser.add_argument("--workdir", type=Path, default=REPO.parent / "eccflow-universal-run")
    parser.add_argument("--threads", type=int, default=1, help="start, resume: intra-op threads of the training")
    args = parser.parse_args()
    if args.threads < 1:
        fail(f"--threads must be at least 1, got {args.threads}")
    if args.command == "start":
        if not args.commit:
            fail("start needs --commit REV (the run is pinned to it)")
        if RUN_FILE.is_file():
            fail(f"{RUN_FILE.relative_to(REPO)} exists: this run was started already; use resume")
        sys.path.insert(0, str(REPO))
        from eccflow.config import compose

        config = compose(ANCHOR, "universal", args.profile, args.override)
        run = {"commit": git("rev-parse", args.commit), "profile": args.profile, "overrides": args.override,
               "batch_size": int(config["data"]["batch_size"]), "decoder": config["decoder"],
               "codes": config["stages"]["pretrain"]["codes"], "heldout": config["stages"]["pretrain"]["heldout"],
               "command": "python " + " ".join(sys.argv)}
        RESULTS.mkdir(parents=True, exist_ok=True)
        RUN_FILE.write_text(json.dumps(run, indent=2) + "\n")
        launch(run, args.workdir, args.threads)
    elif args.command == "resume":
        launch(read_run(), args.workdir, args.threads)
    elif args.command == "save":
        save(read_run(), args.workdir)
    elif args.command == "ship":
        ship(read_run())
    else:
        status(read_run(), args.workdir)


if __name__ == "__main__":
    main()
