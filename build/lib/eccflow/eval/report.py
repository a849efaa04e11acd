"""Result tables (markdown, JSON) and BER/FER curves (PNG)."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Mapping, Sequence

from eccflow.eval.intervals import PairedDifference
from eccflow.eval.montecarlo import QUOTABLE_FRAME_ERRORS, PointResult


def format_value(x: float, digits: int = 2) -> str:
    """A -ln(BER) value for a table: ``inf`` where no bit error was seen."""
    return "inf" if math.isinf(x) else f"{x:.{digits}f}"


def _frame_errors(r: PointResult) -> str:
    return f"{r.frame_errors} (< {QUOTABLE_FRAME_ERRORS}, flagged)" if r.flagged else str(r.frame_errors)


def markdown_table(results: Sequence[PointResult], title: str | None = None) -> str:
    """-ln(BER) with its frame-clustered 95% interval, BER, FER with its Wilson interval, frames and errors
    per Eb/N0; points under 100 frame errors are flagged."""
    lines = [f"### {title}", ""] if title else []
    rule = next((r.stop_rule for r in results if r.stop_rule), "")
    if rule:
        lines += [f"Stop rule: `{rule}`.", ""]
    lines += [
        "| Eb/N0 (dB) | -ln(BER) | 95% CI | BER | FER | FER 95% CI | frames | bit errors | frame errors |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lo, hi = r.neg_ln_ber_ci95
        lines.append(
            f"| {r.ebn0_db:g} | {format_value(r.neg_ln_ber)} | [{format_value(lo)}, {format_value(hi)}] | {r.ber:.3e} | {r.fer:.3e} "
            f"| [{r.fer_ci95[0]:.2e}, {r.fer_ci95[1]:.2e}] | {r.frames} | {r.bit_errors} | {_frame_errors(r)} |"
        )
    return "\n".join(lines) + "\n"


def _signed(x: float, digits: int) -> str:
    return "n/a" if math.isnan(x) else ("+inf" if x == math.inf else "-inf" if x == -math.inf else f"{x:+.{digits}f}")


def paired_table(differences: Sequence[PairedDifference], title: str | None = None) -> str:
    """Decoder against baseline on the same words: the -ln(BER) and FER differences (positive: the decoder
    is better) with their paired 95% intervals, and the verdict each interval gives."""
    lines = [f"### {title}", ""] if title else []
    lines += ["| decoder | baseline | Eb/N0 (dB) | d -ln(BER) [95% CI] | BER verdict | d FER [95% CI] | FER verdict "
              "| frames | only decoder failed | only baseline failed |",
              "|---|---|---:|---|---|---|---|---:|---:|---:|"]
    for d in differences:
        lo, hi = d.d_neg_ln_ber_ci95
        flo, fhi = d.d_fer_ci95
        lines.append(f"| {d.decoder} | {d.baseline} | {d.ebn0_db:g} | {_signed(d.d_neg_ln_ber, 3)} "
                     f"[{_signed(lo, 3)}, {_signed(hi, 3)}] | {d.ber_verdict} | {_signed(d.d_fer, 4)} "
                     f"[{_signed(flo, 4)}, {_signed(fhi, 4)}] | {d.fer_verdict} | {d.frames} "
                     f"| {d.frames_only_decoder_failed} | {d.frames_only_baseline_failed} |")
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


def json_safe(value: object) -> object:
    """``value`` with every infinite or NaN float replaced by None (strict JSON), recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def write_json(results: Sequence[PointResult], path: str | Path, **fields: object) -> Path:
    """One JSON object per Eb/N0 (the ``eccflow eval`` contract); ``fields`` are added to each object."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [{**fields, **r.to_dict()} for r in results]
    path.write_text(json.dumps(json_safe(rows), indent=2))
    return path


def draw_rate(ax, points: Sequence[PointResult], metric: str, style: str, label: str, hollow_size: float = 7) -> None:
    """One decoder's ``metric`` (``ber`` or ``fer``) against Eb/N0 on ``ax``, its 95% intervals as error bars
    and the points under 100 frame errors circled hollow; points without errors are left out (log scale)."""
    pts = [r for r in points if getattr(r, metric) > 0]
    if not pts:
        return
    x = [r.ebn0_db for r in pts]
    y = [getattr(r, metric) for r in pts]
    ci = [getattr(r, f"{metric}_ci95") for r in pts]
    err = [[v - lo for v, (lo, _) in zip(y, ci)], [hi - v for v, (_, hi) in zip(y, ci)]]
    line = ax.errorbar(x, y, yerr=err, fmt=style, capsize=3, markersize=4, label=label)
    flagged = [(xi, yi) for xi, yi, r in zip(x, y, pts) if r.flagged]
    if flagged:
        ax.plot(*zip(*flagged), linestyle="none", marker="o", markersize=hollow_size, markerfacecolor="white",
                markeredgecolor=line[0].get_color())


def plot_curves(curves: Mapping[str, Sequence[PointResult]], path: str | Path, title: str = "") -> Path:
    """BER (solid) and FER (dashed) versus Eb/N0 on a log scale with their 95% intervals as error bars; a
    point under 100 frame errors is drawn hollow (flagged)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for label, results in curves.items():
        for metric, style in (("ber", "-o"), ("fer", "--s")):
            draw_rate(ax, results, metric, style, f"{label} {metric.upper()}")
    if any(r.flagged for results in curves.values() for r in results):
        ax.text(0.01, 0.01, "hollow: < 100 frame errors (flagged)", transform=ax.transAxes, fontsize=7)
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
