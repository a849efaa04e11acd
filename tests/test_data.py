"""Data modules: seeding per (epoch, rank, worker), fixed validation streams, code mixtures, BICM, active sampling."""
from __future__ import annotations

import hashlib
import math
import lightning as L
import pytest
import torch
from scipy.stats import norm
from torch.utils.data import DataLoader

from eccflow.channels import hard_decision
from eccflow.codes import get_code
from eccflow.config import compose
from eccflow.data import (
    ActiveErrorDataModule,
    ActiveErrorSampler,
    ActiveSamplingError,
    ActiveYieldLogger,
    AWGNDataModule,
    AWGNStream,
    BICMDataModule,
    EbN0Sampler,
    MultiCodeDataModule,
    MultiCodeStream,
    equal_snr_batches,
    fixed_stream,
    stream_seed,
)
from eccflow.decoders.base import DecoderOutput
from eccflow.errors import ConfigError
from eccflow.eval.metrics import wilson_interval

BCH = "BCH_n31_k16"


def digest(t: torch.Tensor) -> str:
    return hashlib.sha1(t.contiguous().numpy().tobytes()).hexdigest()


def syndrome_ok(code, bits: torch.Tensor) -> bool:
    H = torch.as_tensor(code.H.copy(), dtype=torch.float32)
    return bool((torch.remainder(bits @ H.T, 2) == 0).all())


# --- seeding ---------------------------------------------------------------------------------------

def test_stream_seed_distinct_over_epoch_rank_worker() -> None:
    grid = [(s, e, r, w) for s in (0, 1, 7) for e in range(-1, 20) for r in range(16) for w in range(8)]
    seeds = {stream_seed(*g) for g in grid}
    assert len(seeds) == len(grid)
    assert all(0 <= s < 2**63 - 1 for s in seeds)


def _stream_hashes(**kw) -> set[str]:
    code = get_code(BCH)
    args = dict(code=code, ebn0=EbN0Sampler.from_config([1.0, 7.0]), batch_size=16, batches=4, codewords="random", seed=3)
    return {digest(b["llr"]) for b in AWGNStream(**{**args, **kw})}


def test_training_streams_never_repeat_across_epoch_rank_worker_and_are_reproducible() -> None:
    base = _stream_hashes(epoch=0, rank=0)
    assert len(base) == 4
    assert base == _stream_hashes(epoch=0, rank=0)  # reproducible
    assert base.isdisjoint(_stream_hashes(epoch=1, rank=0))
    assert base.isdisjoint(_stream_hashes(epoch=0, rank=1))
    assert base.isdisjoint(_stream_hashes(epoch=0, rank=0, seed=4))
    # two dataloader workers split one epoch's batches and draw from distinct (worker) streams
    stream = AWGNStream(get_code(BCH), EbN0Sampler.from_config(4.0), 8, 6, "zero", seed=3)
    with_workers = [digest(b["llr"]) for b in DataLoader(stream, batch_size=None, num_workers=2)]
    assert len(with_workers) == 6 and len(set(with_workers)) == 6


def test_validation_streams_are_fixed() -> None:
    code = get_code(BCH)
    a = AWGNDataModule(code, [1.0, 7.0], codewords="random", val_ebn0_db=[4.0, 5.0], val_frames=50, val_batch_size=20, seed=2)
    b = AWGNDataModule(code, [1.0, 7.0], codewords="random", val_ebn0_db=[4.0, 5.0], val_frames=50, val_batch_size=20, seed=2)
    va, vb = a.val_dataloader(), b.val_dataloader()
    assert [[digest(x["llr"]) for x in dl] for dl in va] == [[digest(x["llr"]) for x in dl] for dl in vb]
    assert [x["llr"].shape[0] for x in va[0]] == [20, 20, 10]
    assert all(bool((x["ebn0_db"] == 5.0).all()) for x in va[1])
    assert syndrome_ok(code, torch.cat([x["bits"] for x in va[0]]))


# --- code mixtures -----------------------------------------------------------------------------------

def _mixture(**kw) -> MultiCodeDataModule:
    args = dict(codes=[BCH, "POLAR_n64_k48", "LDPC_n49_k24"], train_ebn0_db=[2.0, 6.0], weights=[2, 1, 1], batch_size=8,
                batches_per_epoch=24, codewords="random", val_ebn0_db=[4.0, 5.0], val_frames=30, val_batch_size=16, seed=5)
    return MultiCodeDataModule(**{**args, **kw})


def _trained_on(dm: MultiCodeDataModule, epoch: int = 0, rank: int = 0) -> list[dict]:
    """One epoch of training batches as rank ``rank`` sees them (no Trainer needed)."""
    stream = MultiCodeStream(dm.codes, dm.probabilities, dm.train_ebn0, dm.batch_size, dm.batches_per_epoch,
                             dm.codewords, dm.seed, epoch, rank)
    return list(DataLoader(stream, batch_size=None))


def test_mixture_batches_are_grouped_by_code_with_correct_shapes() -> None:
    dm = _mixture()
    batches = _trained_on(dm)
    assert len(batches) == 24
    seen = set()
    for b in batches:
        code = dm.codes[b["code_index"]]
        assert b["code"] == code.name
        assert b["llr"].shape == b["bits"].shape == (8, code.n)
        assert b["ebn0_db"].shape == (8,) and bool(((b["ebn0_db"] >= 2) & (b["ebn0_db"] <= 6)).all())
        assert syndrome_ok(code, b["bits"])
        seen.add(b["code_index"])
    assert seen == {0, 1, 2}


def test_mixture_schedule_shared_by_ranks_samples_distinct_and_weights_respected() -> None:
    dm = _mixture()
    r0, r1, e1 = _trained_on(dm, rank=0), _trained_on(dm, rank=1), _trained_on(dm, epoch=1)
    assert [b["code_index"] for b in r0] == [b["code_index"] for b in r1]  # same code per step on every rank
    assert {digest(b["llr"]) for b in r0}.isdisjoint(digest(b["llr"]) for b in r1)
    assert {digest(b["llr"]) for b in r0}.isdisjoint(digest(b["llr"]) for b in e1)
    assert [digest(b["llr"]) for b in r0] == [digest(b["llr"]) for b in _trained_on(dm, rank=0)]
    only_first = _mixture(weights=[1, 0, 0])
    assert {b["code"] for b in _trained_on(only_first)} == {BCH}
    big = _mixture(batch_size=1, batches_per_epoch=3000)
    counts = torch.bincount(torch.tensor([b["code_index"] for b in _trained_on(big)]), minlength=3)
    assert abs(counts[0].item() / 3000 - 0.5) < 0.04  # weight 2 of 4


def test_mixture_validation_per_code_and_ebn0_matches_single_code_streams() -> None:
    dm = _mixture()
    loaders = dm.val_dataloader()
    assert len(loaders) == 6 and dm.val_keys[3] == ("POLAR_n64_k48", 5.0)
    polar_5db = list(loaders[3])
    assert all(b["code"] == "POLAR_n64_k48" and b["code_index"] == 1 and b["llr"].shape[1] == 64 for b in polar_5db)
    single = fixed_stream(get_code("POLAR_n64_k48"), 5.0, 30, 16, "random", 5)
    assert [digest(b["llr"]) for b in polar_5db] == [digest(b["llr"]) for b in single]


def test_heldout_codes_are_validated_but_never_trained_on() -> None:
    dm = _mixture(heldout=["BCH_n63_k36"])
    assert {b["code"] for b in _trained_on(dm)} == {BCH, "POLAR_n64_k48", "LDPC_n49_k24"}
    assert dm.val_keys[-2:] == [("BCH_n63_k36", 4.0), ("BCH_n63_k36", 5.0)]
    heldout_4db = list(dm.val_dataloader()[6])
    assert all(b["code"] == "BCH_n63_k36" and b["llr"].shape[1] == 63 for b in heldout_4db)
    single = fixed_stream(get_code("BCH_n63_k36"), 4.0, 30, 16, "random", 5)
    assert [digest(b["llr"]) for b in heldout_4db] == [digest(b["llr"]) for b in single]


@pytest.mark.parametrize("kw, message", [
    (dict(heldout=["LDPC_n49_k24"]), "never enter the mixture.*LDPC_n49_k24"),
    (dict(weights=[1, 1]), "one mixture weight per code"),
    (dict(weights=[1, -1, 1]), "finite, >= 0"),
    (dict(weights=[0, 0, 0]), "not all zero"),
    (dict(codes=[BCH, BCH]), "distinct"),
    (dict(codes=[]), "non-empty"),
    (dict(codewords="ones"), "codewords"),
])
def test_mixture_bad_config(kw: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _mixture(**kw)


# --- BICM --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("modulation, order, demapping", [("qam", 16, "exact"), ("psk", 8, "maxlog"), ("qam", 16, "maxlog")])
def test_bicm_llr_sign_and_high_snr_hard_decisions_recover_codewords(modulation: str, order: int, demapping: str) -> None:
    code = get_code(BCH)
    dm = BICMDataModule(code, 30.0, modulation=modulation, order=order, demapping=demapping, batch_size=64,
                        batches_per_epoch=2, val_ebn0_db=[30.0], val_frames=64, val_batch_size=64, seed=1)
    batches = [*dm.train_batches(), *dm.val_dataloader()[0]]
    for b in batches:
        assert b["llr"].shape == b["bits"].shape == (64, code.n)
        assert syndrome_ok(code, b["bits"]) and 0 < b["bits"].mean() < 1  # random codewords
        assert torch.equal(hard_decision(b["llr"]), b["bits"])
        # positive LLR means bit 0, as for BPSK
        assert bool((b["llr"][b["bits"] == 0] > 0).all()) and bool((b["llr"][b["bits"] == 1] < 0).all())


def test_bicm_streams_seeded_reproducible_and_mid_snr_noisy() -> None:
    code = get_code(BCH)

    def make(seed: int = 1) -> BICMDataModule:
        return BICMDataModule(code, [3.0, 5.0], batch_size=32, batches_per_epoch=3, val_ebn0_db=[4.0], val_frames=40,
                              val_batch_size=40, seed=seed)

    a = [digest(b["llr"]) for b in make().train_batches()]
    assert a == [digest(b["llr"]) for b in make().train_batches()]
    other = make()
    other.rank = 1
    assert set(a).isdisjoint(digest(b["llr"]) for b in other.train_batches())
    assert [digest(b["llr"]) for b in make().val_dataloader()[0]] == [digest(b["llr"]) for b in make().val_dataloader()[0]]
    val = next(iter(make().val_dataloader()[0]))
    errors = (hard_decision(val["llr"]) != val["bits"]).float().mean().item()
    assert 0.001 < errors < 0.2  # a real channel at 4 dB, not noiseless
    assert make().channel.interleaver.permutation.tolist() == make().channel.interleaver.permutation.tolist()


def test_bicm_bad_config_and_zero_codeword_warning() -> None:
    code = get_code(BCH)
    with pytest.raises(ConfigError, match="square QAM"):
        BICMDataModule(code, 4.0, modulation="qam", order=8)
    with pytest.raises(ConfigError, match="demapping"):
        BICMDataModule(code, 4.0, demapping="approx")
    with pytest.warns(UserWarning, match="not symmetric"):
        BICMDataModule(code, 4.0, codewords="zero")


# --- active error sampling ---------------------------------------------------------------------------

class OddFrameFails:
    """Fake decoder: correct (all-zero word) except on frames at odd positions of each batch."""

    def __call__(self, llr: torch.Tensor) -> DecoderOutput:
        bits = torch.zeros_like(llr)
        bits[1::2, 0] = 1.0
        return DecoderOutput(llr=1 - 2 * bits, bits=bits)


class HardDecision(torch.nn.Module):
    """A module decoder: plain hard decision (fails when any channel LLR has the wrong sign)."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(()))

    def forward(self, llr: torch.Tensor) -> DecoderOutput:
        assert not torch.is_grad_enabled() and not self.training
        return DecoderOutput(llr=llr * self.scale, bits=hard_decision(llr))


def test_active_sampler_equal_counts_and_exact_yield_on_known_decoder() -> None:
    sampler = ActiveErrorSampler(get_code(BCH), [3.0, 4.0, 5.0], frames_per_snr=10, candidate_batch_size=8, seed=1)
    hard = sampler.collect(OddFrameFails())
    assert [f["llr"].shape[0] for f in hard] == [10, 10, 10]
    assert [float(f["ebn0_db"].unique()) for f in hard] == [3.0, 4.0, 5.0]
    # 4 failures per batch of 8: 8 + 8 + 4 candidates (the rest of the last batch is discarded unseen)
    assert [s.drawn for s in sampler.stats] == [20, 20, 20]
    stats = sampler.yield_stats
    assert stats["active/yield_4dB"] == 0.5 and stats["active/yield"] == 0.5
    assert stats["active/kept"] == 30 and stats["active/candidates"] == 60
    assert set(stats) == {"active/yield_3dB", "active/yield_4dB", "active/yield_5dB", "active/yield", "active/kept",
                          "active/candidates"}


def test_active_sampler_keeps_only_failures_and_yield_estimates_fer() -> None:
    code = get_code(BCH)
    ebn0 = [4.0, 6.0]
    decoder = HardDecision().train()
    sampler = ActiveErrorSampler(code, ebn0, frames_per_snr=300, candidate_batch_size=256, seed=3)
    hard = sampler.collect(decoder)
    assert decoder.training  # mode restored
    for frames, e, stat in zip(hard, ebn0, sampler.stats):
        assert frames["llr"].shape == (300, code.n)
        assert bool((hard_decision(frames["llr"]) != frames["bits"]).any(dim=1).all())  # every kept frame is a failure
        p = norm.sf(math.sqrt(2 * code.rate * 10 ** (e / 10)))
        fer = 1 - (1 - p) ** code.n
        lo, hi = wilson_interval(stat.kept, stat.drawn, 2.5)
        assert lo <= fer <= hi, (e, stat, fer)
    assert sampler.yield_stats["active/yield_4dB"] > sampler.yield_stats["active/yield_6dB"]
    # different epoch / rank: different candidates
    again = sampler.collect(decoder, epoch=1)
    assert digest(again[0]["llr"]) != digest(hard[0]["llr"])
    assert digest(sampler.collect(decoder, epoch=0)[0]["llr"]) == digest(hard[0]["llr"])


def test_active_sampler_error_positions_restrict_failures() -> None:
    sampler = ActiveErrorSampler(get_code(BCH), [4.0], frames_per_snr=4, max_candidates_per_snr=64, candidate_batch_size=8,
                                 error_positions=[1, 2])
    with pytest.warns(UserWarning, match="could not fill"):  # OddFrameFails only errs on bit 0
        hard = sampler.collect(OddFrameFails())
    assert hard[0]["llr"].shape[0] == 0 and sampler.yield_stats["active/yield"] == 0.0


def test_active_sampler_too_good_decoder_warns_or_raises() -> None:
    perfect = lambda llr: DecoderOutput(llr=torch.ones_like(llr), bits=torch.zeros_like(llr))  # noqa: E731 (zero codeword)
    sampler = ActiveErrorSampler(get_code(BCH), [4.0, 5.0], frames_per_snr=5, max_candidates_per_snr=50,
                                 candidate_batch_size=16)
    with pytest.warns(UserWarning, match=r"4 dB: 0/5 failures in 50 candidates.*max_candidates_per_snr"):
        hard = sampler.collect(perfect)
    assert [f["llr"].shape[0] for f in hard] == [0, 0]
    assert sampler.yield_stats["active/yield_5dB"] == 0.0 and sampler.yield_stats["active/candidates"] == 100
    strict = ActiveErrorSampler(get_code(BCH), [4.0], frames_per_snr=5, max_candidates_per_snr=50, on_shortfall="error")
    with pytest.raises(ActiveSamplingError, match="too good"):
        strict.collect(perfect)
    assert strict.yield_stats["active/yield"] == 0.0  # recorded before raising
    with pytest.raises(ActiveSamplingError, match="no decoder failure"):
        equal_snr_batches(hard, 2, 3)


def test_active_sampler_bad_decoder_and_config() -> None:
    code = get_code(BCH)
    with pytest.raises(ConfigError, match=r"\.bits"):
        ActiveErrorSampler(code, [4.0], frames_per_snr=2).collect(lambda llr: llr)
    for kw, message in [(dict(ebn0_db=[]), "non-empty"), (dict(ebn0_db=[4.0, 4.0]), "distinct"),
                        (dict(frames_per_snr=0), "frames_per_snr"), (dict(max_candidates_per_snr=5), ">= frames_per_snr"),
                        (dict(on_shortfall="skip"), "on_shortfall"), (dict(error_positions=[31]), "error_positions")]:
        with pytest.raises(ConfigError, match=message):
            ActiveErrorSampler(code, **{"ebn0_db": [4.0], "frames_per_snr": 10, **kw})


def test_equal_snr_batches_fill_rules() -> None:
    def frames(count: int, e: float) -> dict:
        return {"llr": torch.arange(count, dtype=torch.float32)[:, None].repeat(1, 3) + 100 * e, "bits": torch.zeros(count, 3),
                "ebn0_db": torch.full((count,), e)}

    batches = equal_snr_batches([frames(6, 1.0), frames(6, 2.0)], 2, 3)
    assert len(batches) == 3 and all(b["llr"].shape == (4, 3) for b in batches)
    assert all(b["ebn0_db"].tolist() == [1.0, 1.0, 2.0, 2.0] for b in batches)
    assert torch.cat([b["llr"][:2, 0] for b in batches]).tolist() == [100.0 + i for i in range(6)]  # each frame once
    partial = equal_snr_batches([frames(6, 1.0), frames(2, 2.0), frames(0, 3.0)], 2, 3)
    assert all(b["llr"].shape[0] == 6 for b in partial)
    assert torch.cat([b["llr"][2:4, 0] for b in partial]).tolist() == [200.0, 201.0] * 3  # partial set repeated
    assert all(bool((b["ebn0_db"][4:] != 3.0).all()) for b in partial)  # empty SNR filled by the others' failures


def test_active_datamodule_trains_and_logs_yield(tmp_path) -> None:
    from eccflow.train import build_lit_module

    code = get_code(BCH)
    config = compose(BCH, "neural_bp", "quick")
    lit = build_lit_module(code, config)
    sampler = ActiveErrorSampler(code, [3.0, 5.0], frames_per_snr=24, candidate_batch_size=200, seed=2)
    dm = ActiveErrorDataModule(sampler, batch_size=16, val_ebn0_db=[4.0], val_frames=100, val_batch_size=100)
    assert dm.batches_per_epoch == 3
    seen: list[dict] = []

    class Record(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            seen.append(batch)

    trainer = L.Trainer(max_epochs=2, accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, reload_dataloaders_every_n_epochs=1, default_root_dir=str(tmp_path),
                        callbacks=[ActiveYieldLogger(), Record()])
    trainer.fit(lit, datamodule=dm)
    assert len(seen) == 6 and all(b["llr"].shape == (16, code.n) for b in seen)
    assert all(b["ebn0_db"].tolist() == [3.0] * 8 + [5.0] * 8 for b in seen)
    metrics = trainer.callback_metrics
    for key in ("active/yield_3dB", "active/yield_5dB", "active/yield", "val/ber_4dB"):
        assert key in metrics, key
    assert 0 < float(metrics["active/yield_5dB"]) < float(metrics["active/yield_3dB"]) <= 1
    # the second epoch sampled against the trained decoder with its own seed: new hard frames
    first, second = {digest(b["llr"]) for b in seen[:3]}, {digest(b["llr"]) for b in seen[3:]}
    assert first.isdisjoint(second)


def test_active_datamodule_bad_batch_layout() -> None:
    sampler = ActiveErrorSampler(get_code(BCH), [3.0, 4.0, 5.0], frames_per_snr=10)
    with pytest.raises(ConfigError, match="multiple of the number of Eb/N0 points"):
        ActiveErrorDataModule(sampler, batch_size=16)
    with pytest.raises(ConfigError, match="frames_per_snr"):
        ActiveErrorDataModule(sampler, batch_size=12)
    with pytest.raises(ConfigError, match="needs a Trainer"):
        ActiveErrorDataModule(sampler, batch_size=6).train_dataloader()
