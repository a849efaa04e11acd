"""Fisher structured pruning: per-sample importance, FLOPs-budgeted mask search, physical removal."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from eccflow.codes import get_code
from eccflow.compress.fisher import UnitMask, apply_mask, fisher_importance, search_mask, unit_costs
from eccflow.decoders.flops import flops_per_frame
from eccflow.decoders.transformer import TransformerDecoder, noise_target
from eccflow.errors import ConfigError

ARCH = dict(layers=2, d_model=16, heads=4, d_ff=32, embedding="type", bias="distance", output="shared")


def _model(seed: int = 0) -> TransformerDecoder:
    torch.manual_seed(seed)
    return TransformerDecoder(get_code("BCH_n15_k7"), ARCH)


def _batch(count: int = 6, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return 1.5 + 2.0 * torch.randn(count, 15, generator=generator), torch.zeros(count, 15)


def test_importance_is_the_sum_of_squared_per_sample_gradients():
    model, (llr, bits) = _model(), _batch()
    heads, channels = fisher_importance(model, [(llr, bits)])
    expected_heads, expected_channels = torch.zeros_like(heads), torch.zeros_like(channels)
    for s in range(llr.shape[0]):  # brute force: one sample at a time, scalar masks
        probe = copy.deepcopy(model).eval()
        masks = []
        for block in probe.blocks:
            block.attention.head_mask = torch.ones(4, requires_grad=True)
            block.ffn.channel_mask = torch.ones(32, requires_grad=True)
            masks += [block.attention.head_mask, block.ffn.channel_mask]
        x = llr[s:s + 1]
        loss = F.binary_cross_entropy_with_logits(probe.logits(x), noise_target(x, bits[s:s + 1]))
        grads = torch.autograd.grad(loss, masks)
        for i in range(2):
            expected_heads[i] += grads[2 * i].pow(2)
            expected_channels[i] += grads[2 * i + 1].pow(2)
    torch.testing.assert_close(heads, expected_heads, rtol=1e-4, atol=1e-10)
    torch.testing.assert_close(channels, expected_channels, rtol=1e-4, atol=1e-10)
    assert model.blocks[0].attention.head_mask.shape == (4,)  # masks restored


def test_a_silenced_head_has_zero_importance():
    model = _model()
    with torch.no_grad():
        attention = model.blocks[1].attention
        attention.out.weight[:, 2 * 4: 3 * 4] = 0  # head 2's output columns (d_head = 4)
    heads, _ = fisher_importance(model, [_batch()])
    assert heads[1, 2] == 0 and (heads[1, [0, 1, 3]] > 0).all()


@pytest.mark.parametrize("keep", [0.6, 0.8])
def test_mask_meets_the_flops_budget_to_one_unit(keep):
    model = _model()
    heads, channels = fisher_importance(model, [_batch(16)])
    full, head_cost, channel_cost = unit_costs(model)
    mask = search_mask(heads, channels, full, head_cost, channel_cost, flops_keep=keep)
    pruned = apply_mask(copy.deepcopy(model), mask)
    flops = flops_per_frame(pruned, 15)
    assert flops <= keep * full
    assert keep * full - flops < max(head_cost, channel_cost)
    assert sum(p.numel() for p in pruned.parameters()) < sum(p.numel() for p in model.parameters())


def test_search_keeps_the_most_important_units():
    heads = torch.tensor([[5.0, 1.0], [4.0, 0.5]])
    channels = torch.tensor([[3.0, 2.0, 0.1], [0.2, 1.5, 0.3]])
    # fixed cost 10, heads 10 each, channels 1 each: full = 10 + 40 + 6 = 56
    mask = search_mask(heads, channels, 56, 10, 1, flops_keep=(10 + 20 + 2 + 2) / 56)
    assert mask.heads == [[0], [0]] and mask.channels == [[0, 1], [1, 2]]


def test_pruned_model_equals_the_masked_model():
    model, (llr, _) = _model().eval(), _batch()
    mask = UnitMask(heads=[[0, 3], [1]], channels=[list(range(0, 32, 2)), list(range(5))], num_heads=4, d_ff=32)
    head_t, channel_t = mask.as_tensors()
    masked = copy.deepcopy(model)
    for block, h, c in zip(masked.blocks, head_t, channel_t):
        block.attention.head_mask, block.ffn.channel_mask = h, c
    pruned = apply_mask(copy.deepcopy(model), mask)
    torch.testing.assert_close(pruned.logits(llr), masked.logits(llr), atol=1e-5, rtol=1e-5)


def test_mask_errors_are_clear(tmp_path):
    model = _model()
    with pytest.raises(ConfigError, match="3 head lists"):
        apply_mask(model, UnitMask([[0]] * 3, [[0]] * 3, 4, 32))
    with pytest.raises(ConfigError, match="8 heads / 32"):
        apply_mask(model, UnitMask([[0]] * 2, [[0]] * 2, 8, 32))
    with pytest.raises(ConfigError, match="in 0..3"):
        apply_mask(model, UnitMask([[0, 4], [0]], [[0], [0]], 4, 32))
    with pytest.raises(ConfigError, match=r"\(0, 1\]"):
        search_mask(torch.ones(2, 4), torch.ones(2, 32), 100, 1, 1, flops_keep=1.5)
    (tmp_path / "m.json").write_text('{"heads": [[0]]')
    with pytest.raises(ConfigError, match="malformed"):
        UnitMask.from_json(tmp_path / "m.json")
    mask = UnitMask([[0, 1], [2]], [[0], [1, 2]], 4, 32)
    mask.to_json(tmp_path / "ok.json")
    assert UnitMask.from_json(tmp_path / "ok.json") == mask
    assert mask.jaccard(mask) == 1.0 and 0 < mask.jaccard(UnitMask([[0], [2]], [[0], [1]], 4, 32)) < 1


def test_lora_starts_at_the_base_model_and_merges_exactly():
    from eccflow.compress.lora import add_lora, bernoulli_kd, merge_lora

    model, (llr, _) = _model().eval(), _batch()
    before = model.logits(llr).detach()
    adapters = add_lora(model, rank=2, alpha=4.0)
    assert all(not p.requires_grad for n, p in model.named_parameters() if "lora_" not in n)
    torch.testing.assert_close(model.logits(llr), before)  # B = 0 at init
    with torch.no_grad():
        for p in adapters:
            p.add_(0.05 * torch.randn_like(p))
    adapted = model.logits(llr).detach()
    assert not torch.allclose(adapted, before)
    merge_lora(model)
    torch.testing.assert_close(model.logits(llr), adapted, atol=1e-5, rtol=1e-5)
    x = torch.randn(4, 15)
    assert bernoulli_kd(x, x).abs() < 1e-6 and bernoulli_kd(x, -x) > 0
