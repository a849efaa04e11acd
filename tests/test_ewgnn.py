"""EW-GNN: clipped check rule, code-independent parameters, BP limit, cross-code decoding, errors, pipeline."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from eccflow.codes import Code, get_code
from eccflow.decoders.ewgnn import EWGNNDecoder, edge_mean_normalize
from eccflow.decoders.message_passing import clipped_tanh_check_update
from eccflow.lit.families import build_network
from eccflow.decoders.message_passing import BeliefPropagationDecoder, TannerGraph
from eccflow.errors import ConfigError
from eccflow.lit import load_decoder, save_decoder
from conftest import shrunk


def tiny_code() -> Code:
    rng = np.random.default_rng(5)
    H = (rng.random((6, 12)) < 0.4).astype(np.uint8)
    H[:, 0] = 1
    return Code(H, name="random12")


def awgn_llr(code: Code, ebn0_db: float, frames: int, seed: int = 0) -> torch.Tensor:
    """All-zero codeword over BPSK-AWGN: llr = 2 y / sigma^2."""
    sigma = math.sqrt(1.0 / (2.0 * code.k / code.n * 10 ** (ebn0_db / 10)))
    g = torch.Generator().manual_seed(seed)
    y = 1.0 + sigma * torch.randn(frames, code.n, generator=g)
    return 2.0 * y / sigma**2


def reference_clipped(code: Code, v2c: np.ndarray, a: float) -> np.ndarray:
    """m_cv = 2 atanh(clip(prod_{v' != v} tanh(m_v'c / 2), -a, a)) by direct loops over each check."""
    out = np.zeros_like(v2c)
    for e, (c, v) in enumerate(zip(code.edge_check, code.edge_var)):
        others = [f for f in range(code.num_edges) if code.edge_check[f] == c and f != e]
        product = np.prod(np.tanh(v2c[others] / 2.0), axis=0)
        out[e] = 2.0 * np.arctanh(np.clip(product, -a, a))
    return out


def test_parameter_count_does_not_depend_on_the_code():
    counts = {name: sum(p.numel() for p in EWGNNDecoder(get_code(name)).parameters())
              for name in ("BCH_n15_k7", "BCH_n63_k45", "MACKAY_n96_k48", "CCSDS_n128_k64")}
    assert len(set(counts.values())) == 1
    assert next(iter(counts.values())) == (4 * 32 + 32) + (32 * 32 + 32) + (32 + 1)  # 3 layers, 32 hidden
    learned = EWGNNDecoder(get_code("BCH_n15_k7"), learn_clip=True)
    assert sum(p.numel() for p in learned.parameters()) == counts["BCH_n15_k7"] + 1  # the clip factor


@pytest.mark.parametrize("a", [0.5, 0.9, 0.999])
def test_clipped_tanh_check_update_matches_direct_reference(a):
    code = tiny_code()
    rng = np.random.default_rng(1)
    v2c = rng.normal(0.0, 3.0, size=(code.num_edges, 7))
    v2c[0, 0] = 0.0  # a zero message: every other edge of its check gets 0
    v2c[3, 1] = 40.0  # saturated tanh
    expected = reference_clipped(code, v2c, a)
    got = clipped_tanh_check_update(TannerGraph(code).double(), torch.tensor(v2c), a).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)
    assert np.abs(got).max() <= 2 * np.arctanh(a) + 1e-9


def test_clipped_update_has_finite_gradients_at_zero_and_saturation():
    code = tiny_code()
    v2c = torch.randn(code.num_edges, 4, dtype=torch.float64) * 5
    v2c[0] = 0.0
    v2c[1] = 60.0
    v2c.requires_grad_(True)
    clipped_tanh_check_update(TannerGraph(code).double(), v2c, 0.99).sum().backward()
    assert torch.isfinite(v2c.grad).all()


def test_mean_normalisation_is_per_word_and_keeps_zero_features():
    values = torch.tensor([[1.0, 0.0], [3.0, 0.0]])
    np.testing.assert_allclose(edge_mean_normalize(values).numpy(), [[0.5, 0.0], [1.5, 0.0]])


def test_unit_weights_and_clip_near_one_give_sum_product_bp():
    code = get_code("BCH_n31_k16")
    net = EWGNNDecoder(code, iterations=5, clip=1.0 - 2e-7)
    with torch.no_grad():  # the hidden layers stay random; the output layer forces w = ELU(1) = 1
        for linear in net.fnn.linears[:-1]:
            linear.weight.normal_()
        net.fnn.linears[-1].weight.zero_()
        net.fnn.linears[-1].bias.fill_(1.0)
    bp = BeliefPropagationDecoder(code, iterations=5, check_update="sum-product")
    llr = awgn_llr(code, 2.0, 400).double()  # double: near-saturated messages lose digits in float32 in both rules
    with torch.no_grad():
        ours, theirs = net.double()(llr, return_all=True), bp.double()(llr, return_all=True)
    # a -> 1 with the same message cap: BP floors tanh(x/2) at 1e-7, |m_cv| <= ln 1e7; 2 atanh(1 - 2e-7) = ln(1e7 - 1)
    np.testing.assert_allclose(ours.llr_per_iteration.numpy(), theirs.llr_per_iteration.numpy(), rtol=1e-5, atol=1e-5)
    assert torch.equal(ours.bits, theirs.bits)


def test_untrained_network_with_small_clip_differs_from_bp():
    code = get_code("BCH_n31_k16")
    llr = awgn_llr(code, 2.0, 200)
    clipped = EWGNNDecoder(code, clip=0.5)(llr).llr
    degrees = torch.as_tensor(np.bincount(code.edge_var, minlength=code.n), dtype=llr.dtype)
    assert ((clipped - llr).abs() <= degrees * 2 * math.atanh(0.5) + 1e-4).all()  # unit weights, |m_cv| <= 2 atanh(a)
    assert not torch.allclose(clipped, BeliefPropagationDecoder(code)(llr).llr, atol=1e-2)


def _trained_a_little(code: Code) -> EWGNNDecoder:
    net = EWGNNDecoder(code, iterations=3, learn_clip=True, clip=0.99)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    for step in range(5):
        llr = awgn_llr(code, 3.0, 64, seed=step)
        posteriors = net(llr, return_all=True).llr_per_iteration
        loss = torch.nn.functional.binary_cross_entropy_with_logits(-posteriors, torch.zeros_like(posteriors))
        optimizer.zero_grad()
        loss.backward()
        assert net.clip_logit.grad is not None and all(p.grad is not None for p in net.fnn.parameters())
        optimizer.step()
    return net


def test_cross_code_decoding_with_the_same_parameters(tmp_path: Path):
    short, other = get_code("BCH_n15_k7"), get_code("BCH_n31_k16")
    net = _trained_a_little(short).eval()
    assert net.fnn.linears[-1].weight.abs().sum() > 0  # the weights now depend on the features
    llr = awgn_llr(other, 4.0, 50, seed=7)
    direct = net(llr, code=other)
    assert direct.llr.shape == (50, other.n)
    # the same result through a graph, through set_code, and through a checkpoint rebuilt for the other code
    torch.testing.assert_close(net(llr, code=TannerGraph(other)).llr, direct.llr)
    config = {"family": "ewgnn", "iterations": 3, "learn_clip": True, "clip": 0.99}
    path = save_decoder(net, config, short.name, tmp_path / "ewgnn.ckpt")
    rebuilt = load_decoder(path, code=other)
    assert rebuilt.code.name == other.name
    torch.testing.assert_close(rebuilt(llr).llr, direct.llr)
    net.set_code(other)
    torch.testing.assert_close(net(llr).llr, direct.llr)
    # noiseless words decode on a third, longer code
    ldpc = get_code("MACKAY_n96_k48")
    assert net(torch.full((4, ldpc.n), 6.0), code=ldpc).bits.sum() == 0


def test_the_decoder_corrects_errors_on_other_codes():
    net = EWGNNDecoder(get_code("BCH_n15_k7"), iterations=5)
    code = get_code("BCH_n31_k16")
    llr = awgn_llr(code, 5.0, 500, seed=3)
    hard_errors = (llr < 0).sum()
    assert net(llr, code=code).bits.sum() < 0.5 * hard_errors


@pytest.mark.parametrize("clip", [0.0, 1.0, 1.5, -0.2, True, "0.9"])
def test_clip_outside_the_open_unit_interval_is_an_error(clip):
    with pytest.raises(ConfigError, match="clip factor"):
        EWGNNDecoder(get_code("BCH_n15_k7"), clip=clip)


def test_bad_inputs_are_clear_errors():
    code = get_code("BCH_n15_k7")
    net = EWGNNDecoder(code)
    with pytest.raises(ConfigError, match=r"expected LLRs of shape \(B, 15\)"):
        net(torch.zeros(2, 16))
    with pytest.raises(ConfigError, match=r"BCH_n31_k16: expected LLRs of shape \(B, 31\)"):
        net(torch.zeros(2, 15), code=get_code("BCH_n31_k16"))
    with pytest.raises(ConfigError, match="iterations"):
        EWGNNDecoder(code, iterations=0)
    with pytest.raises(ConfigError, match="hidden"):
        EWGNNDecoder(code, hidden=0)
    with pytest.raises(ConfigError, match="Code or a TannerGraph"):
        net(torch.zeros(2, 15), code="BCH_n15_k7")
    with pytest.raises(ConfigError, match="decoder config for ewgnn"):
        build_network(code, {"family": "ewgnn", "iterations": 5, "clipp": 0.9})
    assert isinstance(build_network(code, {"family": "ewgnn", "iterations": 4}), EWGNNDecoder)


def test_flops_grow_with_the_code_parameters_do_not():
    small, large = EWGNNDecoder(get_code("BCH_n15_k7")), EWGNNDecoder(get_code("CCSDS_n128_k64"))
    assert large.flops_per_frame() > small.flops_per_frame() > 0


# ---- pipeline (isolated MLflow store and stage cache) ----

TINY = shrunk("data.batches_per_epoch=3")


def test_evaluate_code_option_picks_the_code_and_rejects_unknown_ones(tmp_path: Path):
    from eccflow.config import compose
    from eccflow.pipelines.runner import StageContext
    from eccflow.pipelines.stages.evaluate import evaluation_code

    config = compose("BCH_n63_k45", "ewgnn", "quick", ["stages.evaluate:BCH_n63_k51.code=NO_SUCH_CODE"])
    base = get_code("BCH_n63_k45")

    def context(name: str) -> StageContext:
        return StageContext(name, config, base, {}, tmp_path, "run", "sqlite://")

    assert evaluation_code(context("evaluate")) is base  # code: null -> the pipeline's CODE
    assert evaluation_code(context("evaluate:BCH_n63_k36")).name == "BCH_n63_k36"
    assert config["stages"]["evaluate:BCH_n63_k36"]["register"] is False
    with pytest.raises(ConfigError, match="stages.evaluate:BCH_n63_k51.code"):
        evaluation_code(context("evaluate:BCH_n63_k51"))


@pytest.mark.slow
def test_ewgnn_pipeline_trains_and_evaluates_on_three_codes_against_neural_bp(isolated_mlflow):
    from eccflow.pipelines import run_pipeline
    from eccflow.track import load_registered_decoder

    run_pipeline("BCH_n15_k7", "neural_bp", overrides=TINY, log=lambda _: None)  # the registered neural BP baseline
    lines: list[str] = []
    summary = run_pipeline("BCH_n15_k7", "ewgnn", overrides=TINY, log=lines.append)
    own = summary["stages"]["evaluate"]["metrics"]
    assert {"neg_ln_ber_5dB", "bp5_neg_ln_ber_5dB", "neural_bp_neg_ln_ber_5dB", "vs_neural_bp_d_fer_5dB", "decoder_params"} <= set(own)
    for label, n in (("evaluate:BCH_n63_k36", 63), ("evaluate:BCH_n63_k51", 63)):
        metrics = summary["stages"][label]["metrics"]
        assert {"neg_ln_ber_5dB", "bp5_neg_ln_ber_5dB", "bp50_neg_ln_ber_5dB"} <= set(metrics) and "neural_bp_neg_ln_ber_5dB" not in metrics
        assert metrics["decoder_params"] == own["decoder_params"]
    tables = Path(summary["stages"]["evaluate:BCH_n63_k36"]["outputs"]["report"]).read_text()
    assert "BCH_n63_k36: ewgnn L=5" in tables and "BCH_n63_k36: bp L=5" in tables
    registered = load_registered_decoder("ewgnn", "BCH_n15_k7")
    assert isinstance(registered, EWGNNDecoder) and registered.code.name == "BCH_n15_k7"
