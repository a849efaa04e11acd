"""``evaluate`` stage: Monte-Carlo -ln(BER) of the input model and its baselines, all on the same words.

Baselines by default: hard decision, sum-product BP with 5 and 50 iterations, OSD order 2 where the code is
short enough (``osd_max_k``; skipped with a note otherwise). Logs ``neg_ln_ber_4dB`` / ``ber_4dB`` / ``fer_4dB``
per Eb/N0 for the model and ``<prefix>...`` (``bp50_neg_ln_ber_4dB``) for each baseline, the paired
differences against every baseline (``vs_bp50_d_neg_ln_ber_4dB`` with ``_lo`` / ``_hi`` and a verdict),
the published value and gap where the shipped table has one; writes the tables (JSON + markdown) and the
BER/FER curves (PNG), and registers the model (aliases ``candidate`` / ``champion``).
"""
from __future__ import annotations

import dataclasses
import json

import mlflow

from eccflow.decoders.flops import flops_per_frame
from eccflow.eval import json_safe, markdown_table, paired_table, plot_curves
from eccflow.eval.baselines import parse_baseline
from eccflow.eval.montecarlo import evaluate_paired
from eccflow.eval.published import baseline_method, published_comparison, published_method, published_table
from eccflow.lit import load_decoder
from eccflow.lit.families import get_family
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
    return dict(rule=st["stop_rule"], min_frame_errors=st["min_frame_errors"], max_frames=st["max_frames"],
                batch_size=st["batch_size"], seed=ctx.config["seed"], codewords=st["codewords"], progress=False,
                device=evaluation_device(ctx.config))


def baseline_decoders(ctx: StageContext, iterations: int, device: str) -> tuple[dict, dict, dict, list]:
    """The stage's classical and registered baselines: decoders by label, metric prefixes by label, published
    methods by label, and the notes of baselines skipped (OSD on a code too long for it, nothing registered)."""
    from eccflow.errors import ConfigError

    st = ctx.stage_config
    decoders, prefixes, methods, skipped = {}, {}, {}, []
    osd_max_k = int(st["osd_max_k"])
    for spec in st["baselines"]:
        baseline = parse_baseline(spec, iterations=iterations, order=int(st["osd_order"]))
        if baseline.label in decoders:
            raise ConfigError(f"stages.{ctx.name}.baselines lists {baseline.label!r} twice")
        reason = baseline.too_long(ctx.code, osd_max_k)
        if reason is not None:
            ctx.log(reason)
            skipped.append({"baseline": str(spec), "reason": reason})
            continue
        decoders[baseline.label] = baseline.build(ctx.code).to(device)
        prefixes[baseline.label] = baseline.prefix
        methods[baseline.label] = baseline_method(baseline.kind, baseline.parameter)
    for family in st.get("registered_baselines") or []:
        reference = registered_reference(family, ctx.code, iterations)
        if reference is None:
            reason = f"no registered {family} model for {ctx.code.name} (run its pipeline first): baseline skipped"
            ctx.log(reason)
            skipped.append({"baseline": family, "reason": reason})
            continue
        label = f"{family} L={iterations}"
        decoders[label], prefixes[label], methods[label] = reference.to(device), f"{family}_", None
    return decoders, prefixes, methods, skipped


def check_settings(name: str, config: dict) -> None:
    """Stop rule and baseline specs of an evaluate stage, checked before the pipeline does any work."""
    st = config["stages"][name]
    from eccflow.errors import ConfigError
    from eccflow.eval import stop_rule

    try:
        stop_rule(st["stop_rule"], st["max_frames"], st["min_frame_errors"])
        if not isinstance(st["baselines"], list):
            raise ConfigError(f"baselines must be a list of specs like ['hard', 'bp:50'], got {st['baselines']!r}")
        for spec in st["baselines"]:
            parse_baseline(spec)
    except ConfigError as err:
        raise ConfigError(f"stages.{name}: {err}") from None


@stage("evaluate", check=check_settings)
def evaluate(ctx: StageContext) -> StageResult:
    from eccflow.track import paired_metrics, point_metrics, register_checkpoint

    ctx = dataclasses.replace(ctx, code=evaluation_code(ctx))
    st, dec = ctx.stage_config, ctx.config["decoder"]
    checkpoint = ctx.inputs["checkpoint"]
    device = evaluation_device(ctx.config)
    model = load_decoder(checkpoint, code=ctx.code).to(device)  # a universal model decodes CODE whatever it was trained on
    iterations = int(dec.get("iterations", st["baseline_iterations"]))
    label = get_family(dec["family"]).label(dec)  # neural_bp L=5, ecct N=2 d=32, sbnd gru codeword-wise
    kwargs = evaluation_kwargs(ctx)
    channel = evaluation_channel(ctx)
    if channel is not None:
        kwargs["channel"] = channel
        label = f"{label} {channel.constellation.order}-{channel.constellation.modulation.value.upper()}"
        mlflow.set_tags({"channel": f"bicm {channel.constellation.order}-{channel.constellation.modulation.value} "
                                    f"{channel.demapping.value}"})
    baselines, prefixes, methods, skipped = baseline_decoders(ctx, iterations, device)
    methods[label] = published_method(dec)
    evaluation = evaluate_paired({label: model, **baselines}, ctx.code, st["ebn0_db"],
                                 pairs=[(label, b) for b in baselines], **kwargs)
    curves = evaluation.curves
    metrics = point_metrics(curves[label])
    for name, prefix in prefixes.items():
        metrics.update(point_metrics(curves[name], prefix=prefix))
    metrics.update(paired_metrics(evaluation.paired, prefixes))
    # the published rows are BPSK-AWGN: none applies to a BICM evaluation
    published = published_comparison(ctx.code.name, methods, curves) if channel is None else []
    for row in published:
        if row["decoder"] == label:
            metrics.setdefault(f"published_neg_ln_ber_{row['ebn0_db']:g}dB", row["published_neg_ln_ber"])
            metrics.setdefault(f"published_gap_{row['ebn0_db']:g}dB", row["gap"])
    metrics["decoder_params"] = float(sum(p.numel() for p in model.parameters()))
    metrics["decoder_flops"] = float(flops_per_frame(model.cpu(), ctx.code.n))
    mlflow.set_tags({"stop_rule": evaluation.stop_rule, "model_label": label,
                     **{f"vs_{prefixes[d.baseline]}{kind}_{d.ebn0_db:g}dB": verdict for d in evaluation.paired
                        for kind, verdict in (("ber", d.ber_verdict), ("fer", d.fer_verdict))}})
    tables = "\n".join(markdown_table(results, title=f"{ctx.code.name}: {name}") for name, results in curves.items())
    tables += "\n" + paired_table(evaluation.paired, title=f"{ctx.code.name}: {label} against each baseline, same words")
    tables += f"\n### {ctx.code.name}: published values\n\n" + published_table(published)
    if skipped:
        tables += "\n" + "\n".join(f"Note: {s['reason']}" for s in skipped) + "\n"
    ctx.log(tables)
    (ctx.out_dir / "ber_table.md").write_text(tables)
    document = {"model": label, "baselines": list(baselines), "skipped": skipped, **evaluation.to_dict(),
                "published": published}
    (ctx.out_dir / "ber_table.json").write_text(json.dumps(json_safe(document), indent=2))
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
