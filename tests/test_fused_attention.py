"""The fused CPU attention kernel computes the written-out attention, forward and backward."""
from __future__ import annotations

import logging
import shutil

import pytest
import torch

from eccflow.codes import get_code
from eccflow.codes.graph import tanner_distances
from eccflow.decoders.transformer import TransformerDecoder
from eccflow.errors import ConfigError
from eccflow.nn import fused_attention as fused
from eccflow.nn.attention import CodeAwareSelfAttention

pytestmark = pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None,
                                reason="no C compiler on this machine")


def _distance(code: str = "BCH_n31_k16") -> torch.Tensor:
    return torch.as_tensor(tanner_distances(get_code(code), 2))


def _both(module: CodeAwareSelfAttention, x: torch.Tensor, distance: torch.Tensor):
    """Output, input gradient and parameter gradients of the float64 written-out attention and of the kernel."""
    results = []
    for impl, dtype in (("dense", torch.float64), ("fused", torch.float32)):
        copy = CodeAwareSelfAttention(module.qkv.in_features, module.heads, module.bias_kind, module.max_distance,
                                      bool((module.head_ring >= 0).any()))
        copy.head_mask = module.head_mask.clone()
        copy.load_state_dict(module.state_dict())
        copy = copy.to(dtype)
        inputs = x.detach().to(dtype).requires_grad_(True)
        out = copy(inputs, distance, impl)
        (out * torch.linspace(-1, 1, out.numel(), dtype=dtype).view_as(out)).sum().backward()
        results.append((out.double(), inputs.grad.double(), {n: p.grad.double() for n, p in copy.named_parameters()}))
    return results


def test_the_kernel_builds_where_a_compiler_exists():
    assert fused.kernel() is not None, fused.build_error()


@pytest.mark.parametrize("bias, rings, heads, d_model", [
    ("mask", False, 8, 32),       # ECCT N=2 d=32: 4-dimensional heads
    ("distance", False, 8, 64),   # FECCT: learned bias per head and distance, its gradient through the kernel
    ("mask", True, 8, 32),        # AECCT head-partitioned rings
    ("distance", False, 6, 36),   # heads not a multiple of the vector width: the generic layout path
    ("mask", False, 16, 64),      # two groups of eight heads
])
def test_fused_equals_written_out_attention(bias, rings, heads, d_model):
    torch.manual_seed(0)
    distance = _distance()
    module = CodeAwareSelfAttention(d_model, heads, bias, 3 if bias == "distance" else 2, rings)
    if module.distance_bias is not None:
        torch.nn.init.normal_(module.distance_bias)
    module.head_mask = torch.linspace(0, 1, heads)  # pruning and Fisher masks pass through the kernel too
    x = torch.randn(20, distance.shape[0], d_model)
    (out, grad, params), (out_f, grad_f, params_f) = _both(module, x, distance)
    assert torch.allclose(out_f, out, atol=2e-6, rtol=1e-5)
    assert torch.allclose(grad_f, grad, atol=2e-6, rtol=1e-5)
    for name, value in params.items():  # sums over 20 x 46 tokens of O(1) terms, accumulated in float32 on one side
        assert torch.allclose(params_f[name], value, atol=1e-4 * (1 + value.abs().max().item())), name


def test_per_sample_head_masks_and_two_threads():
    torch.manual_seed(1)
    distance = _distance()
    module = CodeAwareSelfAttention(32, 8)
    x = torch.randn(9, distance.shape[0], 32)
    module.head_mask = torch.rand(9, 8)  # Fisher scoring: one mask per sample
    (out, grad, _), (out_f, grad_f, _) = _both(module, x, distance)
    assert torch.allclose(out_f, out, atol=2e-6) and torch.allclose(grad_f, grad, atol=2e-6)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)  # the batch is split across threads
        (_, _, _), (out_2, grad_2, _) = _both(module, x, distance)
    finally:
        torch.set_num_threads(threads)
    assert torch.allclose(out_2, out_f, atol=1e-7) and torch.allclose(grad_2, grad_f, atol=1e-7)


def test_a_forked_child_runs_the_kernel_on_two_threads():
    """The batch is split over a thread pool; a forked child (DataLoader workers, DDP) must not reuse the parent's
    pool, whose threads it did not inherit. Tensors stay small, so torch itself runs no parallel region."""
    import multiprocessing

    distance = _distance()
    bias = CodeAwareSelfAttention(32, 8).score_bias(distance)
    qkv = torch.randn(4, distance.shape[0], 96)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        expected = fused.fused_attention(qkv, bias, 8)  # the parent's pool exists from here on
        torch.set_num_threads(1)
        with multiprocessing.get_context("fork").Pool(1) as pool:
            result = pool.apply_async(_child_attention, (qkv, bias)).get(timeout=60)
    finally:
        torch.set_num_threads(threads)
    assert torch.allclose(result, expected)


def _child_attention(qkv: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    torch.set_num_threads(2)
    return fused.fused_attention(qkv, bias, 8)


def test_masked_keys_get_no_weight():
    torch.manual_seed(2)
    distance = _distance()
    module = CodeAwareSelfAttention(32, 8).eval()
    x = torch.randn(4, distance.shape[0], 32)
    far = (distance[0] > 2).nonzero().flatten()
    assert far.numel() > 0
    moved = x.clone()
    moved[:, far] += 5.0  # keys token 0 may not see: its output must not change
    with torch.no_grad():
        assert torch.equal(module(x, distance, "fused")[:, 0], module(moved, distance, "fused")[:, 0])


def test_a_whole_decoder_picks_the_kernel_and_agrees_with_dense():
    code = get_code("POLAR_n64_k32")
    torch.manual_seed(3)
    fused_model = TransformerDecoder(code, {"layers": 2, "d_model": 32, "heads": 8})
    dense_model = TransformerDecoder(code, {"layers": 2, "d_model": 32, "heads": 8, "impl": "dense"})
    dense_model.load_state_dict(fused_model.state_dict())
    llr = torch.randn(16, code.n) * 3
    assert fused_model.impl_for(fused_model.graph, llr) == "fused"
    assert torch.allclose(fused_model.logits(llr), dense_model.logits(llr), atol=1e-5)


def test_fused_on_request_checks_its_inputs():
    code = get_code("BCH_n31_k16")
    with pytest.raises(ConfigError, match="dropout"):
        TransformerDecoder(code, {"layers": 1, "d_model": 16, "heads": 8, "impl": "fused", "dropout": 0.1})
    model = TransformerDecoder(code, {"layers": 1, "d_model": 16, "heads": 8, "impl": "fused"})
    with pytest.raises(ConfigError, match="float32 CPU"):
        model.impl_for(model.graph, torch.zeros(1, code.n, dtype=torch.float64))


def test_without_a_compiler_auto_falls_back_and_fused_says_why(monkeypatch, tmp_path, caplog):
    monkeypatch.setattr(fused, "_state", {})
    monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
    monkeypatch.setenv("ECCFLOW_KERNEL_CACHE", str(tmp_path / "cache"))
    code = get_code("BCH_n31_k16")
    with caplog.at_level(logging.WARNING, logger="eccflow"):
        auto = TransformerDecoder(code, {"layers": 1, "d_model": 16, "heads": 8})
        assert auto.impl_for(auto.graph, torch.zeros(1, code.n)) == "dense"
    assert "written-out attention" in caplog.text
    model = TransformerDecoder(code, {"layers": 1, "d_model": 16, "heads": 8, "impl": "fused"})
    with pytest.raises(ConfigError, match="no-such-compiler"):
        model.impl_for(model.graph, torch.zeros(1, code.n))
