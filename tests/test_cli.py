import json

from eccflow.cli import main


def test_codes_list(capsys):
    assert main(["codes", "list"]) == 0
    out = capsys.readouterr().out
    assert "BCH_n63_k45" in out and "LDPC_n49_k24" in out and "constructions" in out


def test_codes_show_json(capsys):
    assert main(["codes", "show", "ldpc_n49_k24", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["n"], info["k"], info["rows"], info["rank"]) == (49, 24, 28, 25)
    assert info["spectral_signature"] == [5.2915, 2.6458]
    assert info["girth"] >= 6  # SOURCE.md: no 4-cycles


def test_eval_contract(tmp_path, capsys):
    path = tmp_path / "bp.json"
    rc = main(["eval", "--code", "BCH_n31_k16", "--decoder", "bp", "--iters", "3", "--ebn0", "3", "4",
               "--max-frames", "2000", "--batch-size", "1000", "--json", str(path), "--plot", str(tmp_path / "bp.png"),
               "--quiet"])
    assert rc == 0
    document = json.loads(path.read_text())
    assert document["code"] == "BCH_n31_k16" and document["stop_rule"] == "errors>=100" and document["paired"] == []
    rows = document["decoders"]["bp L=3"]
    assert [r["ebn0_db"] for r in rows] == [3.0, 4.0]
    for key in ("ebn0_db", "ber", "fer", "frames", "bit_errors", "frame_errors", "ber_ci95", "fer_ci95", "neg_ln_ber",
                "squared_bit_errors", "stop_rule", "flagged"):
        assert key in rows[0]
    assert (tmp_path / "bp.png").stat().st_size > 1000
    assert "-ln(BER)" in capsys.readouterr().out


def test_eval_several_decoders_are_paired(tmp_path, capsys):
    path = tmp_path / "paired.json"
    rc = main(["eval", "--code", "BCH_n31_k16", "--decoder", "hard", "--decoder", "bp:5", "--decoder", "osd:2",
               "--ebn0", "3", "--rule", "budget", "--max-frames", "3000", "--batch-size", "1000", "--json", str(path),
               "--quiet"])
    assert rc == 0
    document = json.loads(path.read_text())
    assert list(document["decoders"]) == ["hard decision", "bp L=5", "osd order 2"]
    assert {r["frames"] for rows in document["decoders"].values() for r in rows} == {3000}  # same words
    pairs = {(d["decoder"], d["baseline"]): d for d in document["paired"]}
    assert set(pairs) == {("bp L=5", "hard decision"), ("osd order 2", "hard decision"), ("osd order 2", "bp L=5")}
    assert pairs[("osd order 2", "hard decision")]["ber_verdict"] == "better"
    assert "paired differences" in capsys.readouterr().out


def test_eval_bad_stop_rule_and_long_osd_are_one_line(capsys):
    assert main(["eval", "--code", "BCH_n31_k16", "--decoder", "bp", "--ebn0", "4", "--rule", "fast", "--quiet"]) == 2
    assert capsys.readouterr().err.startswith("eccflow: error: unknown stop rule 'fast'")
    assert main(["eval", "--code", "BCH_n255_k207", "--decoder", "osd:2", "--ebn0", "4", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("eccflow: error: OSD order 2 skipped on BCH_n255_k207: k = 207 > 128") and "\n" == err[-1:]


def test_eval_errors_are_one_line(capsys):
    assert main(["eval", "--code", "BCH_n63_k46", "--decoder", "bp", "--ebn0", "4", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("eccflow: error: unknown code") and "bch_n63_k45" in err
    assert main(["eval", "--code", "BCH_n31_k16", "--decoder", "bp", "--ebn0", "--quiet"]) == 2
    assert "--ebn0 is an empty list" in capsys.readouterr().err
    assert main(["eval", "--code", "BCH_n31_k16", "--decoder", "bp", "--ebn0", "4", "--batch-size", "-3", "--quiet"]) == 2
    assert "--batch-size must be a positive integer" in capsys.readouterr().err


def test_eval_a_checkpoint_beside_baselines(tmp_path):
    from eccflow.codes import get_code
    from eccflow.config import read_group
    from eccflow.lit.families import build_network
    from eccflow.lit import save_decoder

    code = get_code("BCH_n15_k7")
    config = read_group("decoders", "neural_bp")
    path = save_decoder(build_network(code, config), config, code.name, tmp_path / "nbp.ckpt")
    out = tmp_path / "model.json"
    assert main(["eval", "--code", code.name, "--checkpoint", str(path), "--decoder", "bp:5", "--ebn0", "3",
                 "--rule", "budget", "--max-frames", "2000", "--batch-size", "1000", "--json", str(out), "--quiet"]) == 0
    document = json.loads(out.read_text())
    assert list(document["decoders"]) == ["model nbp.ckpt", "bp L=5"]
    untrained = next(d for d in document["paired"] if d["decoder"] == "bp L=5")  # unit weights: neural BP = BP
    assert untrained["frames_only_decoder_failed"] == untrained["frames_only_baseline_failed"] == 0
