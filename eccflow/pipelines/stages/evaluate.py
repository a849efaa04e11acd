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


def evaluation_channel(ctx: StageContext):
    """``stages.evaluate.channel``: ``decoder`` (default) runs the channel the decoder config declares (the
    SBND's BICM system: same constellation, demapper and interleaver as in training; BPSK-AWGN for the
    others), ``awgn`` forces BPSK-AWGN. Returns the Monte-Carlo channel, or None for BPSK-AWGN."""
    from eccflow.data.bicm import decoder_channel
    from eccflow.errors import ConfigError

    kind = ctx.stage_config.get("channel", "decoder")
    if kind == "awgn":
        return None
    if kind != "decoder":
        raise ConfigError(f"stages.evaluate.channel must be 'decoder' or 'awgn', got {kind!r}")
    return decoder_channel(ctx.code, ctx.config["decoder"])


def baseline_label(name: str, iterations: int, osd_order: int) -> str:
    """Curve label of a classical baseline: ``bp L=5``, ``osd order 2``, ``hard decision``."""
    return {"osd": f"osd order {osd_order}", "hard": "hard decision"}.get(name, f"{name} L={iterations}")


def evaluation_code(ctx: StageContext):
    """``stages.<evaluate>.code``: the code to evaluate on (``null``: the pipeline's CODE). A universal
    model (EW-GNN, FECCT) trained on CODE is measured, unchanged, on another code, e.g. a stage
    ``evaluate:BCH_n63_k36`` with ``code: BCH_n63_k36``; baselines run on the same code."""
    from eccflow.codes import get_code
    from eccflow.errors import ConfigError, UnknownCodeError

    name = ctx.stage_config.get("code")
    if name is None:
        return ctx.code
    if not isinstance(name, str) or not name:
        raise ConfigError(f"stages.{ctx.name}.code must be a code name or null, got {name!r}")
    try:
        return get_code(name)
    except UnknownCodeError as err:
        raise ConfigError(f"stages.{ctx.name}.code: {err}") from None


def registered_reference(family: str, code, iterations: int):
    """The ``champion`` of ``eccflow-<family>-<code>`` (e.g. neural BP trained by its own pipeline), or
    ``None`` if none is registered; a model with other iterations than the evaluated one is an error."""
    from eccflow.errors import ConfigError
    from eccflow.track import load_registered_decoder

    try:
        model = load_registered_decoder(family, code.name, alias="champion")
    except ConfigError:
        return None
    theirs = getattr(model, "iterations", None)
    if theirs != iterations:
        raise ConfigError(f"registered {family} model for {code.name} runs {theirs} iterations, the evaluated "
                          f"decoder {iterations}: train it with the same iterations (decoder.iterations={iterations})")
    return model


def evaluation_kwargs(ctx: StageContext) -> dict:
    st = ctx.stage_config
    return dict(min_frame_errors=st["min_frame_errors"], max_frames=st["max_frames"], batch_size=st["batch_size"],
                seed=ctx.config["seed"], codewords=st["codewords"], progress=False, device=evaluation_device(ctx.config))


@stage("evaluate")
def evaluate(ctx: StageContext) -> StageResult:
    from eccflow.track import point_metrics, register_checkpoint

    ctx = dataclasses.replace(ctx, code=evaluation_code(ctx))
    st, dec = ctx.stage_config, ctx.config["decoder"]
    checkpoint = ctx.inputs["checkpoint"]
    device = evaluation_device(ctx.config)
    model = load_decoder(checkpoint, code=ctx.code).to(device)  # a universal model decodes CODE whatever it was trained on
    iterations = int(dec.get("iterations", st["baseline_iterations"]))
    if dec["family"] == "sbnd":
        label = f"sbnd {dec.get('estimator', 'gru')} {dec.get('output', 'message')}-wise"
    else:
        label = f"{dec['family']} L={dec['iterations']}" if "iterations" in dec else f"{dec['family']} N={dec['layers']} d={dec['d_model']}"
    kwargs = evaluation_kwargs(ctx)
    channel = evaluation_channel(ctx)
    if channel is not None:
        kwargs["channel"] = channel
        label = f"{label} {channel.constellation.order}-{channel.constellation.modulation.value.upper()}"
        mlflow.set_tags({"channel": f"bicm {channel.constellation.order}-{channel.constellation.modulation.value} "
                                    f"{channel.demapping.value}"})
    osd_order = int(st.get("osd_order", 2))
    curves = {label: monte_carlo(model, ctx.code, st["ebn0_db"], **kwargs)}
    metrics = point_metrics(curves[label])
    for name in st["baselines"]:
        baseline = build_classical_decoder(name, ctx.code, iterations=iterations, order=osd_order).to(device)
        curves[baseline_label(name, iterations, osd_order)] = results = monte_carlo(baseline, ctx.code, st["ebn0_db"], **kwargs)
        metrics.update(point_metrics(results, prefix=f"{name}_"))
    for family in st.get("registered_baselines") or []:
        reference = registered_reference(family, ctx.code, iterations)
        if reference is None:
            ctx.log(f"no registered {family} model for {ctx.code.name} (run its pipeline first): baseline skipped")
            continue
        curves[f"{family} L={iterations}"] = results = monte_carlo(reference.to(device), ctx.code, st["ebn0_db"], **kwargs)
        metrics.update(point_metrics(results, prefix=f"{family}_"))
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
