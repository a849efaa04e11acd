"""SBND for BICM: GF(2) pseudo-inverse, decoder decisions, parameter formulas, BICM data / evaluation wiring,
Theorem 1 channel check, bad input, and a tiny pipeline."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from eccflow.channels import make_constellation
from eccflow.codes import get_code, gf2
from eccflow.config import compose
from eccflow.data.bicm import build_bicm_channel, decoder_channel
from eccflow.decoders.factory import build_classical_decoder
from eccflow.lit.families import build_network
from eccflow.decoders.sbnd import (SBNDDecoder, gru_parameter_count, message_generator, parameter_report,
                                   transformer_parameter_count)
from eccflow.errors import ConfigError
from eccflow.eval.channel_check import label_flip_statistics
from eccflow.train import build_datamodule, build_lit_module
from conftest import shrunk

CODE = "POLAR_n16_k8"
GRU_SMALL = {"family": "sbnd", "gru": {"alpha": 1, "layers": 2, "time_steps": 3}}
TRANSFORMER_SMALL = {"family": "sbnd", "estimator": "transformer", "transformer": {"layers": 1, "d_model": 16, "heads": 2}}


def _words(code, batch: int, ebn0_db: float = 8.0, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    u = torch.randint(0, 2, (batch, code.k), generator=g).float()
    c = torch.remainder(u @ torch.tensor(code.G, dtype=torch.float32), 2.0)
    llr = build_bicm_channel(code)(c, ebn0_db, code.rate, g)
    return u, c, llr


def test_right_inverse_recovers_messages_of_systematic_and_scrambled_generators():
    code = get_code(CODE)
    for kind in ("systematic", "scrambled"):
        G = message_generator(code, kind, seed=3)
        assert not gf2.matmul(G, code.H.T).any()  # still a generator of the same code
        pinv = gf2.right_inverse(G)
        assert np.array_equal(gf2.matmul(G, pinv), np.eye(code.k, dtype=np.uint8))
    # for the systematic G the pseudo-inverse on the information set just reads the message bits
    pinv = gf2.right_inverse(code.G, columns=code.info_set)
    assert np.array_equal(pinv[code.info_set], np.eye(code.k, dtype=np.uint8)) and pinv.sum() == code.k
    scrambled = message_generator(code, "scrambled", seed=3)
    assert not np.array_equal(scrambled[:, code.info_set], np.eye(code.k, dtype=np.uint8))  # non-systematic
    with pytest.raises(ValueError, match="rank"):
        gf2.right_inverse(np.array([[1, 1, 0], [1, 1, 0]]))
    with pytest.raises(ValueError, match="singular"):
        gf2.inverse(np.array([[1, 1], [1, 1]]))


@pytest.mark.parametrize("output", ["message", "codeword"])
@pytest.mark.parametrize("generator", ["systematic", "scrambled"])
def test_decision_is_hard_decision_corrected_by_flips(output, generator):
    code = get_code(CODE)
    net = SBNDDecoder(code, {**GRU_SMALL, "output": output, "generator": generator, "generator_seed": 1})
    _, c, llr = _words(code, 300, ebn0_db=4.0)
    target = net.flip_target(llr, c)
    assert target.shape == (300, code.k if output == "message" else code.n) and target.sum() > 0
    # oracle logits (+ where the target flips): the decision is the transmitted codeword
    oracle = net.decide(llr, 4.0 * (2 * target - 1))
    assert torch.equal(oracle.bits, c)
    assert torch.equal((oracle.llr < 0).float(), oracle.bits) and bool((oracle.llr.abs() > 0).all())
    # no flips: the decision is the hard decision (codeword-wise) or its message re-encoded (message-wise)
    none = net.decide(llr, -torch.ones_like(target))
    hard = (llr < 0).float()
    expected = hard if output == "codeword" else torch.remainder(torch.remainder(hard @ net.G_pinv, 2) @ net.G, 2)
    assert torch.equal(none.bits, expected)
    # every message-wise decision is a codeword
    out = net(llr)
    if output == "message":
        assert not torch.remainder(out.bits @ torch.tensor(code.H.T, dtype=torch.float32), 2).any()


def test_features_are_reliabilities_and_syndrome():
    code = get_code(CODE)
    net = SBNDDecoder(code, {**GRU_SMALL, "magnitude": "raw"})
    _, c, llr = _words(code, 50, ebn0_db=3.0)
    h = net.features(llr)
    syndrome = torch.remainder((llr < 0).float() @ torch.tensor(code.H.T, dtype=torch.float32), 2)
    assert h.shape == (50, 2 * code.n - code.k)
    assert torch.equal(h[:, : code.n], llr.abs()) and torch.equal(h[:, code.n:], 1 - 2 * syndrome)


@pytest.mark.parametrize("output", ["message", "codeword"])
def test_parameter_counts_match_the_formulas(output):
    code = get_code("POLAR_n64_k32")
    gru = SBNDDecoder(code, {"family": "sbnd", "output": output, "gru": {"alpha": 2, "layers": 3, "time_steps": 5}})
    report = parameter_report(gru)
    outputs = code.k if output == "message" else code.n
    h, i = 2 * (2 * code.n - code.k), 2 * code.n - code.k
    assert report["hidden"] == h == 192 and report["inputs"] == i
    assert report["params"] == gru_parameter_count(i, h, 3, outputs, bias_vectors=2)
    # torch.nn.GRU keeps two bias vectors per gate: 3 h L more weights than the paper's count (eq. 16)
    assert report["params"] - report["formula_paper"] == 3 * h * 3
    assert abs(report["approximation_paper"] / report["formula_paper"] - 1) < 0.05  # eq. (17) within 5%
    trans = SBNDDecoder(code, {**TRANSFORMER_SMALL, "output": output})
    assert parameter_report(trans)["params"] == transformer_parameter_count(i, outputs, 16, 1, 64)
    # the transformer's size hardly depends on the code, the GRU's grows as (2n - k)^2
    small = get_code("POLAR_n32_k16")
    ratio_gru = report["params"] / parameter_report(SBNDDecoder(small, {"family": "sbnd", "output": output}))["params"]
    ratio_tr = parameter_report(trans)["params"] / parameter_report(SBNDDecoder(small, {**TRANSFORMER_SMALL, "output": output}))["params"]
    assert ratio_gru > 3.5 and ratio_tr < 2.0


def test_factory_builds_sbnd_and_flops_are_counted():
    code = get_code(CODE)
    for config in (GRU_SMALL, TRANSFORMER_SMALL):
        net = build_network(code, config)
        assert isinstance(net, SBNDDecoder) and net.flops_per_frame() > 0
        out = net(_words(code, 7)[2])
        assert out.bits.shape == out.llr.shape == (7, code.n)
    hard = build_classical_decoder("hard", code)
    _, c, llr = _words(code, 10)
    assert torch.equal(hard(llr).bits, (llr < 0).float())


def test_bad_input_is_a_clear_config_error():
    code = get_code(CODE)
    with pytest.raises(ConfigError, match="power of two"):
        SBNDDecoder(code, {**GRU_SMALL, "order": 12})
    with pytest.raises(ConfigError, match="power of two"):
        make_constellation("psk", 6)
    with pytest.raises(ConfigError, match="only 'gray'"):
        SBNDDecoder(code, {**GRU_SMALL, "labelling": "natural"})
    with pytest.raises(ConfigError, match="only 'gray'"):
        build_bicm_channel(code, labelling="set-partitioning")
    with pytest.raises(ConfigError, match="estimator"):
        SBNDDecoder(code, {**GRU_SMALL, "estimator": "lstm"})
    with pytest.raises(ConfigError, match="unknown sbnd decoder keys"):
        SBNDDecoder(code, {**GRU_SMALL, "hidden": 3})
    with pytest.raises(ConfigError, match="gru.alpha"):
        SBNDDecoder(code, {**GRU_SMALL, "gru": {"alpha": 0}})
    for config in (GRU_SMALL, TRANSFORMER_SMALL):
        net = SBNDDecoder(code, config)
        other = get_code("POLAR_n32_k16")
        with pytest.raises(ConfigError, match="tied to the code length"):
            net(_words(other, 4)[2])


def test_bicm_training_data_and_evaluation_channel_follow_the_decoder_config():
    config = compose(CODE, "sbnd", "quick", overrides=["data.val_frames=64", "data.batch_size=16",
                                                      "decoder.order=8", "decoder.modulation=psk"])
    dm = build_datamodule(get_code(CODE), config)
    assert type(dm).__name__ == "BICMDataModule" and (dm.modulation, dm.order) == ("psk", 8)
    batch = next(dm.train_batches())
    assert batch["bits"].any()  # random codewords, not the zero word
    channel = decoder_channel(get_code(CODE), config["decoder"])
    assert channel.constellation.order == 8 and channel.demapping.value == "exact"
    assert decoder_channel(get_code(CODE), {"family": "neural_bp"}) is None
    lit = build_lit_module(get_code(CODE), config)
    loss, out = lit.model_step(batch)
    loss.backward()
    assert torch.isfinite(loss) and out.bits.shape == batch["bits"].shape


def test_training_reduces_flip_loss_quickly():
    code = get_code(CODE)
    torch.manual_seed(0)
    net = SBNDDecoder(code, {**GRU_SMALL, "gru": {"alpha": 2, "layers": 2, "time_steps": 3}})
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    _, c_val, llr_val = _words(code, 2000, ebn0_db=7.0, seed=99)
    hard_ber = float(((llr_val < 0).float() != c_val).float().mean())
    for step in range(600):
        _, c, llr = _words(code, 128, ebn0_db=7.0, seed=step)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(net.flip_logits(llr), net.flip_target(llr, c))
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        ber = float((net(llr_val).bits != c_val).float().mean())
    assert ber < 0.85 * hard_ber


@pytest.mark.statistical
def test_theorem1_flip_is_independent_of_the_sent_bit():
    """Theorem 1: per label position the hard-decision flip does not depend on the sent bit (a BSC):
    always for 8-PSK Gray; for 16-QAM Gray above a moderate SNR, not at low SNR (inner/outer LSB)."""
    psk, qam = make_constellation("psk", 8), make_constellation("qam", 16)
    for es_n0 in (3.0, 8.0, 12.0):
        stats = label_flip_statistics(psk, es_n0, symbols=200_000, seed=1)
        assert all(stats.symmetric(j) for j in range(3)), stats.to_dict()
    for es_n0 in (12.0, 15.0):
        stats = label_flip_statistics(qam, es_n0, symbols=200_000, seed=2)
        assert all(stats.symmetric(j) for j in range(4)), stats.to_dict()
    low = label_flip_statistics(qam, 0.0, symbols=200_000, seed=3)
    assert low.symmetric(0) and low.symmetric(2)  # sign bits: symmetric by construction
    assert not low.symmetric(1) and not low.symmetric(3)  # magnitude bits: outer (bit 0) flips more
    assert low.probability(1, 0) > low.probability(1, 1) + 0.1
    # marginals differ between positions: the Gray LSB crosses twice as many boundaries (ratio -> 2)
    high = label_flip_statistics(psk, 12.0, symbols=200_000, seed=4)
    lo, _ = high.interval(2)
    _, hi = high.interval(0)
    assert lo > 1.6 * hi and abs(high.probability(0) / high.probability(1) - 1) < 0.15


def _quiet(_: str) -> None:
    pass


@pytest.mark.slow
def test_sbnd_pipeline_trains_and_evaluates_on_the_bicm_channel(tmp_path: Path, isolated_mlflow):
    from eccflow.pipelines import run_pipeline

    overrides = shrunk("data.batches_per_epoch=3", "data.val_ebn0_db=[8.0]", "stages.evaluate.max_frames=300",
                       "stages.evaluate.batch_size=300", "stages.evaluate.ebn0_db=[8.0]", "decoder.gru.alpha=1",
                       "decoder.gru.layers=1", "stages.evaluate.baseline_iterations=3",
                       "stages.train.baseline_iterations=3", "tracking.champion_metric=neg_ln_ber_8dB")
    summary = run_pipeline(CODE, "sbnd", overrides=overrides, log=_quiet)
    metrics = summary["stages"]["evaluate"]["metrics"]
    assert {"neg_ln_ber_8dB", "bp5_neg_ln_ber_8dB", "bp20_neg_ln_ber_8dB", "bp50_neg_ln_ber_8dB", "hard_neg_ln_ber_8dB", "osd2_neg_ln_ber_8dB"} <= set(metrics)
    # the evaluation used the BICM channel: hard decisions over 16-QAM at 8 dB are far worse than over BPSK
    assert metrics["hard_ber_8dB"] > 1.5e-2  # BPSK: about 6e-3
    assert metrics["osd2_ber_8dB"] <= metrics["hard_ber_8dB"]
