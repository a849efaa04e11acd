"""``evaluate`` stage: Monte-Carlo -ln(BER) of the input model and the classical baselines.

Logs ``neg_ln_ber_4dB`` / ``ber_4dB`` / ``fer_4dB`` per Eb/N0 for the model and ``<baseline>_...`` for
each baseline, writes the table (JSON + markdown) and the BER/FER curves (PNG), and registers the
model (aliases ``candidate`` / ``champion``) with the measured metrics.
"""
from __future__ import annotations

import dataclasses
import json

import mlflow

from eccflow.decoders.factory import build_classical_decoder
from eccflow.decoders.flops import flops_per_frame
from eccflow.eval import evaluate as monte_carlo
from eccflow.eval import markdown_table, plot_curves, write_json
from eccflow.lit import load_decoder
from eccflow.pipelines.runner import StageContext, StageResult, stage

LOADER = "eccflow.lit.checkpoint:load_decoder"


def evaluation_device(config: dict) -> str:
    """``cuda`` when the pipeline trains on a GPU that is present, else ``cpu``."""
    import torch

    return "cuda" if config["trainer"]["accelerator"] in ("gpu", "cuda") and torch.cuda.is_available() else "cpu"


def evaluation_kwargs(ctx: StageContext) -> dict:
    st = ctx.stage_config
    return dict(min_frame_errors=st["min_frame_errors"], max_frames=st["max_frames"], batch_size=st["batch_size"],
                seed=ctx.config["seed"], codewords=st["codewords"], progress=False, device=evaluation_device(ctx.config))


@stage("evaluate")
def evaluate(ctx: StageContext) -> StageResult:
    from eccflow.track import point_metrics, register_checkpoint

    st, dec = ctx.stage_config, ctx.config["decoder"]
    checkpoint = ctx.inputs["checkpoint"]
    device = evaluation_device(ctx.config)
    model = load_decoder(checkpoint, code=ctx.code).to(device)  # a universal model decodes CODE whatever it was trained on
    iterations = int(dec.get("iterations", st["baseline_iterations"]))
    label = f"{dec['family']} L={dec['iterations']}" if "iterations" in dec else f"{dec['family']} N={dec['layers']} d={dec['d_model']}"
    curves = {label: monte_carlo(model, ctx.code, st["ebn0_db"], **evaluation_kwargs(ctx))}
    metrics = point_metrics(curves[label])
    for name in st["baselines"]:
        baseline = build_classical_decoder(name, ctx.code, iterations=iterations).to(device)
        curves[f"{name} L={iterations}"] = results = monte_carlo(baseline, ctx.code, st["ebn0_db"], **evaluation_kwargs(ctx))
        metrics.update(point_metrics(results, prefix=f"{name}_"))
    metrics["decoder_params"] = float(sum(p.numel() for p in model.parameters()))
    metrics["decoder_flops"] = float(flops_per_frame(model.cpu(), ctx.code.n))
    tables = "\n".join(markdown_table(results, title=f"{ctx.code.name}: {name}") for name, results in curves.items())
    ctx.log(tables)
    (ctx.out_dir / "ber_table.md").write_text(tables)
    (ctx.out_dir / "ber_table.json").write_text(json.dumps({k: [r.to_dict() for r in v] for k, v in curves.items()}, indent=2))
    plot_curves(curves, ctx.out_dir / "ber_curves.png", title=ctx.code.name)
    for name in ("ber_table.md", "ber_table.json", "ber_curves.png"):
        mlflow.log_artifact(str(ctx.out_dir / name))
    mlflow.log_metrics(metrics)
    outputs = {"ber_table": str(ctx.out_dir / "ber_table.json"), "report": str(ctx.out_dir / "ber_table.md")}
    if ctx.config["tracking"]["register"] and st["register"]:
        info = register_checkpoint(checkpoint, family=dec["family"], code=ctx.code.name, metrics=metrics,
                                   champion_metric=ctx.config["tracking"]["champion_metric"], loader=LOADER)
        (ctx.out_dir / "registered.json").write_text(json.dumps(dataclasses.asdict(info), default=str))
        outputs["registered"] = str(ctx.out_dir / "registered.json")
    return StageResult(outputs=outputs, metrics=metrics)
