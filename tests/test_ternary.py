"""AAP ternary QAT: ternary weights, straight-through gradients, INT8 activations, 2-bit packing, footprint."""
from __future__ import annotations

import pytest
import torch

from eccflow.codes import get_code
from eccflow.compress.qat import footprint, load_full_precision, sparsity_by_layer_type
from eccflow.decoders.transformer import TransformerDecoder
from eccflow.errors import ConfigError
from eccflow.nn.ternary import TernaryLinear, pack_ternary, quantize_activations, unpack_ternary


def test_weights_are_ternary_times_one_scale_and_gradients_pass_straight_through():
    torch.manual_seed(0)
    layer = TernaryLinear(16, 8, percentile=0.5)
    values = layer.ternary()
    assert set(values.unique().tolist()) <= {-1.0, 0.0, 1.0}
    zero_fraction = float((values == 0).float().mean())
    assert 0.2 < zero_fraction < 0.5  # |W| < s/2 with s = median |W|
    x = torch.randn(4, 16, requires_grad=True)
    layer(x).sum().backward()
    assert layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0
    assert layer.delta.grad is not None and x.grad is not None
    frozen = TernaryLinear(16, 8, learn_delta=False)
    assert not frozen.delta.requires_grad
    with pytest.raises(ConfigError, match="percentile"):
        TernaryLinear(4, 4, percentile=1.0)


def test_int8_activations_have_at_most_255_levels_per_token():
    x = torch.randn(3, 1000)
    q = quantize_activations(x)
    for row, qrow in zip(x, q):
        step = row.abs().max() / 127
        assert torch.allclose(qrow / step, torch.round(qrow / step), atol=1e-4)
        assert (qrow - row).abs().max() <= step / 2 + 1e-6


def test_two_bit_packing_round_trips():
    values = torch.randint(-1, 2, (37,)).float()
    packed = pack_ternary(values)
    assert packed.dtype == torch.uint8 and packed.numel() == 10
    assert torch.equal(unpack_ternary(packed, 37), values)


def test_qat_model_starts_from_full_precision_weights_and_compresses():
    code = get_code("BCH_n31_k16")
    arch = dict(layers=2, d_model=32, heads=4, rings=True, spe_dim=4, norm="post", activation="relu")
    full = TransformerDecoder(code, arch)
    quantized = TransformerDecoder(code, {**arch, "quantization": "aap"})
    load_full_precision(quantized, full.state_dict())
    torch.testing.assert_close(quantized.blocks[0].ffn.up.weight, full.blocks[0].ffn.up.weight)
    report = footprint(quantized)
    assert 0.5 < report["compression"] < 0.94  # ternary layers shrink 16x; embeddings, norms, head stay FP32
    sparsity = sparsity_by_layer_type(quantized)
    assert set(sparsity) == {"sparsity_down", "sparsity_out", "sparsity_qkv", "sparsity_up"}
    with pytest.raises(ValueError, match="do not fit"):
        load_full_precision(quantized, {**full.state_dict(), "extra": torch.zeros(1)})
    with pytest.raises(ConfigError, match="quantization"):
        TransformerDecoder(code, {**arch, "quantization": "int4"})


def test_lsq_scale_gradient_counts_clipped_weights_as_their_ternary_value():
    """``scale_grad=lsq``: d(s W_t)/ds is W_t - W/s inside the clip range and W_t outside; ``ste`` adds -W/s
    for the clipped weights too. The weight gradient is the identity in both, and the forward is the same."""
    torch.manual_seed(0)
    layers = {mode: TernaryLinear(16, 8, percentile=0.5, bias=False, scale_grad=mode) for mode in ("ste", "lsq")}
    layers["lsq"].load_state_dict(layers["ste"].state_dict())
    x = torch.randn(4, 16)
    outputs = {}
    for mode, layer in layers.items():
        outputs[mode] = layer(x)
        outputs[mode].sum().backward()
    torch.testing.assert_close(outputs["ste"], outputs["lsq"])
    torch.testing.assert_close(layers["ste"].weight.grad, layers["lsq"].weight.grad)
    w = layers["lsq"].weight.detach()
    s = float(layers["lsq"].scale().detach())
    q = torch.clamp(torch.round(w / s), -1, 1)
    upstream = quantize_activations(x).sum(0).expand_as(w)  # dL/d(effective weight) for L = sum(x W^T)
    gamma = s / float(layers["lsq"].delta.detach())
    inside = (w / s).abs() <= 1
    lsq = (upstream * torch.where(inside, q - w / s, q)).sum() * gamma
    ste = (upstream * (q - w / s)).sum() * gamma
    torch.testing.assert_close(layers["lsq"].delta.grad, lsq, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(layers["ste"].delta.grad, ste, rtol=1e-4, atol=1e-5)
    with pytest.raises(ConfigError, match="scale_grad"):
        TernaryLinear(4, 4, scale_grad="clip")


def test_delta_lr_puts_the_aap_scales_in_their_own_optimizer_group_with_the_same_cosine():
    from eccflow.lit import TransformerLitModule

    code = get_code("BCH_n31_k16")
    arch = dict(layers=2, d_model=32, heads=4, rings=True, spe_dim=4, norm="post", activation="relu", quantization="aap")
    net = TransformerDecoder(code, arch)
    deltas = {id(m.delta) for m in net.modules() if isinstance(m, TernaryLinear)}
    assert len(deltas) == 2 * 4  # qkv, out, up, down per block
    lit = TransformerLitModule(net, arch, code.name, lr=1e-4, lr_min=5e-7, delta_lr=1e-5)
    lit.trainer = type("T", (), {"estimated_stepping_batches": 100})()  # configure_optimizers reads only this
    config = lit.configure_optimizers()
    optimizer, schedule = config["optimizer"], config["lr_scheduler"]["scheduler"]
    groups = {g["name"]: g for g in optimizer.param_groups}
    assert set(groups) == {"weights", "delta"}
    assert {id(p) for p in groups["delta"]["params"]} == deltas
    assert not deltas & {id(p) for p in groups["weights"]["params"]}
    assert len(groups["weights"]["params"]) + len(deltas) == len(list(lit.parameters()))
    assert groups["weights"]["lr"] == pytest.approx(1e-4) and groups["delta"]["lr"] == pytest.approx(1e-5)
    for _ in range(100):
        optimizer.step()
        schedule.step()
    assert groups["weights"]["lr"] == pytest.approx(5e-7) and groups["delta"]["lr"] == pytest.approx(5e-7)
    # default: one group at lr; delta_lr below lr_min is refused
    plain = TransformerLitModule(net, arch, code.name, lr=1e-4, lr_min=5e-7)
    plain.trainer = lit.trainer
    assert len(plain.configure_optimizers()["optimizer"].param_groups) == 1
    with pytest.raises(ConfigError, match="delta_lr"):
        TransformerLitModule(net, arch, code.name, lr=1e-4, lr_min=5e-7, delta_lr=1e-8)
