"""Wall time of the SAP spectral signature and of Laplacian eigenpairs on codes up to n ~ 1000+.

    .venv/bin/python benchmarks/spectra_timing.py [--out benchmarks/results/spectra_timing.md]

Each entry: the median of 5 calls after one warm-up (scipy sparse solvers, one thread).
"""
from __future__ import annotations

import argparse
import datetime
import platform
from pathlib import Path

from eccflow.codes import get_code
from eccflow.eval.timing import alternating_medians
from eccflow.codes.spectra import laplacian_eigenpairs, spectral_signature

CODES = ["BCH_n63_k45", "LDPC_n121_k60", "nr5g_bg2_z20", "nr5g_bg2_z52", "nr5g_bg1_z48"]



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results/spectra_timing.md")
    args = parser.parse_args()
    lines = [
        "# Spectral signature and Laplacian eigenpairs: wall time",
        "",
        f"- Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; {platform.processor() or platform.machine()}",
        "- Command: `.venv/bin/python benchmarks/spectra_timing.py`; median of 5 calls after a warm-up.",
        "",
        "| code | n | m | edges | signature (2 largest singular values) | signature ms | 16 Laplacian eigenpairs ms |",
        "|---|---:|---:|---:|---|---:|---:|",
    ]
    for name in CODES:
        code = get_code(name)
        signature = spectral_signature(code)
        sig_ms = 1e3 * alternating_medians([lambda: spectral_signature(code)], 5)[0]
        lap_ms = 1e3 * alternating_medians([lambda: laplacian_eigenpairs(code, 16, normalized=True)], 5)[0]
        lines.append(f"| {code.name} | {code.n} | {code.num_checks} | {code.num_edges} | "
                     f"{signature[0]:.4f}, {signature[1]:.4f} | {sig_ms:.1f} | {lap_ms:.1f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
