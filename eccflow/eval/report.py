"""Result tables (markdown, JSON) and BER/FER curves (PNG)."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Mapping, Sequence

from eccflow.eval.montecarlo import PointResult


def _fmt(x: float, digits: int = 2) -> str:
    return "inf" if math.isinf(x) else f"{x:.{digits}f}"


def markdown_table(results: Sequence[PointResult], title: str | None = None) -> str:
    """-ln(BER) with its Wilson 95% interval, BER, FER, frames and errors per Eb/N0."""
    lines = [f"### {title}", ""] if title else []
    lines += [
        "| Eb/N0 (dB) | -ln(BER) | 95% CI | BER | FER | frames | bit errors | frame errors |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lo, hi = r.neg_ln_ber_ci95
        lines.append(
            f"| {r.ebn0_db:g} | {_fmt(r.neg_ln_ber)} | [{_fmt(lo)}, {_fmt(hi)}] | {r.ber:.3e} | {r.fer:.3e} "
            f"| {r.frames} | {r.bit_errors} | {r.frame_errors} |"
        )
    return "\n".join(lines) + "\n"


def write_markdown_report(path: str | Path, title: str, command: str, columns: Sequence[str],
                          rows: Sequence[str]) -> Path:
    """A benchmark's result file: ``# title``, the command that made it, and a table of pre-formatted ``rows``
    under ``columns`` (first column left-aligned, the rest right-aligned)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rule = "|---|" + "---:|" * (len(columns) - 1)
    path.write_text("\n".join([f"# {title}", "", f"Command: `{command}`", "", "| " + " | ".join(columns) + " |",
                               rule, *rows, ""]))
    return path


def write_json(results: Sequence[PointResult], path: str | Path, **fields: object) -> Path:
    """One JSON object per Eb/N0 (the ``eccflow eval`` contract); ``fields`` are added to each object."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [{**fields, **r.to_dict()} for r in results]
    path.write_text(json.dumps(rows, indent=2, default=lambda v: None if isinstance(v, float) and math.isinf(v) else v))
    return path


def plot_curves(curves: Mapping[str, Sequence[PointResult]], path: str | Path, title: str = "") -> Path:
    """BER (solid) and FER (dashed) versus Eb/N0 on a log scale, Wilson intervals as error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for label, results in curves.items():
        for metric, style in (("ber", "-o"), ("fer", "--s")):
            pts = [r for r in results if getattr(r, metric) > 0]
            if not pts:
                continue
            x = [r.ebn0_db for r in pts]
            y = [getattr(r, metric) for r in pts]
            ci = [getattr(r, f"{metric}_ci95") for r in pts]
            err = [[v - lo for v, (lo, _) in zip(y, ci)], [hi - v for v, (_, hi) in zip(y, ci)]]
            ax.errorbar(x, y, yerr=err, fmt=style, capsize=3, markersize=4, label=f"{label} {metric.upper()}")
    ax.set_yscale("log")
    ax.set_xlabel("Eb/N0 (dB)")
    ax.set_ylabel("error rate")
    ax.grid(True, which="both", alpha=0.3)
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
