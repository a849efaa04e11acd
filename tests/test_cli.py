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
    rows = json.loads(path.read_text())
    assert [r["ebn0_db"] for r in rows] == [3.0, 4.0]
    for key in ("ebn0_db", "ber", "fer", "frames", "bit_errors", "frame_errors", "ber_ci95", "fer_ci95", "neg_ln_ber"):
        assert key in rows[0]
    assert (tmp_path / "bp.png").stat().st_size > 1000
    assert "-ln(BER)" in capsys.readouterr().out


def test_eval_errors_are_one_line(capsys):
    assert main(["eval", "--code", "BCH_n63_k46", "--decoder", "bp", "--ebn0", "4", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("eccflow: error: unknown code") and "bch_n63_k45" in err
    assert main(["eval", "--code", "BCH_n31_k16", "--decoder", "bp", "--ebn0", "--quiet"]) == 2
    assert "Eb/N0 list is empty" in capsys.readouterr().err
    assert main(["eval", "--code", "BCH_n31_k16", "--decoder", "bp", "--ebn0", "4", "--batch-size", "-3", "--quiet"]) == 2
    assert "batch_size" in capsys.readouterr().err
