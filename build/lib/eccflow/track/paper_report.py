"""Paper-style result tables from the MLflow store: rows = codes, columns = methods.

Every evaluate stage run stores its paired evaluation (``ber_table.json``: the model and its baselines on the
same words, with the paired differences and the published values). :func:`collect` picks those runs (by
experiment, tags, family, stage label, code; the latest run or the registered champion per (code, family,
stage label)), :func:`build_report` lays them out as

* one table per Eb/N0: -ln(BER) [95% CI], FER and frame errors of every trained decoder, every baseline and the
  published value (points under 100 frame errors marked with a dagger);
* a compact "v4 / v5 / v6" table like the papers';
* the verdict of each trained decoder against BP-50 and OSD from the paired intervals;
* the SNR gap at target FERs of each method against BP-50 and OSD (log-linear interpolation of the FER curve
  between the measured Eb/N0; "-" when the target is outside the measured range),

and :func:`write_report` writes them as markdown and LaTeX with one PNG of BER and FER curves per code.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from eccflow.errors import ConfigError
from eccflow.eval.montecarlo import Evaluation, PointResult
from eccflow.eval.report import draw_rate, format_value

SELECTIONS = ("latest", "champion")
REFERENCE_BASELINES = ("bp L=50", "osd order 2")


@dataclass
class Entry:
    """One evaluate stage run: its code, family, stage label and paired evaluation."""

    code: str
    family: str
    stage: str
    run_id: str
    start_time: int
    evaluation: Evaluation
    model: str
    baselines: list[str]
    published: list[dict] = field(default_factory=list)

    @property
    def column(self) -> str:
        """Method column name: the model label, with the stage label when it is not plain ``evaluate``."""
        label = self.stage.split(":", 1)[1] if ":" in self.stage else ""
        return f"{self.model} [{label}]" if label else self.model


def _parse_tags(tags: Sequence[str]) -> dict[str, str]:
    out = {}
    for item in tags:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"a tag filter is key=value, got {item!r}")
        out[key] = value
    return out


def _quote(value: str) -> str:
    return "'" + value.replace("'", "\\'") + "'"


def collect(experiment: str = "eccflow", *, tags: Sequence[str] = (), families: Sequence[str] = (),
            stages: Sequence[str] = (), codes: Sequence[str] = (), select: str = "latest",
            log=print) -> list[Entry]:
    """Evaluate stage runs of ``experiment`` that match every filter, one per (code, family, stage label).

    ``stages``: stage labels (``evaluate``, ``evaluate:zeroshot``; default every ``evaluate*`` stage);
    ``select``: ``latest`` (newest run) or ``champion`` (the run that registered the champion of
    ``eccflow-<family>-<code>``). Runs stored before evaluations were paired are skipped with a note.
    """
    import mlflow
    from mlflow.tracking import MlflowClient

    from eccflow.track.mlflow_tracking import CHAMPION_ALIAS, configure_mlflow, registered_model_name

    if select not in SELECTIONS:
        raise ConfigError(f"unknown selection {select!r}; choose one of {list(SELECTIONS)}")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # one bar per run would flood the output
    uri = configure_mlflow()
    client = MlflowClient()
    found = client.get_experiment_by_name(experiment)
    if found is None:
        raise ConfigError(f"no experiment {experiment!r} in the MLflow store {uri}: run a pipeline first "
                          f"(make pipeline CODE=...)")
    filters = ["attributes.status = 'FINISHED'", "tags.cache = 'miss'"]
    filters += [f"tags.`{k}` = {_quote(v)}" for k, v in _parse_tags(tags).items()]
    runs = client.search_runs([found.experiment_id], filter_string=" and ".join(filters), max_results=50_000,
                              order_by=["attributes.start_time DESC"])
    chosen: dict[tuple[str, str, str], Entry] = {}
    skipped_old = 0
    for run in runs:
        run_tags = run.data.tags
        stage, family = run_tags.get("stage", ""), run_tags.get("family", "")
        if not (stage == "evaluate" or stage.startswith("evaluate:")):
            continue
        if (stages and stage not in stages) or (families and family not in families):
            continue
        entry = _load_entry(client, run, family, stage)
        if entry is None:
            skipped_old += 1
            continue
        if codes and entry.code not in codes:
            continue
        key = (entry.code, family, stage)
        if select == "latest":
            chosen.setdefault(key, entry)
            continue
        try:
            version = client.get_model_version_by_alias(registered_model_name(family, entry.code), CHAMPION_ALIAS)
        except mlflow.exceptions.MlflowException:
            continue
        if version.run_id == entry.run_id:
            chosen[key] = entry
    if skipped_old:
        log(f"note: {skipped_old} evaluate run(s) hold no paired evaluation (stored by an older eccflow); re-run "
            "their pipelines to include them")
    if not chosen:
        wanted = ", ".join(f"{name}={value}" for name, value in (
            ("experiment", experiment), ("tags", list(tags)), ("family", list(families)), ("stage", list(stages)),
            ("code", list(codes)), ("select", select)) if value)
        raise ConfigError(f"no evaluate run in {uri} matches {wanted}")
    return sorted(chosen.values(), key=lambda e: (e.code, e.family, e.stage))


def _load_entry(client, run, family: str, stage: str) -> Entry | None:
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = client.download_artifacts(run.info.run_id, "ber_table.json", tmp)
        except Exception:  # noqa: BLE001 - a run without the artifact is simply not a paired evaluation
            return None
        document = json.loads(Path(path).read_text())
    if not isinstance(document, dict) or "decoders" not in document or "model" not in document:
        return None
    channel = run.data.tags.get("channel")  # BICM runs form rows of their own: their baselines see another channel
    code = f"{document['code']} [{channel}]" if channel else document["code"]
    return Entry(code=code, family=family, stage=stage, run_id=run.info.run_id,
                 start_time=run.info.start_time, evaluation=Evaluation.from_dict(document), model=document["model"],
                 baselines=list(document["baselines"]),
                 published=[] if channel else list(document.get("published", [])))  # published rows are BPSK-AWGN


# ------------------------------------------------------------------------------------------------ layout
@dataclass
class Cell:
    point: PointResult | None = None
    published: float | None = None
    source: str = ""


@dataclass
class Report:
    codes: list[str]
    columns: list[str]
    ebn0_db: list[float]
    cells: dict[tuple[str, str, float], Cell]
    verdicts: list[dict]
    gaps: list[dict]
    curves: dict[str, dict[str, list[PointResult]]]
    published_points: dict[str, dict[str, list[tuple[float, float]]]]


def _point(points: list[PointResult], ebn0: float) -> PointResult | None:
    return next((p for p in points if p.ebn0_db == ebn0), None)


def snr_at_fer(points: Sequence[PointResult], target: float) -> float | None:
    """Eb/N0 (dB) where the FER curve crosses ``target``, interpolating log10(FER) linearly between the two
    measured points that bracket it; None when no pair brackets it."""
    pts = sorted((p.ebn0_db, p.fer) for p in points if p.fer > 0)
    for (x0, f0), (x1, f1) in zip(pts, pts[1:]):
        if f0 >= target >= f1 and f0 > f1:
            t = (math.log10(f0) - math.log10(target)) / (math.log10(f0) - math.log10(f1))
            return x0 + t * (x1 - x0)
    return None


def build_report(entries: Sequence[Entry], ebn0_db: Sequence[float] = (4.0, 5.0, 6.0),
                 target_fers: Sequence[float] = (1e-2, 1e-3)) -> Report:
    """Lay the selected runs out by code and method (see the module docstring)."""
    ebn0 = [float(e) for e in ebn0_db]
    for target in target_fers:
        if not 0 < target < 1:
            raise ConfigError(f"a target FER must lie in (0, 1), got {target}")
    codes = sorted({e.code for e in entries})
    models = list(dict.fromkeys(e.column for e in entries))
    baselines, published = [], []
    cells: dict[tuple[str, str, float], Cell] = {}
    curves: dict[str, dict[str, list[PointResult]]] = {c: {} for c in codes}
    published_points: dict[str, dict[str, list[tuple[float, float]]]] = {c: {} for c in codes}
    verdicts, gaps = [], []
    for code in codes:
        runs = [e for e in entries if e.code == code]
        for entry in runs:
            curves[code][entry.column] = entry.evaluation.curves[entry.model]
        # baselines from the run that decoded the most frames (the tightest intervals)
        richest = max(runs, key=lambda e: sum(p.frames for p in e.evaluation.curves[e.model]))
        for name in richest.baselines:
            if name in models:  # a registered trained decoder used as a baseline: its own column already
                continue
            if name not in baselines:
                baselines.append(name)
            curves[code][name] = richest.evaluation.curves[name]
        for entry in runs:
            for row in entry.published:
                is_model = row["decoder"] == entry.model
                column = f"published {row['published'].split(' (')[0]}"
                if not is_model and row["decoder"] not in richest.baselines:
                    continue
                if column not in published:
                    published.append(column)
                key = (code, column, float(row["ebn0_db"]))
                if key not in cells:
                    cells[key] = Cell(published=row["published_neg_ln_ber"], source=row["published"])
                    published_points[code].setdefault(column, []).append((float(row["ebn0_db"]), row["published_neg_ln_ber"]))
            for d in entry.evaluation.paired:
                if d.decoder == entry.model and d.baseline in REFERENCE_BASELINES and d.ebn0_db in ebn0:
                    verdicts.append({"code": code, "decoder": entry.column, "baseline": d.baseline, "ebn0_db": d.ebn0_db,
                                     "d_neg_ln_ber": d.d_neg_ln_ber, "d_neg_ln_ber_ci95": d.d_neg_ln_ber_ci95,
                                     "ber_verdict": d.ber_verdict, "d_fer": d.d_fer, "d_fer_ci95": d.d_fer_ci95,
                                     "fer_verdict": d.fer_verdict})
        for column, points in curves[code].items():
            for e in ebn0:
                cells[(code, column, e)] = Cell(point=_point(points, e))
        for target in target_fers:
            for column, points in curves[code].items():
                mine = snr_at_fer(points, target)
                row = {"code": code, "method": column, "target_fer": target, "ebn0_db": mine}
                for reference in REFERENCE_BASELINES:
                    theirs = snr_at_fer(curves[code][reference], target) if reference in curves[code] else None
                    row[f"gap_vs_{reference}"] = None if mine is None or theirs is None else mine - theirs
                gaps.append(row)
    return Report(codes=codes, columns=models + baselines + published, ebn0_db=ebn0, cells=cells, verdicts=verdicts,
                  gaps=gaps, curves=curves, published_points=published_points)


def _value_text(cell: Cell | None) -> str:
    """-ln(BER) of a cell (dagger: flagged), the published value, or ``-``."""
    if cell is None or (cell.point is None and cell.published is None):
        return "-"
    if cell.point is None:
        return f"{cell.published:.2f}"
    return format_value(cell.point.neg_ln_ber) + ("†" if cell.point.flagged else "")


def _cell_text(cell: Cell | None, latex: bool = False) -> str:
    """The value with its 95% interval, FER and frame errors (LaTeX: before :func:`_latex_escape`)."""
    value = _value_text(cell)
    if cell is None or cell.point is None:
        return value
    p = cell.point
    interval = f"[{format_value(p.neg_ln_ber_ci95[0])}, {format_value(p.neg_ln_ber_ci95[1])}]"
    if latex:
        return f"{value} {interval} ({p.fer:.1e}, {p.frame_errors})"
    return f"{value} {interval} · FER {p.fer:.1e} · {p.frame_errors} fe"


def _compact(report: Report, code: str, column: str) -> str:
    return " / ".join(_value_text(report.cells.get((code, column, e))) for e in report.ebn0_db)


def _fmt_gap(value: float | None) -> str:
    return "-" if value is None else f"{value:+.2f}"


def markdown_report(report: Report) -> str:
    """The report as markdown."""
    out = ["# Results by code and method", "",
           "-ln(BER) (natural log, higher is better) [frame-clustered 95% CI] · FER · frame errors (fe). "
           "† = under 100 frame errors (flagged, not a quotable result). Published values from the table shipped "
           "with eccflow (`eccflow/eval/data/published.csv`).", ""]
    header = "| code | " + " | ".join(report.columns) + " |"
    rule = "|---|" + "---|" * len(report.columns)
    out += [f"## -ln(BER) at {'/'.join(f'{e:g}' for e in report.ebn0_db)} dB", "", header, rule]
    for code in report.codes:
        out.append(f"| {code} | " + " | ".join(_compact(report, code, c) for c in report.columns) + " |")
    for e in report.ebn0_db:
        out += ["", f"## Eb/N0 = {e:g} dB", "", header, rule]
        for code in report.codes:
            out.append(f"| {code} | " + " | ".join(_cell_text(report.cells.get((code, c, e))) for c in report.columns) + " |")
    out += ["", "## Trained decoders against BP-50 and OSD-2 (paired, same words)", "",
            "| code | decoder | baseline | Eb/N0 (dB) | d -ln(BER) [95% CI] | BER | d FER [95% CI] | FER |",
            "|---|---|---|---:|---|---|---|---|"]
    for v in report.verdicts:
        lo, hi = v["d_neg_ln_ber_ci95"]
        d = "n/a" if math.isnan(v["d_neg_ln_ber"]) else f"{v['d_neg_ln_ber']:+.2f} [{lo:+.2f}, {hi:+.2f}]"
        out.append(f"| {v['code']} | {v['decoder']} | {v['baseline']} | {v['ebn0_db']:g} | {d} | {v['ber_verdict']} | "
                   f"{v['d_fer']:+.2e} [{v['d_fer_ci95'][0]:+.2e}, {v['d_fer_ci95'][1]:+.2e}] | {v['fer_verdict']} |")
    out += ["", "## SNR gap at a target FER (method minus reference, dB; negative: the method needs less)", "",
            "| code | method | target FER | Eb/N0 (dB) | gap vs BP-50 | gap vs OSD-2 |", "|---|---|---:|---:|---:|---:|"]
    for g in report.gaps:
        at = "-" if g["ebn0_db"] is None else f"{g['ebn0_db']:.2f}"
        out.append(f"| {g['code']} | {g['method']} | {g['target_fer']:.0e} | {at} | {_fmt_gap(g['gap_vs_bp L=50'])} | "
                   f"{_fmt_gap(g['gap_vs_osd order 2'])} |")
    return "\n".join(out) + "\n"


def _latex_escape(text: str) -> str:
    for a, b in (("\\", "\\textbackslash{}"), ("_", "\\_"), ("&", "\\&"), ("%", "\\%"), ("#", "\\#"), ("†", "$^\\dagger$")):
        text = text.replace(a, b)
    return text


def latex_report(report: Report) -> str:
    """The compact table and one table per Eb/N0 as LaTeX ``tabular``s (booktabs)."""
    spec = "l" + "c" * len(report.columns)
    head = "code & " + " & ".join(_latex_escape(c) for c in report.columns) + r" \\"
    parts = [f"% -ln(BER) at {'/'.join(f'{e:g}' for e in report.ebn0_db)} dB; dagger: under 100 frame errors",
             rf"\begin{{tabular}}{{{spec}}}", r"\toprule", head, r"\midrule"]
    parts += [_latex_escape(code) + " & " + " & ".join(_latex_escape(_compact(report, code, c)) for c in report.columns)
              + r" \\" for code in report.codes]
    parts += [r"\bottomrule", r"\end{tabular}", ""]
    for e in report.ebn0_db:
        parts += [f"% Eb/N0 = {e:g} dB: -ln(BER) [95% CI] (FER, frame errors)", rf"\begin{{tabular}}{{{spec}}}",
                  r"\toprule", head, r"\midrule"]
        parts += [_latex_escape(code) + " & " + " & ".join(
            _latex_escape(_cell_text(report.cells.get((code, c, e)), latex=True)) for c in report.columns) + r" \\"
            for code in report.codes]
        parts += [r"\bottomrule", r"\end{tabular}", ""]
    return "\n".join(parts)


def plot_report(report: Report, out_dir: Path) -> list[Path]:
    """One PNG per code: BER (solid) and FER (dashed) of every method, published BER as crosses."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for code in report.codes:
        fig, (ax_ber, ax_fer) = plt.subplots(1, 2, figsize=(11, 4.5))
        for name, points in report.curves[code].items():
            draw_rate(ax_ber, points, "ber", "-o", name, hollow_size=8)
            draw_rate(ax_fer, points, "fer", "--s", name, hollow_size=8)
        for name, values in report.published_points[code].items():
            ax_ber.plot([x for x, _ in values], [math.exp(-v) for _, v in values], "x:", markersize=7, label=name)
        for ax, title in ((ax_ber, "BER"), (ax_fer, "FER")):
            ax.set_yscale("log")
            ax.set_xlabel("Eb/N0 (dB)")
            ax.set_ylabel(title)
            ax.grid(True, which="both", alpha=0.3)
            ax.set_title(f"{code}: {title} (hollow: < 100 frame errors)")
        ax_ber.legend(fontsize=7)
        fig.tight_layout()
        slug = "".join(ch if ch.isalnum() or ch in "_-" else "_" for ch in code).strip("_")
        path = out_dir / f"curves_{slug}.png"
        fig.savefig(path, dpi=120)
        plt.close(fig)
        paths.append(path)
    return paths


def write_report(report: Report, out_dir: str | Path) -> list[Path]:
    """``report.md``, ``report.tex`` and ``curves_<code>.png`` in ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    md, tex = out_dir / "report.md", out_dir / "report.tex"
    md.write_text(markdown_report(report))
    tex.write_text(latex_report(report))
    return [md, tex, *plot_report(report, out_dir)]
