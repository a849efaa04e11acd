"""Neural window decoder stages (NWD paper) for SC-LDPC chains.

* ``nwd``: train one window (the independent window at position 0) with active learning and NVE selection;
  ``scope`` (target | all), ``damping`` and ``init`` (an earlier ``nwd*`` output to start from) make the
  target-specific, all-inclusive and damped variants (``nwd``, ``nwd:all``, ``nwd:damped``). Output: the
  stage name -> checkpoint.
* ``schedule``: skip order from the damped NWD's schedule importance; the plain NWD decodes chains under
  each number of skipped updates; FER vs skipped updates (PNG); output ``schedule`` (JSON with the order
  and the chosen count).
* ``boosting``: connected-window samples where the previous window failed (plain NWD chain); ``ep_samples``.
* ``ep_train``: EP-resilient weight set trained from the plain weights on those samples; ``ep``.
* ``evaluate_chain``: WD, WD-BP, NWD variants, NWD + schedule, adaptive NWD (UCN and genie detectors) on
  chains; BER/FER/EP table, per-window BLER, curves (PNG) and the complexity table.
"""
from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import torch
from lightning.pytorch.loggers import MLFlowLogger

from eccflow.data.boosting import BoostingDataModule, collect_ep_samples, load_ep_samples
from eccflow.lit.families import build_network
from eccflow.decoders.window import ChainDecoder, WindowDecoder, schedule_importance, skip_order
from eccflow.decoders.window_complexity import complexity_table, window_complexity
from eccflow.errors import ConfigError
from eccflow.eval import Verdict, json_safe, paired_table
from eccflow.eval.chain import chain_table, evaluate_chain, evaluate_chains_paired
from eccflow.lit import load_decoder
from eccflow.lit.window import WindowLitModule
from eccflow.pipelines.runner import StageContext, StageResult, stage
from eccflow.train import fit
from eccflow.window_training import train_window_decoder


def baseline_decoder(ctx: StageContext, kind: str = "wd") -> WindowDecoder:
    """WD (min-sum with the fixed factor ``decoder.wd_normalization``) or WD-BP (sum-product) of the config."""
    dec = {k: v for k, v in ctx.config["decoder"].items() if k not in ("family", "wd_normalization", "scope", "damping",
                                                                          "weight_init", "weight_sharing")}
    if kind == "wd":
        return WindowDecoder(ctx.code, neural=False, normalization=float(ctx.config["decoder"]["wd_normalization"]), **dec)
    return WindowDecoder(ctx.code, neural=False, **{**dec, "check_update": "sum-product"})


@stage("nwd")
def nwd(ctx: StageContext) -> StageResult:
    st = ctx.stage_config
    init = None
    if st.get("init"):
        if st["init"] not in ctx.inputs:
            raise ConfigError(f"stages.{ctx.name}.init = {st['init']!r} is not an output of an earlier stage "
                              f"(have {sorted(ctx.inputs)})")
        init = load_decoder(ctx.inputs[st["init"]]).weights.detach()
    logger = MLFlowLogger(tracking_uri=ctx.tracking_uri, run_id=ctx.run_id, log_model=False)
    model, metrics = train_window_decoder(ctx.code, ctx.config, ctx.name, ctx.out_dir, logger, init)
    mlflow.log_metrics(metrics)
    mlflow.log_artifact(str(model), artifact_path="checkpoint")
    return StageResult(outputs={ctx.name: str(model)}, metrics=metrics)


def _chain_fer(decoder: WindowDecoder, ctx: StageContext, ebn0: float) -> float:
    st = ctx.stage_config
    point = evaluate_chain(ChainDecoder(decoder), [ebn0], min_frame_errors=int(st["min_frame_errors"]),
                           max_frames=int(st["max_frames"]), batch_size=int(st["batch_size"]),
                           seed=ctx.config["seed"])[0]
    return point.fer


@stage("schedule")
def schedule(ctx: StageContext) -> StageResult:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    st = ctx.stage_config
    for needed in ("nwd", "nwd:damped"):
        if needed not in ctx.inputs:
            raise ConfigError(f"the schedule stage needs the {needed!r} output of an earlier stage")
    damped = load_decoder(ctx.inputs["nwd:damped"])
    plain = load_decoder(ctx.inputs["nwd"])
    importance = schedule_importance(damped)
    reachable = plain.reachable_updates()
    order = skip_order(importance, reachable)
    total = plain.iterations * plain.proto_checks  # the WD's CN updates per window (proto-check units)
    pruned = total - int(reachable.sum())  # never computed by the target-specific NWD
    ebn0 = float(st["ebn0_db"])
    wd_fer = _chain_fer(baseline_decoder(ctx), ctx, ebn0)
    # skip_fractions: of the WD's updates not computed (pruned + skipped by the schedule)
    counts = sorted({max(0, int(round(f * total)) - pruned) for f in st["skip_fractions"]} | {0})
    counts = [c for c in counts if c <= len(order)]
    curve = []
    for count in counts:
        plain.set_skip(order[:count])
        curve.append({"skipped": count, "not_computed_fraction": (pruned + count) / total,
                      "fer": _chain_fer(plain, ctx, ebn0)})
    within = [p for p in curve if p["fer"] <= wd_fer]
    chosen = max(within, key=lambda p: p["skipped"])["skipped"] if within else 0
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.semilogy([p["skipped"] for p in curve], [p["fer"] for p in curve], "o-", label="NWD + schedule")
    ax.axhline(wd_fer, color="k", ls="--", label="WD")
    ax.set_xlabel(f"CN updates skipped by the schedule per window ({pruned} of {total} pruned besides)")
    ax.set_ylabel(f"chain FER at {ebn0:g} dB")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    png = ctx.out_dir / "fer_vs_skipped.png"
    fig.tight_layout()
    fig.savefig(png, dpi=120)
    plt.close(fig)
    result = {"order": order, "chosen": chosen, "total_updates": total, "pruned_updates": pruned, "wd_fer": wd_fer,
              "ebn0_db": ebn0,
              "curve": curve, "importance": importance.tolist()}
    path = ctx.out_dir / "schedule.json"
    path.write_text(json.dumps(result, indent=2))
    mlflow.log_artifact(str(png))
    mlflow.log_artifact(str(path))
    metrics = {"skipped_updates": float(chosen), "skipped_fraction": chosen / total,
               "not_computed_fraction": (pruned + chosen) / total, "wd_fer": wd_fer}
    mlflow.log_metrics(metrics)
    return StageResult(outputs={"schedule": str(path)}, metrics=metrics)


@stage("boosting")
def boosting(ctx: StageContext) -> StageResult:
    st = ctx.stage_config
    if "nwd" not in ctx.inputs:
        raise ConfigError("the boosting stage needs the plain NWD ('nwd' output of an earlier stage)")
    chain = ChainDecoder(load_decoder(ctx.inputs["nwd"]))
    data = collect_ep_samples(chain, float(st["ebn0_db"]), int(st["samples"]), max_frames=int(st["max_frames"]),
                              batch_size=int(st["batch_size"]), seed=ctx.config["seed"])
    path = ctx.out_dir / "ep_samples.pt"
    torch.save(data, path)
    metrics = {"ep_samples": float(data["samples"]), "boosting_frames": float(data["frames"]),
               "ep_windows": float(len(data["windows"]))}
    mlflow.log_metrics(metrics)
    return StageResult(outputs={"ep_samples": str(path)}, metrics=metrics)


@stage("ep_train")
def ep_train(ctx: StageContext) -> StageResult:
    st = ctx.stage_config
    for needed in ("nwd", "ep_samples"):
        if needed not in ctx.inputs:
            raise ConfigError(f"the ep_train stage needs the {needed!r} output of an earlier stage")
    plain = load_decoder(ctx.inputs["nwd"])
    hp = torch.load(ctx.inputs["nwd"], map_location="cpu", weights_only=True)["hyper_parameters"]
    net_config = hp["net_config"]
    net = build_network(ctx.code, net_config)
    net.load_state_dict(plain.state_dict())
    chain = ChainDecoder(net)
    data = load_ep_samples(ctx.inputs["ep_samples"], chain)
    datamodule = BoostingDataModule(data, batch_size=int(st["batch_size"]), val_fraction=float(st["val_fraction"]),
                                    seed=ctx.config["seed"])
    lit = WindowLitModule(net, net_config, ctx.code.name, loss=st["loss"], val_ebn0_db=[data["ebn0_db"]],
                          lr=float(st["lr"]), lr_min=float(st["lr_min"]), baseline={ctx.code.name: plain})
    lit.graphs.extend(chain.graphs)
    logger = MLFlowLogger(tracking_uri=ctx.tracking_uri, run_id=ctx.run_id, log_model=False)
    model, metrics = fit(ctx.code, ctx.config, ctx.out_dir, logger=logger, stage=ctx.name, lit_module=lit,
                         datamodule=datamodule)
    mlflow.log_metrics(metrics)
    mlflow.log_artifact(str(model), artifact_path="checkpoint")
    return StageResult(outputs={"ep": str(model)}, metrics=metrics)


@stage("evaluate_chain")
def evaluate_chain_stage(ctx: StageContext) -> StageResult:
    from eccflow.track import register_checkpoint

    st = ctx.stage_config
    decoders: dict[str, tuple[ChainDecoder, WindowDecoder, bool]] = {
        "WD": (ChainDecoder(wd := baseline_decoder(ctx)), wd, False),
        "WD-BP": (ChainDecoder(bp := baseline_decoder(ctx, "bp")), bp, False),
    }
    for name, key in (("NWD (target)", "nwd"), ("NWD (all)", "nwd:all")):
        if key in ctx.inputs:
            net = load_decoder(ctx.inputs[key])
            decoders[name] = (ChainDecoder(net), net, False)
    if "schedule" in ctx.inputs and "nwd" in ctx.inputs:
        plan = json.loads(Path(ctx.inputs["schedule"]).read_text())
        net = load_decoder(ctx.inputs["nwd"])
        net.set_skip([tuple(u) for u in plan["order"][: plan["chosen"]]])
        decoders[f"NWD (target) + schedule ({plan['chosen']}/{plan['total_updates']} skipped)"] = (ChainDecoder(net), net, False)
    if "ep" in ctx.inputs and "nwd" in ctx.inputs:
        for detector in ("ucn", "genie"):
            plain, resilient = load_decoder(ctx.inputs["nwd"]), load_decoder(ctx.inputs["ep"])
            decoders[f"adaptive NWD ({detector})"] = (ChainDecoder(plain, resilient, detector), plain, detector == "ucn")
    baselines = ("WD", "WD-BP")
    pairs = [(name, b) for name in decoders if name not in baselines for b in baselines]
    curves, paired = evaluate_chains_paired({name: chain for name, (chain, _, _) in decoders.items()}, st["ebn0_db"],
                                            min_frame_errors=int(st["min_frame_errors"]), max_frames=int(st["max_frames"]),
                                            batch_size=int(st["batch_size"]), seed=ctx.config["seed"],
                                            codewords=st["codewords"], pairs=pairs)
    metrics, complexity = {}, {}
    slugs = {name: "".join(ch if ch.isalnum() else "_" for ch in name.lower()).strip("_") for name in decoders}
    for name, (chain, window, adaptive) in decoders.items():
        if not name.endswith("(genie)"):
            complexity[name] = window_complexity(window, adaptive=adaptive)
        for p in curves[name]:
            key = f"{slugs[name]}_{p.ebn0_db:g}dB"
            metrics |= {f"fer_{key}": p.fer, f"ber_{key}": p.ber, f"ep_probability_{key}": p.ep_probability}
    for d in paired:
        head = f"{slugs[d.decoder]}_vs_{slugs[d.baseline]}_{d.ebn0_db:g}dB"
        metrics |= {f"d_fer_{head}": d.d_fer, f"fer_verdict_{head}": Verdict.sign(d.fer_verdict)}
    table = chain_table(curves)
    ctable = complexity_table(complexity)
    report = ctx.out_dir / "nwd_report.md"
    report.write_text(f"### {ctx.code.name}: window decoders (same chains)\n\n{table}\n"
                      f"{paired_table(paired, title='Paired differences against WD and WD-BP (positive: better)')}\n"
                      f"### Complexity per window\n\n{ctable}")
    (ctx.out_dir / "chain_results.json").write_text(json.dumps(json_safe(
        {"decoders": {name: [p.to_dict() for p in points] for name, points in curves.items()},
         "paired": [d.to_dict() for d in paired]}), indent=2))
    (ctx.out_dir / "complexity.json").write_text(json.dumps({k: v.to_dict() for k, v in complexity.items()}, indent=2))
    pngs = _plots(curves, ctx.out_dir)
    for path in (report, ctx.out_dir / "chain_results.json", ctx.out_dir / "complexity.json", *pngs):
        mlflow.log_artifact(str(path))
    mlflow.log_metrics({k: v for k, v in metrics.items() if np.isfinite(v)})
    if st["register"] and "nwd" in ctx.inputs:
        register_checkpoint(ctx.inputs["nwd"], "nwd", ctx.code.name, {k: v for k, v in metrics.items() if np.isfinite(v)},
                            champion_metric=f"fer_nwd__target_{st['ebn0_db'][-1]:g}dB", higher_is_better=False,
                            loader="eccflow.lit.checkpoint:load_decoder")
    ctx.log(report.read_text())
    return StageResult(outputs={"report": str(report)}, metrics=metrics)


def _plots(curves: dict[str, list], out_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for name, points in curves.items():
        x = [p.ebn0_db for p in points]
        axes[0].semilogy(x, [max(p.fer, 1e-7) for p in points], "o-", label=name)
        axes[1].plot(x, [p.ep_probability for p in points], "o-", label=name)
    axes[0].set_ylabel("chain FER")
    axes[1].set_ylabel("P(window t fails | window t-1 failed)")
    for ax in axes:
        ax.set_xlabel("Eb/N0 (dB)")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    curve_png = out_dir / "chain_fer_ep.png"
    fig.savefig(curve_png, dpi=120)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, points in curves.items():
        ax.semilogy(range(len(points[-1].window_bler)), [max(b, 1e-7) for b in points[-1].window_bler], ".-", label=name)
    ax.set_xlabel("window index")
    ax.set_ylabel(f"window BLER at {points[-1].ebn0_db:g} dB")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    window_png = out_dir / "window_bler.png"
    fig.savefig(window_png, dpi=120)
    plt.close(fig)
    return [curve_png, window_png]
