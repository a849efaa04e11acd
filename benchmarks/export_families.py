"""Every decoder family exported as ONNX and TorchScript: checked against the eager decoder and timed beside it.

    .venv/bin/python benchmarks/export_families.py [--frames 1000] [--out benchmarks/results/export.md]

Each family's network is built from its decoder file at quick size (untrained weights: export is about the
graph, not the decoder's quality), saved as a checkpoint and exported with ``eccflow export`` 's library call.
A row that fails says why. The second table measures the float32 rounding that the check's tolerance is built on:
ONNX Runtime against eager, and eager float32 against eager float64, for sum-product BP.
"""
from __future__ import annotations

import argparse
import datetime
import platform
import sys
import tempfile
from pathlib import Path

import torch

from eccflow.codes import get_code
from eccflow.config import compose
from eccflow.decoders.message_passing import BeliefPropagationDecoder
from eccflow.errors import EccflowError
from eccflow.export import ExportedDecoder, channel_words, export_decoder, float32_error, write_onnx
from eccflow.lit import load_decoder, save_decoder
from eccflow.lit.families import build_network

FAMILIES = [  # label, pipeline whose decoder file builds it (None: classical BP), code, overrides
    ("BP sum-product, 5 iterations", None, "BCH_n63_k45", {"check_update": "sum-product"}),
    ("BP min-sum, 5 iterations", None, "BCH_n63_k45", {"check_update": "min-sum"}),
    ("neural BP", "neural_bp", "BCH_n63_k45", {}),
    ("EW-GNN", "ewgnn", "BCH_n63_k45", {}),
    ("ECCT N=2 d=32", "ecct", "BCH_n63_k45", {}),
    ("AECCT N=2 d=32", "aecct", "BCH_n63_k45", {}),
    ("FECCT N=4 d=64", "fecct", "BCH_n63_k45", {}),
    ("NWD (window chain)", "nwd", "scldpc_dv3_dc6_w3_L6_M10", {}),
    ("SBND", "sbnd", "BCH_n63_k45", {}),
]


def decoder_of(pipeline: str | None, code_name: str, extra: dict, folder: Path) -> torch.nn.Module:
    """The family's network, written as a checkpoint and loaded back as ``eccflow export --model`` would."""
    code = get_code(code_name)
    if pipeline is None:
        return BeliefPropagationDecoder(code, iterations=5, **extra)
    config = {k: v for k, v in compose(code_name, pipeline, "quick")["decoder"].items() if k != "wd_normalization"}
    torch.manual_seed(0)
    path = save_decoder(build_network(code, config), config, code.name, folder / f"{pipeline}.ckpt")
    return load_decoder(path)


def family_rows(frames: int, folder: Path) -> list[str]:
    lines = ["| decoder | code | format | file | bits agree | max LLR diff | tolerance | eager frames/s | "
             "exported frames/s | exported / eager |", "|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for label, pipeline, code_name, extra in FAMILIES:
        decoder, code = decoder_of(pipeline, code_name, extra, folder), get_code(code_name)
        for fmt, suffix in (("onnx", "onnx"), ("torchscript", "pt")):
            try:
                r = export_decoder(decoder, code, fmt, folder / f"{label.split()[0]}.{suffix}", frames=frames)
            except EccflowError as error:
                lines.append(f"| {label} | {code.name} | {fmt} | fails: {str(error)[:200]} | | | | | | |")
            else:
                lines.append(f"| {label} | {code.name} | {fmt} | {r.file_bytes / 1024:.0f} KiB | {r.bits_agree:.4%} | "
                             f"{r.max_llr_difference:.2g} | {r.tolerance:.2g} | {r.eager_frames_per_s:,.0f} | "
                             f"{r.exported_frames_per_s:,.0f} | {r.exported_frames_per_s / r.eager_frames_per_s:.2f}x |")
            print(lines[-1], flush=True)
    return lines


def rounding_rows(frames: int, folder: Path) -> list[str]:
    """ONNX Runtime vs eager and eager float32 vs float64, sum-product BP: what the tolerance factor rests on."""
    lines = ["| code | iterations | Eb/N0 | max ORT - eager | max eager f32 - f64 | ratio | bits ORT = eager |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for code_name in ("BCH_n31_k16", "LDPC_n121_k60"):
        code = get_code(code_name)
        for iterations in (5, 20):
            module = ExportedDecoder(BeliefPropagationDecoder(code, iterations=iterations))
            run = write_onnx(module, channel_words(code, 8, 4.0, 0), folder / "bp.onnx")
            for seed, ebn0 in enumerate((3.0, 4.0, 6.0)):
                llr = channel_words(code, frames, ebn0, seed)
                with torch.no_grad():
                    bits, eager = module(llr)
                ort_bits, ort = run(llr)
                own = float32_error(module, llr, eager)
                gap = float((ort - eager).abs().max())
                lines.append(f"| {code.name} | {iterations} | {ebn0:g} | {gap:.3g} | {own:.3g} | "
                             f"{gap / own if own else 0:.2f} | {float((ort_bits == bits).float().mean()):.5%} |")
                print(lines[-1], flush=True)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=1000)
    parser.add_argument("--out", default="benchmarks/results/export.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="eccflow-export-") as scratch:
        folder = Path(scratch)
        families = family_rows(args.frames, folder)
        rounding = rounding_rows(args.frames, folder)
    lines = ["# Exported decoders: ONNX and TorchScript beside eager", "",
             f"- Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; "
             f"{platform.processor() or platform.machine()}, torch {torch.__version__}, one CPU thread",
             f"- Command: `.venv/bin/python {' '.join(sys.argv)}`",
             f"- Check words: {args.frames} channel words at 4 dB (random codewords), batch {args.frames}; "
             "times are medians of 5 alternating runs", "",
             "## Every family", "", *families, "",
             "## Float32 rounding behind the tolerance (sum-product BP, ONNX Runtime)", "", *rounding, ""]
    Path(args.out).write_text("\n".join(lines))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
