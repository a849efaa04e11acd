"""Transformer decoders (ECCT / FECCT / AECCT): masks, dense == sparse, universality, pruning, checkpoints."""
from __future__ import annotations

import math
import numpy as np
import pytest
import torch

from eccflow.codes import get_code
from eccflow.codes.graph import tanner_distances
from eccflow.decoders.transformer import TransformerConfig, TransformerDecoder, decision, noise_target
from eccflow.errors import ConfigError, EccflowError
from eccflow.nn.attention import explicit_attention
from eccflow.nn.fused_attention import kernel as fused_kernel

ECCT = dict(layers=2, d_model=32, heads=4)
FECCT = dict(layers=2, d_model=32, heads=4, embedding="type", bias="distance", max_distance=3, output="shared")
AECCT = dict(layers=2, d_model=32, heads=4, rings=True, spe_dim=6, norm="post", activation="relu")


def test_distances_match_the_tanner_graph():
    code = get_code("BCH_n31_k16")
    n, H = code.n, code.H
    distance = tanner_distances(code, 4)
    assert (distance[:n, n:] == 1).tolist() == (H.T == 1).tolist()
    share_check = (H.T.astype(int) @ H.astype(int)) > 0
    np.testing.assert_array_equal(distance[:n, :n] <= 2, share_check)
    assert (np.diag(distance) == 0).all() and (distance == distance.T).all()
    assert set(np.unique(distance[:n, :n])) <= {0, 2, 4, 5}  # same-type nodes sit at even distances


@pytest.mark.parametrize("arch", [ECCT, FECCT, AECCT], ids=["ecct", "fecct", "aecct"])
def test_explicit_attention_equals_scaled_dot_product_attention_and_its_gradients(arch):
    """The CPU's written-out attention and torch's SDPA (what CUDA runs) give one function, values and gradients."""
    code = get_code("BCH_n31_k16")
    torch.manual_seed(0)
    attention = TransformerDecoder(code, arch).blocks[0].attention
    bias = attention.score_bias(torch.as_tensor(tanner_distances(code, attention.max_distance)))
    q, k, v = (torch.randn(3, attention.heads, code.n + code.num_checks, 8, dtype=torch.float64, requires_grad=True)
               for _ in range(3))
    ours = explicit_attention(q, k, v, bias.double())
    sdpa = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=bias.double())
    torch.testing.assert_close(ours, sdpa, atol=1e-12, rtol=1e-10)
    weights = torch.randn_like(ours)
    grads = torch.autograd.grad((ours * weights).sum(), (q, k, v))
    torch.testing.assert_close(grads, torch.autograd.grad((sdpa * weights).sum(), (q, k, v)), atol=1e-12, rtol=1e-10)


@pytest.mark.parametrize("arch", [ECCT, FECCT, AECCT], ids=["ecct", "fecct", "aecct"])
def test_dense_and_sparse_attention_agree(arch):
    code = get_code("BCH_n63_k45")
    torch.manual_seed(0)
    dense = TransformerDecoder(code, {**arch, "impl": "dense"})
    sparse = TransformerDecoder(code, {**arch, "impl": "sparse"})
    sparse.load_state_dict(dense.state_dict())
    llr = 3 * torch.randn(5, code.n)
    torch.testing.assert_close(sparse.logits(llr), dense.logits(llr), atol=1e-5, rtol=1e-5)


def test_attention_respects_the_code_mask():
    """With one layer, a variable's logit depends only on tokens within Tanner distance 2."""
    code = get_code("LDPC_n49_k24")
    torch.manual_seed(1)
    model = TransformerDecoder(code, {**ECCT, "layers": 1, "output": "shared", "embedding": "position"})
    x = model.embed(torch.randn(1, code.n), model.graph).detach().requires_grad_(True)
    block = model.blocks[0]
    out = block(x, model.graph.distance)
    out[0, 0].sum().backward()
    reached = x.grad[0].abs().sum(-1) > 0
    allowed = model.graph.distance[0] <= 2
    assert reached[~allowed].sum() == 0 and reached[allowed].all()


def test_head_partitioned_attention_rings():
    code = get_code("BCH_n31_k16")
    model = TransformerDecoder(code, AECCT)
    allowed = model.blocks[0].attention.allowed(model.graph.distance)
    d = model.graph.distance
    first, second = allowed[:2], allowed[2:]
    assert (first == ((d == 0) | (d == 1))).all() and (second == ((d == 0) | (d == 2))).all()


def test_fecct_parameters_do_not_depend_on_the_code():
    paper = {**FECCT, "layers": 6, "d_model": 128, "heads": 8}
    counts = {name: sum(p.numel() for p in TransformerDecoder(get_code(name), paper).parameters())
              for name in ("BCH_n31_k16", "BCH_n63_k45", "LDPC_n121_k60", "POLAR_n64_k32")}
    assert len(set(counts.values())) == 1, counts
    ecct = {name: sum(p.numel() for p in TransformerDecoder(get_code(name), {**paper, "embedding": "position",
                                                                              "output": "projection"}).parameters())
            for name in ("BCH_n31_k16", "BCH_n63_k45")}
    assert len(set(ecct.values())) == 2  # ECCT's embeddings and projection grow with the code


def test_one_universal_model_decodes_any_code():
    model = TransformerDecoder(get_code("BCH_n31_k16"), FECCT)
    other = get_code("POLAR_n64_k48")
    model.set_code(other)
    assert model(torch.randn(3, other.n)).bits.shape == (3, other.n)
    ecct = TransformerDecoder(get_code("BCH_n31_k16"), ECCT)
    with pytest.raises(ConfigError, match="only the universal"):
        ecct.set_code(other)


def test_decision_and_target_are_consistent():
    llr = torch.tensor([[2.0, -1.0, 0.5, -3.0]])
    bits = torch.tensor([[0.0, 0.0, 1.0, 1.0]])
    target = noise_target(llr, bits)
    assert target.tolist() == [[0.0, 1.0, 1.0, 0.0]]
    out = decision(llr, 10 * (2 * target - 1))  # confident, correct noise logits
    assert out.bits.tolist() == bits.tolist()
    assert ((out.llr < 0).float() == bits).all()


def test_pruning_heads_and_channels_equals_masking():
    code = get_code("BCH_n31_k16")
    torch.manual_seed(2)
    model = TransformerDecoder(code, {**FECCT, "heads": 4}).eval()
    llr = 2 * torch.randn(4, code.n)
    attention, ffn = model.blocks[0].attention, model.blocks[0].ffn
    attention.head_mask[[1, 3]] = 0
    ffn.channel_mask[::2] = 0
    masked = model.logits(llr)
    attention.prune_heads([0, 2])
    ffn.prune_channels(torch.arange(1, ffn.channel_mask.numel(), 2))
    assert attention.heads == 2 and attention.qkv.weight.shape == (3 * 2 * 8, 32)
    assert ffn.up.weight.shape[0] == 64 and ffn.down.weight.shape[1] == 64
    torch.testing.assert_close(model.logits(llr), masked, atol=1e-5, rtol=1e-5)
    with pytest.raises(ConfigError, match="at least one"):
        attention.prune_heads([])


@pytest.mark.parametrize("bad, match", [
    ({"embedding": "learned"}, "decoder.embedding"),
    ({"heads": 5}, "multiple of heads"),
    ({"rings": True, "heads": 1, "d_model": 8}, "at least 2 heads"),
    ({"spe_dim": 4, "spe_width": 32}, "spe_width"),
    ({"layer": 2}, "unknown transformer decoder keys"),
    ({"impl": "flash"}, "decoder.impl"),
])
def test_bad_architecture_is_a_clear_error(bad, match):
    with pytest.raises(ConfigError, match=match):
        TransformerDecoder(get_code("BCH_n31_k16"), {**ECCT, **bad})


def test_wrong_llr_shape_is_a_clear_error():
    model = TransformerDecoder(get_code("BCH_n31_k16"), ECCT)
    with pytest.raises(ConfigError, match=r"\(B, 31\)"):
        model(torch.randn(2, 63))


def test_checkpoint_for_another_code_or_architecture_is_refused(tmp_path):
    from eccflow.lit import TransformerLitModule, load_decoder, load_weights

    code = get_code("BCH_n31_k16")
    net = TransformerDecoder(code, ECCT)
    lit = TransformerLitModule(net, {"family": "ecct", **ECCT}, code.name)
    path = tmp_path / "ecct.ckpt"
    torch.save({"state_dict": lit.state_dict(), "hyper_parameters": dict(lit.hparams)}, path)
    restored = load_decoder(path)
    llr = torch.randn(2, code.n)
    torch.testing.assert_close(restored.logits(llr), net.eval().logits(llr))
    with pytest.raises(EccflowError, match="BCH_n31_k16.*shape mismatch"):
        load_decoder(path, code="BCH_n63_k45")
    with pytest.raises(EccflowError, match="does not fit"):
        load_weights(TransformerDecoder(code, {**ECCT, "d_model": 64}), path)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(EccflowError, match="corrupt"):
        load_decoder(path)


def test_config_round_trip():
    cfg = TransformerConfig.from_dict({"family": "fecct", **FECCT})
    assert cfg.universal and not TransformerConfig.from_dict(ECCT).universal


def test_nve_leaves_out_points_where_the_baseline_made_no_error():
    from eccflow.lit.base import normalized_validation_error

    assert normalized_validation_error([(0.02, 0.01), (0.001, 0.002)]) == pytest.approx((2.0 + 0.5) / 2)
    assert normalized_validation_error([(0.02, 0.01), (1e-4, 0.0)]) == pytest.approx(2.0)  # no 1e8 blow-up
    assert math.isnan(normalized_validation_error([(1e-4, 0.0)]))


def test_auto_attention_goes_sparse_only_for_sparse_masks_of_long_codes():
    def chosen(model):
        return model.impl_for(model.graph, torch.zeros(1, model.graph.n))

    cpu_kernel = "fused" if fused_kernel() is not None else "dense"
    dense_mask = TransformerDecoder(get_code("BCH_n255_k207"), {"layers": 1, "d_model": 16, "heads": 2})
    assert dense_mask.graph.kept_fraction > 0.5 and chosen(dense_mask) == cpu_kernel
    sparse_mask = TransformerDecoder(get_code("LDPC_n648_k486"), {"layers": 1, "d_model": 16, "heads": 2})
    assert sparse_mask.graph.kept_fraction < 0.1 and chosen(sparse_mask) == "sparse"
    short = TransformerDecoder(get_code("LDPC_n49_k24"), {"layers": 1, "d_model": 16, "heads": 2})
    assert chosen(short) == cpu_kernel
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert chosen(short) == "dense"  # the kernel is float32 only
    dropout = TransformerDecoder(get_code("LDPC_n49_k24"), {"layers": 1, "d_model": 16, "heads": 2, "dropout": 0.1})
    assert chosen(dropout.train()) == "dense" and chosen(dropout.eval()) == cpu_kernel


def test_feedforward_channel_mask_folded_into_the_output_weights_equals_masking_the_activations():
    from eccflow.nn.feedforward import FeedForward

    torch.manual_seed(0)
    ffn = FeedForward(8, 16)
    ffn.channel_mask = torch.rand(16).requires_grad_(True)
    x = torch.randn(3, 5, 8)
    folded = ffn(x)
    folded.sum().backward()
    reference = ffn.down(ffn.act(ffn.up(x)) * ffn.channel_mask.detach())
    mask = ffn.channel_mask.detach().clone().requires_grad_(True)
    ffn.down(ffn.act(ffn.up(x)) * mask).sum().backward()
    assert torch.allclose(folded, reference, atol=1e-6) and torch.allclose(ffn.channel_mask.grad, mask.grad, atol=1e-5)
