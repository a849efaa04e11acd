import json
import math

import pytest
import torch

from eccflow.codes import get_code
from eccflow.decoders.base import DecoderOutput
from eccflow.decoders.message_passing import BeliefPropagationDecoder
from eccflow.errors import ConfigError
from eccflow.eval import BitErrorRate, FrameErrorRate, evaluate, markdown_table, plot_curves, wilson_interval, write_json


class HardDecision(torch.nn.Module):
    def forward(self, llr):
        return DecoderOutput(llr=llr, bits=(llr < 0).float())


def test_wilson_interval_known_values():
    # Values from the closed form (Wilson 1927), z = 1.96.
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson_interval(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert wilson_interval(100, 10000) == pytest.approx((0.008229, 0.012147), abs=1e-5)


def test_metrics_count():
    ber, fer = BitErrorRate(), FrameErrorRate()
    truth = torch.zeros(4, 5)
    guess = truth.clone()
    guess[0, :2] = 1
    guess[3, 4] = 1
    ber.update(guess, truth)
    fer.update(guess, truth)
    assert ber.compute().item() == pytest.approx(3 / 20)
    assert fer.compute().item() == pytest.approx(2 / 4)


def test_stopping_rule_and_reproducibility():
    code = get_code("BCH_n31_k16")
    dec = HardDecision()
    by_errors = evaluate(dec, code, [2.0], min_frame_errors=50, max_frames=10**6, batch_size=100, progress=False)[0]
    assert by_errors.frame_errors >= 50 and by_errors.frames % 100 == 0
    assert by_errors.frame_errors - 50 < 100  # stopped at the first batch that reached the target
    by_frames = evaluate(dec, code, [8.0], min_frame_errors=10**6, max_frames=1234, batch_size=500, progress=False)[0]
    assert by_frames.frames == 1234
    again = evaluate(dec, code, [2.0], min_frame_errors=50, max_frames=10**6, batch_size=100, progress=False)[0]
    assert again.bit_errors == by_errors.bit_errors
    other = evaluate(dec, code, [2.0], min_frame_errors=50, max_frames=10**6, batch_size=100, seed=1, progress=False)[0]
    assert other.bit_errors != by_errors.bit_errors


@pytest.mark.statistical
def test_uncoded_hard_decision_ber_matches_theory():
    """Hard decisions on BPSK-AWGN: BER = Q(sqrt(2 R Eb/N0)); the interval must cover it."""
    code = get_code("BCH_n63_k45")
    r = evaluate(HardDecision(), code, [3.0], min_frame_errors=10**9, max_frames=20000, batch_size=5000, progress=False)[0]
    ebn0 = 10 ** 0.3
    expected = 0.5 * math.erfc(math.sqrt(code.rate * ebn0))
    # Bits are independent under hard decisions, so the Wilson interval on the BER is valid.
    assert r.ber_ci95[0] <= expected <= r.ber_ci95[1]


@pytest.mark.statistical
@pytest.mark.parametrize("name,iters,published", [("BCH_n63_k45", 5, 4.08), ("LDPC_n49_k24", 5, 5.30)])
def test_bp_reproduces_published_value_at_4db(name, iters, published):
    """Published -ln(BER) at 4 dB within 0.2, with 1000+ frame errors
    (frame-clustered interval narrower than 0.2)."""
    code = get_code(name)
    r = evaluate(BeliefPropagationDecoder(code, iters), code, [4.0], min_frame_errors=1000, max_frames=200_000,
                 batch_size=5000, seed=11, progress=False)[0]
    assert r.neg_ln_ber_ci95[1] - r.neg_ln_ber_ci95[0] < 0.2
    assert abs(r.neg_ln_ber - published) <= 0.2


def test_reports(tmp_path):
    code = get_code("BCH_n31_k16")
    results = evaluate(HardDecision(), code, [1.0, 2.0], max_frames=200, batch_size=100, progress=False)
    path = write_json(results, tmp_path / "r.json", code=code.name)
    rows = json.loads(path.read_text())
    assert [row["ebn0_db"] for row in rows] == [1.0, 2.0]
    for key in ("ebn0_db", "ber", "fer", "frames", "bit_errors", "frame_errors", "ber_ci95", "fer_ci95", "neg_ln_ber"):
        assert key in rows[0]
    assert "| 1 |" in markdown_table(results)
    png = plot_curves({"hd": results}, tmp_path / "r.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"batch_size": float("nan")}, "batch_size"),
        ({"batch_size": -5}, "batch_size"),
        ({"batch_size": 2.5}, "batch_size"),
        ({"min_frame_errors": 0}, "min_frame_errors"),
        ({"max_frames": 0}, "max_frames"),
        ({"codewords": "ones"}, "codewords"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        evaluate(HardDecision(), get_code("BCH_n31_k16"), [4.0], progress=False, **kwargs)


def test_empty_or_nan_ebn0_list():
    with pytest.raises(ConfigError, match="Eb/N0 list is empty"):
        evaluate(HardDecision(), get_code("BCH_n31_k16"), [], progress=False)
    with pytest.raises(ConfigError, match="finite"):
        evaluate(HardDecision(), get_code("BCH_n31_k16"), [float("nan")], progress=False)


def test_wilson_interval_contains_the_estimate_at_the_edges():
    for errors, trials in [(600, 600), (0, 600), (1, 1), (10**6, 10**6)]:
        lo, hi = wilson_interval(errors, trials)
        assert lo <= errors / trials <= hi


def test_markdown_report_keeps_title_command_and_aligned_table(tmp_path):
    from eccflow.eval.report import write_markdown_report

    path = write_markdown_report(tmp_path / "sub" / "r.md", "Title", "make x", ["decoder", "FER", "BER"],
                                 ["| WD | 0.1 | 0.01 |"])
    assert path.read_text().splitlines() == ["# Title", "", "Command: `make x`", "", "| decoder | FER | BER |",
                                             "|---|---:|---:|", "| WD | 0.1 | 0.01 |"]
