"""Training batches drawn on the training device: the channel's distribution, the Eb/N0 mix, seeding.

Tolerances are 5 standard errors of the estimated quantity (a false failure about once in 3.5 million runs).
"""
from __future__ import annotations

import hashlib
import math

import pytest
import torch

from eccflow.channels import ebn0_db_to_sigma
from eccflow.codes import get_code
from eccflow.data import AWGNDataModule, DeviceSampler, EbN0Sampler, MultiCodeDataModule, code_schedule
from eccflow.errors import ConfigError

BCH = "BCH_n31_k16"
Z = 5.0


def digest(t: torch.Tensor) -> str:
    return hashlib.sha1(t.cpu().contiguous().numpy().tobytes()).hexdigest()


def test_device_batches_follow_the_bpsk_awgn_channel_and_the_ebn0_mix() -> None:
    code = get_code(BCH)
    sampler = DeviceSampler(code, EbN0Sampler.from_config([3.0, 5.0], is_range=False), 20000, "zero", seed=1)
    batch = sampler.draw(epoch=0, rank=0, batch=0, device=torch.device("cpu"))
    assert batch["llr"].shape == batch["bits"].shape == (20000, code.n) and not batch["bits"].any()
    share = float((batch["ebn0_db"] == 3.0).double().mean())
    assert set(batch["ebn0_db"].unique().tolist()) == {3.0, 5.0}
    assert abs(share - 0.5) < Z * math.sqrt(0.25 / 20000)
    for ebn0 in (3.0, 5.0):
        sigma = ebn0_db_to_sigma(ebn0, code.rate)
        y = (batch["llr"][batch["ebn0_db"] == ebn0] * sigma**2 / 2).double().flatten()  # y = 1 + z, z ~ N(0, sigma^2)
        count = y.numel()
        assert abs(float(y.mean()) - 1.0) < Z * sigma / math.sqrt(count)
        assert abs(float(y.var()) / sigma**2 - 1.0) < Z * math.sqrt(2 / (count - 1))  # var of s^2/sigma^2


def test_device_batches_of_random_codewords_are_codewords_with_uniform_bits_and_a_uniform_ebn0_range() -> None:
    code = get_code(BCH)
    sampler = DeviceSampler(code, EbN0Sampler.from_config([1.0, 7.0]), 4000, "random", seed=2)
    batch = sampler.draw(epoch=0, rank=0, batch=0, device=torch.device("cpu"))
    H = torch.as_tensor(code.H.copy(), dtype=torch.float32)
    assert not torch.remainder(batch["bits"] @ H.T, 2).any()
    ones = float(batch["bits"].mean())
    assert abs(ones - 0.5) < Z * math.sqrt(0.25 / batch["bits"].numel()) * math.sqrt(code.n)  # bits of a word correlate
    ebn0 = batch["ebn0_db"].double()
    assert 1.0 <= float(ebn0.min()) and float(ebn0.max()) <= 7.0
    assert abs(float(ebn0.mean()) - 4.0) < Z * math.sqrt(36 / 12 / ebn0.numel())


def test_device_batches_are_reproducible_and_never_repeat_across_epoch_rank_batch_and_seed() -> None:
    code = get_code(BCH)

    def draw(seed=3, epoch=0, rank=0, batch=0) -> str:
        sampler = DeviceSampler(code, EbN0Sampler.from_config([1.0, 7.0]), 16, "random", seed=seed)
        return digest(sampler.draw(epoch, rank, batch, torch.device("cpu"))["llr"])

    base = draw()
    assert base == draw()  # the same batch whenever it is drawn again (a resumed run, a rerun)
    others = {draw(epoch=1), draw(rank=1), draw(batch=1), draw(seed=4)}
    assert len(others) == 4 and base not in others


def test_device_datamodule_yields_batch_numbers_and_draws_the_batches_on_the_device() -> None:
    code = get_code(BCH)

    def make() -> AWGNDataModule:
        return AWGNDataModule(code, [1.0, 7.0], batch_size=8, batches_per_epoch=5, codewords="random",
                              val_ebn0_db=[4.0], val_frames=20, val_batch_size=20, seed=5)

    dm = make()
    assert list(dm.train_dataloader()) == [0, 1, 2, 3, 4]  # nothing drawn by the DataLoader
    batches = list(dm.train_batches())
    assert len(batches) == 5 and all(b["llr"].shape == (8, code.n) for b in batches)
    assert [digest(b["llr"]) for b in batches] == [digest(b["llr"]) for b in make().train_batches()]
    assert len({digest(b["llr"]) for b in batches}) == 5
    host = AWGNDataModule(code, [1.0, 7.0], batch_size=8, batches_per_epoch=5, codewords="random", val_ebn0_db=[4.0],
                          val_frames=20, val_batch_size=20, seed=5, sampling="host")
    # both draw the same validation words: only training batches move to the device
    assert [digest(b["llr"]) for b in host.val_dataloader()[0]] == [digest(b["llr"]) for b in dm.val_dataloader()[0]]
    assert all(isinstance(b, dict) for b in host.train_dataloader())


def test_device_mixture_keeps_the_code_schedule_and_groups_each_batch_by_code() -> None:
    dm = MultiCodeDataModule([BCH, "POLAR_n64_k48"], [2.0, 6.0], batch_size=4, batches_per_epoch=12,
                             codewords="random", val_ebn0_db=[4.0], val_frames=8, val_batch_size=8, seed=6)
    batches = list(dm.train_batches())
    assert [b["code_index"] for b in batches] == code_schedule(dm.probabilities, 12, 6, 0)
    for b in batches:
        assert b["code"] == dm.codes[b["code_index"]].name
        assert b["llr"].shape == (4, dm.codes[b["code_index"]].n)


@pytest.mark.parametrize("kw, message", [
    (dict(sampling="gpu"), "data.sampling must be one of"),
    (dict(num_workers=2), "num_workers must be 0 with data.sampling=device"),
])
def test_bad_sampling_settings_are_clear_errors(kw: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        AWGNDataModule(get_code(BCH), [1.0, 7.0], **kw)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_batches_are_drawn_on_the_gpu() -> None:
    sampler = DeviceSampler(get_code(BCH), EbN0Sampler.from_config([1.0, 7.0]), 64, "random", seed=1)
    batch = sampler.draw(0, 0, 0, torch.device("cuda"))
    assert all(t.is_cuda for t in batch.values())
