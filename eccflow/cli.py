"""``eccflow`` command line: ``codes list``, ``codes show NAME``, ``eval ...``, ``backbone ...``, ``pipeline ...``,
``study ...``, ``export ...``, ``doctor``, ``report``, ``sap-analysis``."""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from eccflow.errors import EccflowError


def _codes_list(_: argparse.Namespace) -> None:
    from eccflow.codes import get_code
    from eccflow.codes.registry import constructions, shared_code_files

    print(f"{'name':22s} {'family':9s} {'n':>5s} {'k':>5s} {'rows':>5s} {'rate':>6s}")
    for name in sorted(shared_code_files(), key=str.lower):
        code = get_code(name)
        print(f"{code.name:22s} {code.family:9s} {code.n:5d} {code.k:5d} {code.num_checks:5d} {code.rate:6.3f}")
    print("\nconstructions (name pattern, example):")
    for c in constructions():
        print(f"  {c.example:28s} {c.description}")


def _codes_show(args: argparse.Namespace) -> None:
    from eccflow.codes import get_code
    from eccflow.codes.graph import girth
    from eccflow.codes.spectra import spectral_signature

    code = get_code(args.name)
    info = code.summary()
    info["girth"] = girth(code)
    info["spectral_signature"] = [round(float(v), 4) for v in spectral_signature(code, 2)]
    if args.json:
        print(json.dumps(info, indent=2))
        return
    for key, value in info.items():
        print(f"{key:20s} {value}")


def _eval(args: argparse.Namespace) -> None:
    import torch

    from eccflow.codes import get_code
    from eccflow.config import read_group
    from eccflow.eval import evaluate_paired, json_safe, markdown_table, paired_table, plot_curves
    from eccflow.eval.baselines import parse_baseline
    from eccflow.host_memory import keep_freed_memory

    from eccflow.config import check_ebn0
    from eccflow.eval.device import check_device
    from eccflow.files import atomic_write_text, check_writable

    check_ebn0("--ebn0", args.ebn0)
    for flag, value in (("--max-frames", args.max_frames), ("--batch-size", args.batch_size),
                        ("--min-frame-errors", args.min_frame_errors), ("--iters", args.iters)):
        if value is not None and value < 1:
            raise EccflowError(f"{flag} must be a positive integer, got {value}")
    if args.threads < 0:
        raise EccflowError(f"--threads must be 0 (torch's default) or a positive number of threads, got {args.threads}")
    check_device(args.device)
    code = get_code(args.code)
    if args.threads:
        torch.set_num_threads(args.threads)
    keep_freed_memory()
    decoders: dict[str, torch.nn.Module] = {}
    osd_max_k = int(read_group("stages", "evaluate")["osd_max_k"])
    if args.checkpoint:
        from eccflow.lit import load_decoder

        decoders[f"model {Path(args.checkpoint).name}"] = load_decoder(args.checkpoint, code=code).to(args.device)
    for spec in args.decoder or []:
        if spec == "fecct" or spec.startswith("fecct:"):  # the shipped universal backbone, or an exported one
            from eccflow.pretrained import SHIPPED, load_backbone

            backbone = load_backbone(spec.partition(":")[2] or SHIPPED)
            decoders[f"FECCT {backbone.name} zero-shot"] = backbone.decoder(code).to(args.device)
            continue
        baseline = parse_baseline(spec, iterations=args.iters, order=args.order)
        reason = baseline.too_long(code, osd_max_k)
        if reason is not None:
            raise EccflowError(f"{reason}; choose a shorter code or another decoder")
        if baseline.label in decoders:
            raise EccflowError(f"decoder {baseline.label!r} is given twice")
        decoders[baseline.label] = baseline.build(code, normalization=args.normalization, offset=args.offset,
                                                  early_stop=args.early_stop).to(args.device)
    if not decoders:
        raise EccflowError("give at least one --decoder (e.g. --decoder bp:5 --decoder osd:2) or a --checkpoint")
    stem = Path("results") / f"{code.name}_{'_'.join(n.replace(' ', '').replace('=', '') for n in decoders)}"
    json_path = check_writable(args.json or stem.with_suffix(".json"), "--json")  # before the work, not after
    png_path = check_writable(args.plot or json_path.with_suffix(".png"), "--plot")
    evaluation = evaluate_paired(
        decoders, code, args.ebn0, rule=args.rule, min_frame_errors=args.min_frame_errors, max_frames=args.max_frames,
        batch_size=args.batch_size, seed=args.seed, codewords=args.codewords, device=args.device, progress=not args.quiet,
    )
    for name, results in evaluation.curves.items():
        print(markdown_table(results, title=f"{code.name} ({code.n},{code.k}), {name}"))
    if evaluation.paired:
        print(paired_table(evaluation.paired, title=f"{code.name}: paired differences on the same words"))
    atomic_write_text(json_path, json.dumps(json_safe({**evaluation.to_dict(), "device": str(args.device)}), indent=2))
    plot_curves(evaluation.curves, png_path, title=code.name)
    print(f"wrote {json_path} and {png_path}")


def _backbone_show(args: argparse.Namespace) -> None:
    from eccflow.pretrained import load_backbone

    backbone = load_backbone(args.weights)
    print(json.dumps({"verified": str(backbone.path), **backbone.manifest}, indent=2))


def _backbone_export(args: argparse.Namespace) -> None:
    from eccflow.lit import read_checkpoint
    from eccflow.pretrained import export_backbone
    from eccflow.track.mlflow_tracking import git_commit

    ckpt = read_checkpoint(args.checkpoint)
    hp = ckpt["hyper_parameters"]
    training = {"source": str(args.checkpoint), "steps": ckpt.get("global_step"), "mixture": hp.get("val_codes"),
                "heldout": hp.get("heldout_codes"), "lr": hp.get("lr")}
    backbone = export_backbone(args.checkpoint, args.out, args.name, training, commit=git_commit())
    print(f"wrote {backbone.path} and its manifest {backbone.path.with_suffix('.json')} (SHA-256 {backbone.sha256[:16]}...); "
          f"fine-tune from it with --override stages.pretrained.weights={backbone.path.with_suffix('.json')}")


def _doctor(args: argparse.Namespace) -> None:
    from eccflow.track import configure_mlflow
    from eccflow.track.stale import mark_stale_runs

    uri = configure_mlflow(args.tracking_uri)
    marked = mark_stale_runs("eccflow doctor")
    print(f"{uri}: {len(marked)} run(s) left RUNNING by a killed process, now ended KILLED")
    for run_id in marked:
        print(f"  {run_id}")


def overrides_of(args: argparse.Namespace) -> list[str]:
    """``--overrides`` (several ``key=value`` in one string, split before each ``key=``, so values keep their
    spaces: ``"trainer.max_epochs=2 stages.evaluate.ebn0_db=[4.0, 5.0]"``) then every ``--override``."""
    text = (args.overrides or "").strip()
    return [*(re.split(r"\s+(?=[A-Za-z_][\w.:-]*=)", text) if text else []), *args.override]


def _pipeline(args: argparse.Namespace) -> None:
    from eccflow.pipelines import run_pipeline

    summary = run_pipeline(args.code, args.pipeline, args.profile, overrides_of(args), overrides_file=args.overrides_file)
    stages = ", ".join(f"{name}: {'cached' if s['cached'] else 'ran'}" for name, s in summary["stages"].items())
    print(f"pipeline {args.pipeline} on {args.code} done ({stages}); MLflow parent run {summary['parent_run_id']}")


def _study(args: argparse.Namespace) -> None:
    from eccflow.track.study import run_study

    summary = run_study(args.code, args.stage, args.trials, pipeline=args.pipeline, profile=args.profile,
                        overrides=overrides_of(args), overrides_file=args.overrides_file, storage=args.storage,
                        study_name=args.study_name, multi_objective=args.multi_objective)
    print(f"study {summary.study_name} in {summary.storage}: report in {summary.out_dir}; "
          f"MLflow parent run {summary.parent_run_id}")


def _report(args: argparse.Namespace) -> None:
    import mlflow

    from eccflow.track import get_or_create_experiment
    from eccflow.track.paper_report import build_report, collect, write_report

    entries = collect(args.experiment, tags=args.tag, families=args.family, stages=args.stage, codes=args.code,
                      select=args.select)
    report = build_report(entries, ebn0_db=args.ebn0, target_fers=args.target_fer)
    paths = write_report(report, args.out)
    print(paths[0].read_text())
    mlflow.set_experiment(experiment_id=get_or_create_experiment(args.experiment))
    with mlflow.start_run(run_name="report", tags={"stage": "report"}):
        mlflow.log_params({"select": args.select, "runs": len(entries), "codes": ",".join(report.codes)})
        for path in paths:
            mlflow.log_artifact(str(path))
    print(f"wrote {', '.join(str(p) for p in paths)} ({len(entries)} evaluate runs)")


def _sap_analysis(args: argparse.Namespace) -> None:
    import mlflow

    from eccflow.codes import get_code
    from eccflow.compress.analysis import analyse, write_report
    from eccflow.compress.fisher import derive_mask
    from eccflow.lit import load_decoder
    from eccflow.track import configure_mlflow, get_or_create_experiment

    codes = [get_code(name) for name in args.codes]
    if len(codes) < 3:
        raise EccflowError("sap-analysis needs at least 3 codes (pairs for a correlation)")
    masks = {}
    for code in codes:
        model = load_decoder(args.checkpoint, code=code)
        masks[code.name] = derive_mask(model, args.ebn0, args.frames, args.frames, args.seed, 1.0 - args.flops_reduction)
        print(f"{code.name}: mask derived")
    results, retrieval = analyse(codes, masks, temperature=args.temperature)
    paths = write_report(results, retrieval, args.out)
    print(Path(paths[0]).read_text())
    configure_mlflow()
    mlflow.set_experiment(experiment_id=get_or_create_experiment("eccflow"))
    with mlflow.start_run(run_name="sap-analysis", tags={"stage": "sap-analysis"}):
        mlflow.log_params({"checkpoint": args.checkpoint, "codes": ",".join(args.codes), "flops_reduction": args.flops_reduction})
        mlflow.log_metrics({f"pearson_r_{i}": r.pearson_r for i, r in enumerate(results) if r.pearson_r == r.pearson_r})
        for path in paths:
            mlflow.log_artifact(str(path))


def _export(args: argparse.Namespace) -> None:
    from eccflow.config import check_ebn0
    from eccflow.export import export_decoder, load_model
    from eccflow.files import check_writable

    check_ebn0("--ebn0", args.ebn0)
    check_writable(args.out, "--out")
    decoder, code = load_model(args.model)
    report = export_decoder(decoder, code, args.format, args.out, frames=args.frames, ebn0_db=args.ebn0,
                            repeats=args.repeats)
    print("\n".join(report.lines()))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="eccflow", description="Neural and classical channel decoders.")
    sub = parser.add_subparsers(dest="command", required=True)

    codes = sub.add_parser("codes", help="list or describe codes").add_subparsers(dest="codes_command", required=True)
    codes.add_parser("list", help="shared codes and constructions").set_defaults(func=_codes_list)
    show = codes.add_parser("show", help="n, k, rate, degrees, girth, spectral signature")
    show.add_argument("name", help="registry name, construction name or code file path")
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(func=_codes_show)

    ev = sub.add_parser("eval", help="Monte-Carlo BER/FER of one or several decoders on the same words, paired")
    ev.add_argument("--code", required=True, help="registry name or code file path")
    ev.add_argument("--decoder", action="append", metavar="SPEC",
                    help="hard, bp[:L], minsum[:L], osd[:order], or fecct[:MANIFEST] (the shipped universal backbone, "
                         "zero-shot); repeat for several (same words, paired differences)")
    ev.add_argument("--checkpoint", default=None, help="a trained model's checkpoint, decoded beside the --decoder baselines")
    ev.add_argument("--iters", type=int, default=5, help="iterations L of a bare bp / minsum")
    ev.add_argument("--order", type=int, default=2, help="order of a bare osd (0, 1, 2)")
    ev.add_argument("--rule", default="errors", help="stop rule: paper, strict, budget or errors (--min-frame-errors)")
    ev.add_argument("--normalization", type=float, default=None, help="min-sum normalisation factor")
    ev.add_argument("--offset", type=float, default=0.0, help="min-sum offset")
    ev.add_argument("--early-stop", action="store_true", help="stop a word at zero syndrome")
    ev.add_argument("--ebn0", type=float, nargs="*", required=True, help="Eb/N0 values in dB")
    ev.add_argument("--min-frame-errors", type=int, default=100)
    ev.add_argument("--max-frames", type=int, default=1_000_000)
    ev.add_argument("--batch-size", type=int, default=10_000)
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument("--codewords", choices=["random", "zero"], default="random")
    ev.add_argument("--device", default="cpu")
    ev.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")
    ev.add_argument("--json", default=None, help="results JSON path (default results/<code>_<decoders>.json)")
    ev.add_argument("--plot", default=None, help="BER/FER PNG path (default next to the JSON)")
    ev.add_argument("--quiet", action="store_true", help="no progress bar")
    ev.set_defaults(func=_eval)

    bb = sub.add_parser("backbone", help="verify, show or export universal FECCT backbones").add_subparsers(
        dest="backbone_command", required=True)
    bs = bb.add_parser("show", help="verify a backbone (checksum, format, network) and print its manifest")
    bs.add_argument("weights", nargs="?", default="universal_fecct", help="a shipped backbone's name or a manifest path")
    bs.set_defaults(func=_backbone_show)
    be = bb.add_parser("export", help="write a trained checkpoint's network as a backbone (weights + manifest)")
    be.add_argument("--checkpoint", required=True, help="e.g. the universal pipeline's pretrain model.ckpt")
    be.add_argument("--name", required=True, help="file stem of the backbone")
    be.add_argument("--out", required=True, help="folder for <name>.ckpt and <name>.json")
    be.set_defaults(func=_backbone_export)

    pipe = sub.add_parser("pipeline", help="run a pipeline of stages (cached, resumable, tracked in MLflow)")
    pipe.add_argument("--code", required=True)
    pipe.add_argument("--pipeline", default="neural_bp", help="a file in eccflow/conf/pipelines/")
    pipe.add_argument("--profile", default="quick", help="a file in eccflow/conf/profiles/")
    pipe.add_argument("--override", action="append", default=[], help="key.sub=value (repeatable)")
    pipe.add_argument("--overrides", default="", help="several key=value in one string (make's OVERRIDES)")
    pipe.add_argument("--overrides-file", default=None, metavar="PATH",
                      help="YAML of dotted keys -> values (e.g. a study's best_overrides.yaml), before --override")
    pipe.set_defaults(func=_pipeline)

    st = sub.add_parser("study", help="Optuna study over a stage's search space (trials tracked in MLflow)")
    st.add_argument("--stage", default="train", help="the stage whose search_space/study blocks are used")
    st.add_argument("--code", required=True)
    st.add_argument("--trials", type=int, default=20, help="trials run by this worker")
    st.add_argument("--storage", default=None,
                    help="Optuna database URL (default sqlite:///<home>/mlruns/optuna.db; postgresql://... for many workers)")
    st.add_argument("--study-name", default=None, help="default <pipeline>-<stage>-<code>-<profile>[-pareto]")
    st.add_argument("--pipeline", default="neural_bp", help="a file in eccflow/conf/pipelines/")
    st.add_argument("--profile", default="quick", help="a file in eccflow/conf/profiles/")
    st.add_argument("--override", action="append", default=[], help="key.sub=value (repeatable)")
    st.add_argument("--overrides", default="", help="several key=value in one string (make's OVERRIDES)")
    st.add_argument("--overrides-file", default=None, metavar="PATH", help="YAML of dotted keys -> values")
    st.add_argument("--multi-objective", action="store_true",
                    help="optimise stages.<stage>.study.multi_objectives (Pareto front; no pruning)")
    st.set_defaults(func=_study)

    ex = sub.add_parser("export", help="a trained decoder as ONNX or TorchScript, checked against eager and timed")
    ex.add_argument("--model", required=True, help="models:/NAME@ALIAS (or /VERSION), runs:/..., or a checkpoint path")
    ex.add_argument("--format", required=True, choices=["onnx", "torchscript"])
    ex.add_argument("--out", required=True, help="file to write (e.g. decoder.onnx)")
    ex.add_argument("--frames", type=int, default=1000, help="channel words for the check and the timing")
    ex.add_argument("--ebn0", type=float, default=4.0, help="Eb/N0 (dB) of those words")
    ex.add_argument("--repeats", type=int, default=5, help="alternating timing runs (median)")
    ex.set_defaults(func=_export)

    dr = sub.add_parser("doctor", help="end KILLED the runs a killed process left RUNNING (pipelines also do it at start)")
    dr.add_argument("--tracking-uri", default=None, help="MLflow store (default $MLFLOW_TRACKING_URI or mlruns/mlflow.db)")
    dr.set_defaults(func=_doctor)

    rp = sub.add_parser("report", help="paper-style tables (markdown, LaTeX, PNG) from the evaluate runs in MLflow")
    rp.add_argument("--experiment", default="eccflow")
    rp.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE", help="only runs with this tag (repeatable)")
    rp.add_argument("--family", action="append", default=[], help="only this decoder family (repeatable)")
    rp.add_argument("--stage", action="append", default=[], help="only this stage label, e.g. evaluate:zeroshot")
    rp.add_argument("--code", action="append", default=[], help="only this code (repeatable)")
    rp.add_argument("--select", default="latest", help="latest run or registered champion per (code, family, stage)")
    rp.add_argument("--ebn0", type=float, nargs="+", default=[4.0, 5.0, 6.0], help="Eb/N0 columns (dB)")
    rp.add_argument("--target-fer", type=float, nargs="+", default=[1e-2, 1e-3], help="FERs of the SNR-gap table")
    rp.add_argument("--out", default="results/report", help="output folder")
    rp.set_defaults(func=_report)

    sa = sub.add_parser("sap-analysis", help="mask overlap vs spectral similarity over code pairs (SAP App. H/I)")
    sa.add_argument("--checkpoint", required=True, help="the pretrained universal backbone")
    sa.add_argument("--codes", nargs="+", required=True)
    sa.add_argument("--flops-reduction", type=float, default=0.4)
    sa.add_argument("--ebn0", type=float, nargs="+", default=[4.0, 5.0, 6.0], help="calibration Eb/N0 (dB)")
    sa.add_argument("--frames", type=int, default=512, help="calibration frames per Eb/N0")
    sa.add_argument("--temperature", type=float, default=1.0)
    sa.add_argument("--seed", type=int, default=7919)  # as the pipelines: calibration words apart from training words
    sa.add_argument("--out", default="results/sap_analysis")
    sa.set_defaults(func=_sap_analysis)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except EccflowError as err:
        print(f"eccflow: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # a full disk, an unwritable store: the machine's problem, not a bug
        where = f" ({err.filename})" if err.filename else ""
        print(f"eccflow: error: {err.strerror or err}{where}; finished work is kept", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
