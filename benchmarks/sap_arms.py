"""SAP Table 2 analogue: the recovery arms per target code, from the shipped universal FECCT (quick profile).

    .venv/bin/python benchmarks/sap_arms.py --build-library           # 6 library codes (2 BCH, 2 LDPC, 2 polar)
    .venv/bin/python benchmarks/sap_arms.py --targets BCH_n63_k45 POLAR_n64_k48   # one process per core
    .venv/bin/python benchmarks/sap_arms.py --report                  # table from the per-target summaries
    .venv/bin/python benchmarks/sap_arms.py --refresh --targets ...   # summaries again from the cached pipelines

After its pipeline, each target's arms decode the same words once more, side by side, so that SAP + LoRA stands
against every other arm with the paired interval of the difference (``arms_paired`` in ``target_<code>.json``).

Library: ``make pipeline PIPELINE=sap_library`` per library code (dedicated Fisher mask of each code on
the pretrained backbone). Targets: ``PIPELINE=sap_arms`` (unpruned fine-tune, dedicated mask + LoRA,
SAP mask + full fine-tune, SAP mask + LoRA; equal recovery budgets; one MLflow parent run per target)
with ``stages.sap.tau`` = ``--tau`` so that out-of-library targets reuse their nearest library mask.
Checked: SAP + LoRA within 0.1 of dedicated + LoRA at 4 and 5 dB, both within 0.3 of the unpruned
fine-tune.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from eccflow.pipelines import run_pipeline

LIBRARY = ["BCH_n31_k16", "BCH_n63_k45", "LDPC_n49_k24", "LDPC_n64_k32", "POLAR_n32_k16", "POLAR_n64_k32"]
ARMS = {"unpruned": ("finetune:unpruned", "evaluate:unpruned"),  # arm: (stage making its model, its evaluation)
        "dedicated + LoRA": ("recover:dedicated", "evaluate:dedicated"),
        "SAP + full FT": ("recover:sap_full", "evaluate:sap_full"), "SAP + LoRA": ("recover:sap_lora", "evaluate:sap_lora"),
        "random mask + LoRA": ("recover:random", "evaluate:random"),
        "mismatched mask + LoRA": ("recover:mismatched", "evaluate:mismatched")}
EBN0 = (4.0, 5.0, 6.0)


def paired_arms(target: str, summary: dict, max_frames: int, batch_size: int) -> list[dict]:
    """Every arm's model on the same words; SAP + LoRA against each other arm (paired differences)."""
    from eccflow.codes import get_code
    from eccflow.eval import json_safe
    from eccflow.eval.montecarlo import evaluate_paired
    from eccflow.lit import load_decoder

    code = get_code(target)
    decoders = {arm: load_decoder(summary["stages"][model]["outputs"]["checkpoint"], code=code)
                for arm, (model, _) in ARMS.items()}
    pairs = [("SAP + LoRA", arm) for arm in ARMS if arm != "SAP + LoRA"]
    evaluation = evaluate_paired(decoders, code, EBN0, pairs=pairs, rule="errors", min_frame_errors=100,
                                 max_frames=max_frames, batch_size=batch_size, seed=104729, progress=False)
    return json_safe([d.to_dict() for d in evaluation.paired])


def points(curve: list[dict]) -> dict[str, dict]:
    """One evaluation curve as {"4": {neg_ln_ber, fer, frame_errors, frames, flagged}, ...}."""
    return {f"{p['ebn0_db']:g}": {k: p[k] for k in ("neg_ln_ber", "fer", "frame_errors", "frames", "flagged")} for p in curve}


def summarize(target: str, summary: dict) -> dict:
    """A target's row: the SAP decision, the mask costs and, per arm, its evaluation on the quick profile's
    words (-ln(BER), FER, frame errors) with the paired verdicts against the baselines decoded on the same words."""
    stages = summary["stages"]
    sap = stages["sap"]["metrics"]
    row = {"target": target, "in_library": target in LIBRARY, "parent_run_id": summary["parent_run_id"],
           "similarity": sap["similarity"], "reused": bool(sap["reused"]), "retrieval_seconds": sap["retrieval_seconds"],
           "dedicated_mask_seconds": stages["prune"]["metrics"]["mask_seconds"],
           "flops_ratio": stages["prune"]["metrics"]["flops_ratio"],
           "lora_fraction": stages["recover:sap_lora"]["metrics"]["lora_fraction"], "arms": {}}
    for arm, (_, evaluation) in ARMS.items():
        table = json.loads(Path(stages[evaluation]["outputs"]["ber_table"]).read_text())
        verdicts = {f"{d['baseline']}@{d['ebn0_db']:g}": d["ber_verdict"] for d in table["paired"]}
        row["arms"][arm] = {"points": points(table["decoders"][table["model"]]), "vs": verdicts,
                            "decoder_flops": stages[evaluation]["metrics"]["decoder_flops"]}
    # every arm's evaluation decodes the same words (same seed), so the baselines of the last one stand for all
    row["baselines"] = {name: points(table["decoders"][name]) for name in table["baselines"]}
    return row


VERDICT = {"better": "+", "worse": "-", "not resolved": "="}


def cell(point: dict | None) -> str:
    """-ln(BER) (FER, frame errors); a point with fewer than 100 frame errors is marked with a dagger."""
    if point is None:
        return "not run"
    value = "inf" if point["neg_ln_ber"] is None else f"{point['neg_ln_ber']:.2f}"  # no bit error: BER 0
    return (f"{value} ({point['fer']:.1e}, {point['frame_errors']:,}"
            f"{' †' if point['flagged'] else ''})")


def report(out: Path) -> str:
    rows = [json.loads(p.read_text()) for p in sorted(out.glob("target_*.json"))]
    lines = ["# SAP arms (SAP Table 2 analogue): -ln(BER) per recovery arm", "",
             "Cells: -ln(BER) (FER, frame errors) on the evaluation words; † marks fewer than 100 frame errors.",
             "Verdicts at 4 / 5 / 6 dB: paired interval of the -ln(BER) difference on the same words against BP-5,",
             "BP-50 and OSD-2 (+ better, - worse, = interval contains zero).", "",
             "| target | in library | S (nearest) | reused | arm | 4 dB | 5 dB | 6 dB | vs BP-5 | vs BP-50 | vs OSD-2 | FLOPs/frame |",
             "|---|---|---:|---|---|---|---|---|---|---|---|---:|"]
    checks = []
    for row in rows:
        for arm, m in row["arms"].items():
            vs = [" ".join(VERDICT.get(m["vs"].get(f"{b}@{e}"), "n/a") for e in (4, 5, 6))
                  for b in ("bp L=5", "bp L=50", "osd order 2")]
            lines.append(f"| {row['target']} | {'yes' if row['in_library'] else 'no'} | {row['similarity']:.2f} | "
                         f"{'yes' if row['reused'] else 'no'} | {arm} | " + " | ".join(cell(m["points"].get(f"{e}")) for e in (4, 5, 6))
                         + f" | {' | '.join(vs)} | {m['decoder_flops']:,.0f} |")
        for name, curve in row["baselines"].items():
            lines.append(f"| {row['target']} | | | | {name} | " + " | ".join(cell(curve.get(f"{e}")) for e in (4, 5, 6)) + " | | | | |")
        for e in (4, 5):
            sap, ded, full = (row["arms"][k]["points"].get(f"{e}", {}).get("neg_ln_ber")
                              for k in ("SAP + LoRA", "dedicated + LoRA", "unpruned"))
            if None in (sap, ded, full):  # a point not evaluated, or without a bit error
                continue
            checks.append(f"| {row['target']} | {e} | {sap - ded:+.2f} | {'yes' if abs(sap - ded) <= 0.1 else 'NO'} | "
                          f"{ded - full:+.2f} / {sap - full:+.2f} | {'yes' if min(ded, sap) >= full - 0.3 else 'NO'} |")
    lines += ["", "## SAP + LoRA against dedicated + LoRA and the unpruned fine-tune", "",
              "| target | Eb/N0 | SAP - dedicated | within 0.1 | dedicated / SAP - unpruned | both within 0.3 |", "|---|---|---:|---|---:|---|", *checks,
              "", "## Mask reuse vs derivation (SAP App. F analogue)", "",
              "| target | retrieval (s) | dedicated Fisher derivation (s) | speed-up | FLOPs kept | LoRA params / model |", "|---|---:|---:|---:|---:|---:|"]
    for row in rows:
        lines.append(f"| {row['target']} | {row['retrieval_seconds']:.4f} | {row['dedicated_mask_seconds']:.2f} | "
                     f"{row['dedicated_mask_seconds'] / row['retrieval_seconds']:,.0f}x | {row['flops_ratio']:.3f} | {row['lora_fraction']:.1%} |")
    paired = [(row["target"], d) for row in rows for d in row.get("arms_paired", [])]
    if paired:
        lines += ["", "## SAP + LoRA against every other arm, same words", "",
                  "| target | arm | Eb/N0 | d -ln(BER) [95% CI] | verdict | d FER [95% CI] | frames | only SAP failed | only arm failed |",
                  "|---|---|---:|---|---|---|---:|---:|---:|"]
        lines += [f"| {t} | {d['baseline']} | {d['ebn0_db']:g} | {d['d_neg_ln_ber']:+.3f} [{d['d_neg_ln_ber_ci95'][0]:+.3f}, "
                  f"{d['d_neg_ln_ber_ci95'][1]:+.3f}] | {d['ber_verdict']} | {d['d_fer']:+.4f} [{d['d_fer_ci95'][0]:+.4f}, "
                  f"{d['d_fer_ci95'][1]:+.4f}] | {d['frames']:,} | {d['frames_only_decoder_failed']:,} | "
                  f"{d['frames_only_baseline_failed']:,} |" for t, d in paired]
    text = "\n".join(lines) + "\n"
    (out / "README_table.md").write_text(text)
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build-library", action="store_true")
    parser.add_argument("--targets", nargs="*", default=[])
    parser.add_argument("--tau", type=float, default=0.3)
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--report", action="store_true")
    parser.add_argument("--refresh", action="store_true",
                        help="rewrite the targets' summaries from their cached pipelines, keeping their paired run")
    parser.add_argument("--paired-frames", type=int, default=100_000, help="frame cap per point of the arms' paired run")
    parser.add_argument("--paired-batch", type=int, default=2000,
                        help="frames per batch of the paired run (six transformer arms at once: memory grows with it)")
    parser.add_argument("--out", default="benchmarks/results/sap_arms")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.build_library:
        for code in LIBRARY:
            summary = run_pipeline(code, "sap_library", args.profile)
            print(code, summary["stages"]["sap"]["metrics"], flush=True)
    for target in args.targets:
        summary = run_pipeline(target, "sap_arms", args.profile, [f"stages.sap.tau={args.tau}"])
        row, path = summarize(target, summary), out / f"target_{target}.json"
        if args.refresh and path.is_file() and "arms_paired" in (kept := json.loads(path.read_text())):
            row["arms_paired"] = kept["arms_paired"]
        else:
            row["arms_paired"] = paired_arms(target, summary, args.paired_frames, args.paired_batch)
        path.write_text(json.dumps(row, indent=2))
    if args.report:
        print(report(out))


if __name__ == "__main__":
    main()
