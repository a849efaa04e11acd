"""SBND comparison tables on one BICM system: GRU vs transformer estimator (BER and decode speed measured
side by side in one process), parameter counts vs the paper's formulas, gap to OSD at a target BER, and the
Theorem 1 channel check.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/sbnd_compare.py --code POLAR_n64_k32 \
        --gru mlruns/cache/train-<gru>/model.ckpt --transformer mlruns/cache/train-<tr>/model.ckpt \
        --table mlruns/cache/evaluate-<gru>/ber_table.json --out benchmarks/results/sbnd_POLAR_n64_k32_16qam

Gap at BER p: -ln BER is interpolated linearly in Eb/N0 (dB) between the two measured points that bracket
-ln p, separately for each decoder; gap = Eb/N0_decoder(p) - Eb/N0_OSD(p).
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import torch

from eccflow.eval.timing import frames_per_second
from eccflow.channels import make_constellation
from eccflow.codes import get_code
from eccflow.data.bicm import decoder_channel
from eccflow.decoders.factory import build_classical_decoder
from eccflow.lit.families import build_network
from eccflow.decoders.sbnd import SBNDDecoder, parameter_report
from eccflow.eval import evaluate
from eccflow.eval.channel_check import label_flip_statistics
from eccflow.lit import load_decoder, read_checkpoint


def ebn0_at(points: list[dict], target: float) -> float:
    """Eb/N0 (dB) where -ln BER crosses -ln ``target``, linear interpolation of -ln BER vs Eb/N0; NaN if the
    measured range does not bracket it."""
    goal = -math.log(target)
    pts = sorted((p["ebn0_db"], p["neg_ln_ber"]) for p in points if p["bit_errors"] > 0)
    for (x0, y0), (x1, y1) in zip(pts, pts[1:]):
        if y0 <= goal <= y1 and y1 > y0:
            return x0 + (goal - y0) * (x1 - x0) / (y1 - y0)
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--code", required=True)
    parser.add_argument("--gru", required=True)
    parser.add_argument("--transformer", default=None, help="trained transformer-estimator checkpoint (optional)")
    parser.add_argument("--table", required=True, help="the GRU pipeline's evaluate ber_table.json (with baselines)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--ebn0", type=float, nargs="+", default=[3.0, 4.0, 5.0, 6.0, 7.0, 8.0])
    parser.add_argument("--max-frames", type=int, default=20000)
    parser.add_argument("--target-ber", type=float, default=1e-3)
    parser.add_argument("--speed-frames", type=int, default=4000)
    parser.add_argument("--bp-iterations", type=int, nargs="*", default=[5], help="extra BP baselines (same words)")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    code = get_code(args.code)
    models = {"gru": load_decoder(args.gru, code=code)}
    net_config = read_checkpoint(args.gru)["hyper_parameters"]["net_config"]
    if args.transformer:
        models["transformer"] = load_decoder(args.transformer, code=code)
    speed_only = {}
    if not args.transformer:  # no trained transformer: its speed and size only (they do not depend on the weights)
        speed_only["transformer (untrained, speed only)"] = build_network(code, {**net_config, "estimator": "transformer"}).eval()
    for iterations in args.bp_iterations:  # extra BP baselines on the same words
        models[f"bp L={iterations}"] = build_classical_decoder("bp", code, iterations=iterations)
    channel = decoder_channel(code, net_config)

    # BER of both estimators on the same words, then speed on the same LLR batch
    curves = {name: [r.to_dict() for r in evaluate(m, code, args.ebn0, max_frames=args.max_frames, min_frame_errors=100,
                                                    batch_size=5000, seed=0, channel=channel, progress=False)]
              for name, m in models.items()}
    g = torch.Generator().manual_seed(1)
    u = torch.randint(0, 2, (args.speed_frames, code.k), generator=g).float()
    c = torch.remainder(u @ torch.tensor(code.G, dtype=torch.float32), 2.0)
    llr = channel(c, 6.0, code.rate, g)
    everything = {**models, **speed_only}
    speed = {name: frames_per_second(m, llr) for name, m in everything.items()}
    params = {name: parameter_report(m) for name, m in everything.items() if isinstance(m, SBNDDecoder)}
    flops = {name: m.flops_per_frame() for name, m in everything.items()}

    table = json.loads(Path(args.table).read_text())
    reference = dict(table["decoders"])  # the evaluate stage's paired evaluation: model and baselines, same words
    osd = next(v for k, v in reference.items() if k.startswith("osd"))
    at_target = {name: ebn0_at(pts, args.target_ber) for name, pts in {**reference, **curves}.items()}
    gaps = {name: value - ebn0_at(osd, args.target_ber) for name, value in at_target.items()}

    lines = [f"## {code.name}, {channel.constellation.order}-{channel.constellation.modulation.value.upper()} "
             f"Gray, {channel.demapping.value} demapper: GRU vs transformer estimator (same words, same process)", "",
             "| Eb/N0 (dB) | " + " | ".join(f"BER {n} [95% CI] (frames)" for n in curves) + " |",
             "|---|" + "---|" * len(curves)]
    for i, e in enumerate(args.ebn0):
        cells = []
        for pts in curves.values():
            p = pts[i]
            cells.append(f"{p['ber']:.3g} [{p['ber_ci95'][0]:.2g}, {p['ber_ci95'][1]:.2g}] ({p['frames']})")
        lines.append(f"| {e:g} | " + " | ".join(cells) + " |")
    lines += ["", "| estimator | params | paper formula (1 bias/gate) | torch formula | FLOPs/frame | decode frames/s |",
              "|---|---|---|---|---|---|"]
    for name in params:
        p = params[name]
        lines.append(f"| {name} | {int(p['params'])} | {int(p.get('formula_paper', p['formula_torch']))} | "
                     f"{int(p['formula_torch'])} | {flops[name]} | {speed[name]:.0f} |")
    for name in sorted(set(models) - set(params)):
        lines.append(f"| {name} | 0 | - | - | {flops[name]} | {speed[name]:.0f} |")
    lines += ["", f"Eb/N0 at BER {args.target_ber:g} (linear interpolation of -ln BER vs Eb/N0 between bracketing points):", "",
              "| decoder | Eb/N0 (dB) | gap to OSD (dB) |", "|---|---|---|"]
    for name, value in at_target.items():
        lines.append(f"| {name} | {value:.2f} | {gaps[name]:+.2f} |")

    # Theorem 1: per label position, P(flip | b = 0) vs P(flip | b = 1)
    lines += ["", "Theorem 1 check (Es/N0, 200k symbols per point, exact demapper): p_j(0) / p_j(1) per label position j "
              "(MSB first), and the marginal p_j", "", "| constellation | Es/N0 (dB) | p_j(0) / p_j(1) | p_j | BSC (CIs overlap) |",
              "|---|---|---|---|---|"]
    channel_rows = []
    for mod, order in (("psk", 8), ("qam", 16)):
        const = make_constellation(mod, order)
        for es in (0.0, 5.0, 10.0, 15.0):
            s = label_flip_statistics(const, es, symbols=200_000, seed=7)
            b = const.bits_per_symbol
            channel_rows.append({"constellation": f"{order}-{mod}", **s.to_dict()})
            lines.append(f"| {order}-{mod.upper()} | {es:g} | "
                         + ", ".join(f"{s.probability(j, 0):.4f}/{s.probability(j, 1):.4f}" for j in range(b)) + " | "
                         + ", ".join(f"{s.probability(j):.4f}" for j in range(b)) + " | "
                         + ", ".join("yes" if s.symmetric(j) else "no" for j in range(b)) + " |")
    text = "\n".join(lines) + "\n"
    print(text)
    (out / "comparison.md").write_text(text)
    (out / "comparison.json").write_text(json.dumps({"curves": curves, "speed_frames_per_s": speed, "params": params,
                                                      "flops": flops, "ebn0_at_target": at_target, "gap_to_osd": gaps,
                                                      "channel_check": channel_rows}, indent=2))


if __name__ == "__main__":
    main()
