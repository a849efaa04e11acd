import itertools
import math

import numpy as np
import pytest
import torch

from eccflow.codes import Code, get_code
from eccflow.decoders.message_passing import (
    BeliefPropagationDecoder,
    TannerGraph,
    min_sum_check_update,
    sum_product_check_update,
)
from eccflow.errors import ConfigError


def reference_check_messages(code: Code, v2c: np.ndarray, rule: str, offset: float = 0.0) -> np.ndarray:
    """Per-edge extrinsic check messages by direct loops (the textbook formulas)."""
    out = np.zeros_like(v2c)
    for e, (c, v) in enumerate(zip(code.edge_check, code.edge_var)):
        others = [f for f in range(code.num_edges) if code.edge_check[f] == c and f != e]
        vals = v2c[others]  # (deg-1, B)
        sign = np.prod(np.where(vals < 0, -1.0, 1.0), axis=0)
        if rule == "sum-product":
            out[e] = 2 * np.arctanh(np.prod(np.tanh(vals / 2), axis=0))
        else:
            out[e] = sign * np.maximum(np.abs(vals).min(axis=0) - offset, 0.0)
    return out


def small_code() -> Code:
    rng = np.random.default_rng(5)
    H = (rng.random((6, 12)) < 0.4).astype(np.uint8)
    H[:, 0] = 1
    return Code(H, name="random12")


def test_sum_product_matches_tanh_rule():
    code = small_code()
    v2c = np.random.default_rng(0).normal(0, 2.0, (code.num_edges, 50))
    got = sum_product_check_update(TannerGraph(code), torch.tensor(v2c, dtype=torch.float64)).numpy()
    assert np.allclose(got, reference_check_messages(code, v2c, "sum-product"), atol=1e-6)


@pytest.mark.parametrize("offset", [0.0, 0.3])
def test_min_sum_matches_reference_with_ties(offset):
    code = small_code()
    v2c = np.random.default_rng(1).normal(0, 2.0, (code.num_edges, 60)).round(0)  # rounding creates ties
    got = min_sum_check_update(TannerGraph(code), torch.tensor(v2c), offset).numpy()
    assert np.allclose(got, reference_check_messages(code, v2c, "min-sum", offset))


def test_bp_on_a_tree_is_exact_map():
    """On a cycle-free Tanner graph sum-product BP computes the exact bitwise MAP LLRs."""
    H = np.array([[1, 1, 1, 0, 0, 0], [0, 0, 1, 1, 1, 0], [0, 0, 0, 0, 1, 1]], dtype=np.uint8)
    code = Code(H, name="tree")
    llr = torch.tensor(np.random.default_rng(2).normal(1.0, 2.0, (20, 6)))
    words = np.array([w for w in itertools.product([0, 1], repeat=6) if not (H @ w % 2).any()])
    # log P(word | y) = sum_v (1 - 2 w_v) llr_v / 2 + const
    logp = (1 - 2 * torch.tensor(words, dtype=torch.float64)) @ llr.T / 2  # (W, B)
    map_llr = torch.stack(
        [torch.logsumexp(logp[words[:, v] == 0], 0) - torch.logsumexp(logp[words[:, v] == 1], 0) for v in range(6)],
        dim=1,
    )
    out = BeliefPropagationDecoder(code, iterations=6)(llr)
    assert torch.allclose(out.llr, map_llr, atol=1e-5)


def test_noiseless_input_decodes_and_iteration_history():
    code = get_code("LDPC_n49_k24")
    words = torch.tensor(code.encode(np.random.default_rng(0).integers(0, 2, (8, code.k))), dtype=torch.float32)
    out = BeliefPropagationDecoder(code, iterations=4)((1 - 2 * words) * 3.0, return_all=True)
    assert torch.equal(out.bits, words)
    assert out.llr_per_iteration.shape == (4, 8, 49)
    assert torch.equal(out.llr_per_iteration[-1], out.llr)


def test_bp_corrects_errors_min_sum_is_weaker():
    """On the dense BCH graph plain min-sum overestimates messages; sum-product beats it and hard decisions."""
    code = get_code("BCH_n63_k45")
    g = torch.Generator().manual_seed(0)
    from eccflow.channels import awgn_llr

    _, llr = awgn_llr(torch.zeros(4000, 63), 4.0, code.rate, g)
    hard = (llr < 0).float().mean().item()
    bp = BeliefPropagationDecoder(code, 5)(llr).bits.mean().item()
    ms = BeliefPropagationDecoder(code, 5, "min-sum")(llr).bits.mean().item()
    assert bp < hard and bp < ms
    normalized = BeliefPropagationDecoder(code, 5, "min-sum", normalization=0.75)(llr).bits.mean().item()
    assert normalized < ms


def test_early_stop_freezes_converged_words():
    code = get_code("LDPC_n49_k24")
    from eccflow.channels import awgn_llr

    _, llr = awgn_llr(torch.zeros(500, 49), 3.0, code.rate, torch.Generator().manual_seed(3))
    out = BeliefPropagationDecoder(code, 20, early_stop=True)(llr, return_all=True)
    syndrome = torch.tensor(code.H, dtype=torch.float32) @ out.bits.T % 2
    converged = ~syndrome.bool().any(0)
    assert converged.float().mean() > 0.9
    assert out.iterations[converged].float().mean() < 5
    assert (out.iterations[~converged] == 20).all()
    assert out.llr_per_iteration.shape[0] == 20
    # A frozen word keeps the decision it had at its stopping iteration.
    w = int(torch.nonzero(converged)[0])
    stop = int(out.iterations[w])
    assert torch.equal(out.llr_per_iteration[stop - 1, w], out.llr[w])


def test_weights_hook_is_differentiable():
    code = get_code("BCH_n31_k16")

    class Weighted(BeliefPropagationDecoder):
        def __init__(self, code):
            super().__init__(code, iterations=3)
            self.w = torch.nn.Parameter(torch.ones(3, code.num_edges, 1))

        def check_weight(self, iteration):
            return self.w[iteration]

    dec = Weighted(code)
    llr = torch.randn(16, 31) + 2
    dec(llr).llr.sum().backward()
    assert dec.w.grad is not None and dec.w.grad.abs().sum() > 0


def test_normalization_scales_check_messages():
    code = small_code()
    llr = torch.randn(10, 12, dtype=torch.float64)
    plain = BeliefPropagationDecoder(code, 1, "min-sum")(llr).llr - llr
    half = BeliefPropagationDecoder(code, 1, "min-sum", normalization=0.5)(llr).llr - llr
    assert torch.allclose(half, 0.5 * plain)


def test_bad_arguments():
    code = small_code()
    with pytest.raises(ConfigError, match="iterations"):
        BeliefPropagationDecoder(code, 0)
    with pytest.raises(ConfigError, match="unknown check_update"):
        BeliefPropagationDecoder(code, 5, "max-product")
    with pytest.raises(ConfigError, match="offset applies to min-sum"):
        BeliefPropagationDecoder(code, 5, "sum-product", offset=0.5)
    with pytest.raises(ConfigError, match=r"shape \(B, 12\)"):
        BeliefPropagationDecoder(code, 5)(torch.zeros(3, 11))


def test_flops_per_frame_counts_edges_and_iterations():
    from eccflow.decoders.flops import flops_per_frame
    from eccflow.decoders.neural_bp import NeuralBPDecoder

    code = get_code("BCH_n31_k16")
    e, n = code.num_edges, code.n
    assert flops_per_frame(BeliefPropagationDecoder(code, iterations=5), n) == 5 * (16 * e + n) + n
    assert flops_per_frame(BeliefPropagationDecoder(code, iterations=2, check_update="min-sum", offset=0.5), n) == 2 * (15 * e + n) + n
    neural = NeuralBPDecoder(code, iterations=3)
    assert flops_per_frame(neural, n) == 3 * (17 * e + n) + n


def test_flops_of_a_dense_network_come_from_the_flop_counter():
    from eccflow.decoders.flops import flops_per_frame

    net = torch.nn.Sequential(torch.nn.Linear(31, 64), torch.nn.ReLU(), torch.nn.Linear(64, 31))
    assert flops_per_frame(net, 31) == 2 * (31 * 64 + 64 * 31)
