"""Published values, baseline specs, stop rules, paired evaluation and the paper-style report."""
from __future__ import annotations

import json
import math

import pytest

from eccflow.cli import main
from eccflow.codes import get_code
from eccflow.decoders.factory import build_classical_decoder
from eccflow.errors import ConfigError
from eccflow.eval import evaluate, evaluate_paired, stop_rule
from eccflow.eval.baselines import parse_baseline
from eccflow.eval.published import load_published, published_comparison, published_for, published_method
from eccflow.track.paper_report import Entry, build_report, markdown_report, snr_at_fer, write_report
from conftest import shrunk


def test_shipped_published_values():
    rows = load_published()
    assert len(rows) > 500 and all(r.source and r.table for r in rows)
    ecct = published_for("BCH_n63_k45", "ECCT", layers=2, d_model=32)
    assert [(r.ebn0_db, r.neg_ln_ber) for r in ecct] == [(4.0, 4.47), (5.0, 5.88), (6.0, 7.81)]
    bp50 = published_for("LDPC_n49_k24", "BP", iterations=50)
    assert [r.neg_ln_ber for r in bp50][:3] == [6.23, 8.19, 11.72] and bp50[0].table == "DDECC Table 1"
    assert published_for("BCH_n31_k16", "AECCT", layers=6, d_model=128)[0].neg_ln_ber == 7.01
    # AECCT's Polar(64,48) BP row is a copy of Polar(64,32)'s: only DDECC's row is shipped
    assert {r.table for r in published_for("POLAR_n64_k48", "BP", iterations=5)} == {"DDECC Table 1"}
    assert published_method({"family": "ecct", "layers": 2, "d_model": 32}) == ("ECCT", {"layers": 2, "d_model": 32})
    assert published_method({"family": "fecct", "layers": 2, "d_model": 32}) is None  # no verified FECCT table


def test_malformed_published_file_names_file_and_line(tmp_path):
    header = "source,table,code,method,layers,d_model,iterations,ebn0_db,neg_ln_ber,note\n"
    path = tmp_path / "published.csv"
    path.write_text("# comment\n" + header + "paper,T1,BCH_n31_k16,BP,,,5,4,4.63,\npaper,T1,BCH_n31_k16,BP,,,5,five,5.88,\n")
    with pytest.raises(ConfigError, match=r"published.csv:4: ebn0_db and neg_ln_ber must be numbers"):
        load_published(path)
    path.write_text(header + "paper,T1,BCH_n31_k16,BP,,,5,4\n")
    with pytest.raises(ConfigError, match=r"published.csv:2: expected 10 columns"):
        load_published(path)
    path.write_text("code,value\n")
    with pytest.raises(ConfigError, match="header must be"):
        load_published(path)
    path.write_text(header + "paper,T1,BCH_n31_k16,BP,two,,5,4,4.6,\n")
    with pytest.raises(ConfigError, match="column 'layers' must be an integer"):
        load_published(path)
    with pytest.raises(ConfigError, match="does not exist"):
        load_published(tmp_path / "missing.csv")


def test_baseline_specs():
    assert parse_baseline("bp:50").label == "bp L=50" and parse_baseline("bp:50").prefix == "bp50_"
    assert parse_baseline("bp", iterations=20).prefix == "bp20_" and parse_baseline("osd").label == "osd order 2"
    assert parse_baseline("hard").prefix == "hard_" and parse_baseline("hard").label == "hard decision"
    for bad, message in (("ldpc", "unknown baseline"), ("bp:x", "must be an integer"), ("osd:3", "order must be"),
                         ("hard:2", "takes no parameter"), (5, "a baseline is a string")):
        with pytest.raises(ConfigError, match=message):
            parse_baseline(bad)
    long_code = get_code("BCH_n255_k207")
    assert "too long for OSD" in parse_baseline("osd:2").too_long(long_code, 128)
    assert parse_baseline("bp:5").too_long(long_code, 128) is None


def test_stop_rules():
    paper, strict, budget = stop_rule("paper", 10**6), stop_rule("strict", 10**6), stop_rule("budget", 5000)
    assert not paper.done(99_999, 500) and not paper.done(200_000, 100) and paper.done(100_000, 101)
    assert not strict.done(10**5, 499) and strict.done(10, 500)
    assert not budget.done(4999, 10**6) and budget.done(5000, 0)
    with pytest.raises(ConfigError, match="unknown stop rule 'fast'"):
        stop_rule("fast", 1000)


def test_paired_evaluation_same_words_and_flags():
    code = get_code("BCH_n31_k16")
    bp5, bp20 = build_classical_decoder("bp", code, iterations=5), build_classical_decoder("bp", code, iterations=20)
    kwargs = dict(rule="budget", max_frames=4000, batch_size=1000, seed=3, progress=False)
    both = evaluate_paired({"bp5": bp5, "bp5 again": bp5, "bp20": bp20}, code, [3.0, 6.0], **kwargs)
    alone = evaluate(bp20, code, [3.0, 6.0], **kwargs)
    assert [p.bit_errors for p in alone] == [p.bit_errors for p in both.curves["bp20"]]  # same words whatever runs
    same = [d for d in both.paired if d.decoder == "bp5 again" and d.baseline == "bp5"]
    assert all(d.d_fer == 0 and d.d_fer_ci95[0] <= 0 <= d.d_fer_ci95[1] and d.fer_verdict == "not resolved" for d in same)
    assert all(d.d_neg_ln_ber == pytest.approx(0) and d.d_neg_ln_ber_ci95[1] - d.d_neg_ln_ber_ci95[0] < 1e-6
               for d in same)
    at3 = next(d for d in both.paired if d.decoder == "bp20" and d.baseline == "bp5" and d.ebn0_db == 3.0)
    assert at3.ber_verdict == "better"  # more iterations help at 3 dB on 4000 words
    flagged = {p.ebn0_db: p.flagged for p in both.curves["bp20"]}
    assert flagged[3.0] is False and flagged[6.0] is True  # few frame errors at 6 dB: flagged, not quotable
    assert all(p.stop_rule == "budget" for p in both.curves["bp5"])
    with pytest.raises(ConfigError, match="two different decoders"):
        evaluate_paired({"bp5": bp5}, code, [3.0], pairs=[("bp5", "bp5")], **kwargs)


def _entry(code_name: str, ebn0, family: str = "ecct", stage: str = "evaluate") -> Entry:
    code = get_code(code_name)
    model = "ecct N=2 d=32"
    decoders = {model: build_classical_decoder("minsum", code, iterations=5),
                "bp L=5": build_classical_decoder("bp", code, iterations=5),
                "bp L=50": build_classical_decoder("bp", code, iterations=50),
                "osd order 2": build_classical_decoder("osd", code, order=2)}
    evaluation = evaluate_paired(decoders, code, ebn0, pairs=[(model, b) for b in list(decoders)[1:]], rule="budget",
                                 max_frames=1500, batch_size=1500, seed=1, progress=False)
    methods = {model: ("ECCT", {"layers": 2, "d_model": 32}), "bp L=5": ("BP", {"iterations": 5}),
               "bp L=50": ("BP", {"iterations": 50}), "osd order 2": None}
    published = published_comparison(code.name, methods, evaluation.curves)
    return Entry(code=code.name, family=family, stage=stage, run_id="r", start_time=0, evaluation=evaluation,
                 model=model, baselines=list(decoders)[1:], published=published)


def test_report_layout_and_files(tmp_path):
    entries = [_entry("BCH_n63_k45", [3.0, 4.0]), _entry("POLAR_n64_k32", [3.0, 4.0], stage="evaluate:zeroshot")]
    report = build_report(entries, ebn0_db=[3.0, 4.0], target_fers=[1e-1])
    assert report.codes == ["BCH_n63_k45", "POLAR_n64_k32"]
    assert {"ecct N=2 d=32", "ecct N=2 d=32 [zeroshot]", "bp L=50", "osd order 2", "published ECCT N=2 d=32",
            "published BP L=5"} <= set(report.columns)
    text = markdown_report(report)
    assert "| BCH_n63_k45 |" in text and "4.47" in text  # the published ECCT row at 4 dB
    assert "against BP-50 and OSD-2" in text and ("better" in text or "worse" in text or "not resolved" in text)
    paths = write_report(report, tmp_path)
    assert {p.name for p in paths} == {"report.md", "report.tex", "curves_BCH_n63_k45.png", "curves_POLAR_n64_k32.png"}
    assert "\\begin{tabular}" in (tmp_path / "report.tex").read_text()
    assert all(p.stat().st_size > 1000 for p in paths if p.suffix == ".png")


def test_snr_at_fer_interpolates_log_linearly():
    from eccflow.eval.montecarlo import point_from_counts

    points = [point_from_counts(e, 1000, 10, 0, 0, f) for e, f in ((4.0, 100), (5.0, 10), (6.0, 1))]
    assert snr_at_fer(points, 1e-2) == pytest.approx(5.0)
    assert snr_at_fer(points, math.sqrt(1e-1 * 1e-2)) == pytest.approx(4.5)
    assert snr_at_fer(points, 1e-4) is None


@pytest.mark.slow
def test_report_command_on_a_store(isolated_mlflow, tmp_path, capsys):
    from eccflow.pipelines import run_pipeline

    assert main(["report", "--out", str(tmp_path / "r")]) == 2  # empty store
    assert "run a pipeline first" in capsys.readouterr().err
    tiny = shrunk("data.batches_per_epoch=3", "data.batch_size=64", "stages.evaluate.max_frames=2000",
                  "stages.evaluate.batch_size=1000", "stages.evaluate.ebn0_db=[3.0, 4.0]",
                  "tracking.champion_metric=neg_ln_ber_4dB")
    summary = run_pipeline("BCH_n31_k16", "neural_bp", overrides=tiny, log=lambda _: None)
    document = json.loads(open(summary["stages"]["evaluate"]["outputs"]["ber_table"]).read())
    assert document["stop_rule"] == "paper" and document["baselines"] == ["hard decision", "bp L=5", "bp L=50",
                                                                          "osd order 2"]
    assert {(d["decoder"], d["baseline"]) for d in document["paired"]} == {
        ("neural_bp L=5", b) for b in document["baselines"]}
    assert any(r["published"].startswith("BP L=5") for r in document["published"])  # BCH(31,16) BP-5 (AECCT Table 1)
    assert main(["report", "--out", str(tmp_path / "r"), "--ebn0", "3", "4", "--select", "champion"]) == 0
    out = capsys.readouterr().out
    assert "| BCH_n31_k16 |" in out and "published BP L=5" in out
    assert (tmp_path / "r" / "report.tex").is_file() and (tmp_path / "r" / "curves_BCH_n31_k16.png").is_file()
    assert main(["report", "--out", str(tmp_path / "r"), "--family", "ecct"]) == 2  # a filter that matches nothing
    err = capsys.readouterr().err
    assert err.startswith("eccflow: error: no evaluate run in") and "family=['ecct']" in err
    assert main(["report", "--select", "best"]) == 2
    assert "unknown selection 'best'" in capsys.readouterr().err


def test_evaluate_stage_skips_osd_on_a_long_code_with_a_note(tmp_path):
    from eccflow.pipelines.runner import StageContext
    from eccflow.pipelines.stages.evaluate import baseline_decoders

    notes: list[str] = []
    config = {"stages": {"evaluate": {"baselines": ["hard", "bp:5", "osd:2"], "osd_max_k": 128, "osd_order": 2}}}
    ctx = StageContext("evaluate", config, get_code("BCH_n255_k207"), {}, tmp_path, "run", "sqlite://", notes.append)
    decoders, prefixes, _, skipped = baseline_decoders(ctx, 5, "cpu")
    assert list(decoders) == ["hard decision", "bp L=5"] and prefixes == {"hard decision": "hard_", "bp L=5": "bp5_"}
    assert skipped[0]["baseline"] == "osd:2" and "k = 207 > 128" in notes[0]
