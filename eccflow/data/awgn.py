"""Channel samples generated on the fly (nothing on disk): BPSK-AWGN words for training and validation.

Two ways to draw training batches (``sampling``):

* ``device`` (default): the DataLoader yields only batch numbers; each is replaced, once Lightning has
  moved it to the training device, by a batch drawn there (:class:`DeviceSampler`, seeded from
  (base seed, epoch, rank, batch)): no per-sample Python, no worker, no host-to-device copy.
* ``host``: an endless ``IterableDataset`` draws batches on the host with a generator seeded from
  (base seed, epoch, rank, worker) (dataloader workers allowed).

Either way DDP ranks never repeat samples and a re-run is reproducible. Validation uses fixed streams (one
per Eb/N0), built once from the base seed on the host, so CPU and GPU runs validate on the same words; with
``device`` sampling they are moved to the training device once and stay there.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum
from functools import lru_cache
from typing import Any, Callable, Iterator, Sequence

import lightning as L
import torch
from lightning.fabric.utilities.apply_func import move_data_to_device
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from eccflow.codes import Code
from eccflow.errors import ConfigError
from eccflow.channels.words import Channel, bpsk_awgn_channel, draw_words


DEVICE_SALT = 0xD371CE
"""Mixed into the base seed for device-drawn batches (kept apart from the host streams)."""


class Sampling(str, Enum):
    DEVICE = "device"
    HOST = "host"


def parse_sampling(value: str) -> Sampling:
    try:
        return Sampling(value)
    except ValueError:
        raise ConfigError(f"data.sampling must be one of {[s.value for s in Sampling]}, got {value!r}") from None


def stream_seed(seed: int, epoch: int, rank: int, worker: int) -> int:
    """Distinct 63-bit seed per (seed, epoch, rank, worker)."""
    mixed = (seed * 0x9E3779B97F4A7C15 + epoch * 0xBF58476D1CE4E5B9 + rank * 0x94D049BB133111EB + worker * 0x2545F4914F6CDD1D)
    return mixed % (2**63 - 1)


@dataclass(frozen=True)
class EbN0Sampler:
    """Per-sample Eb/N0 in dB: uniform on [low, high] (two-element ``range``) or uniform over a list."""

    values: tuple[float, ...]
    is_range: bool

    @classmethod
    def from_config(cls, value: Sequence[float] | float, is_range: bool | None = None) -> "EbN0Sampler":
        values = tuple(float(v) for v in (value if isinstance(value, (list, tuple)) else [value]))
        if not values or not all(math.isfinite(v) for v in values):
            raise ConfigError(f"Eb/N0 must be a non-empty list of finite dB values, got {value!r}")
        as_range = len(values) == 2 if is_range is None else is_range
        if as_range and (len(values) != 2 or values[0] > values[1]):
            raise ConfigError(f"an Eb/N0 range must be [low, high] with low <= high, got {list(values)}")
        return cls(values, as_range)

    def sample(self, count: int, generator: torch.Generator) -> torch.Tensor:
        """(count,) Eb/N0 values on the generator's device."""
        device = generator.device
        if self.is_range:
            low, high = self.values
            return low + (high - low) * torch.rand(count, generator=generator, device=device)
        index = torch.randint(len(self.values), (count,), generator=generator, device=device)
        return _values_on(self.values, str(device))[index]


@lru_cache(maxsize=32)
def _values_on(values: tuple[float, ...], device: str) -> torch.Tensor:
    return torch.tensor(values, device=device)


class DeviceSampler:
    """Training batches drawn on the training device: batch ``b`` of epoch ``e`` on rank ``r`` comes from a
    generator on that device seeded from (base seed, e, r, b), so it is the same batch whenever it is drawn
    again (a resumed run, a rerun) on the same kind of device. Output ``{"llr", "bits", "ebn0_db"}``, (B, n).
    """

    def __init__(self, code: Code, ebn0: EbN0Sampler, batch_size: int, codewords: str, seed: int,
                 channel: Channel = bpsk_awgn_channel) -> None:
        self.code, self.ebn0, self.batch_size, self.codewords = code, ebn0, int(batch_size), codewords
        self.seed, self.channel = int(seed), channel
        self._G = torch.as_tensor(code.G.copy(), dtype=torch.float32) if codewords == "random" else None
        self._generators: dict[str, torch.Generator] = {}
        self._G_on: dict[str, torch.Tensor] = {}

    def generator(self, device: torch.device, seed: int) -> torch.Generator:
        key = str(device)
        if key not in self._generators:
            self._generators[key] = torch.Generator(device=device)
        return self._generators[key].manual_seed(seed)

    def draw(self, epoch: int, rank: int, batch: int, device: torch.device) -> dict[str, torch.Tensor]:
        generator = self.generator(device, stream_seed(self.seed ^ DEVICE_SALT, epoch, rank, batch))
        key = str(device)
        if self._G is not None and key not in self._G_on:
            self._G_on[key] = self._G.to(device)
        bits = draw_words(self.code, self.batch_size, self.codewords, generator, self._G_on.get(key))
        ebn0 = self.ebn0.sample(self.batch_size, generator)
        return {"llr": self.channel(bits, ebn0, self.code.rate, generator), "bits": bits, "ebn0_db": ebn0}


class BatchNumbers(IterableDataset):
    """One epoch's batch tickets (``sampling="device"``): the batch numbers 0..B-1, or any list of tickets.

    Iterable, so Lightning does not shard it across DDP ranks: every rank steps through the whole epoch and
    draws its own samples (its rank is in the seed)."""

    def __init__(self, tickets: Sequence[Any], done: Callable[[], int] = lambda: 0) -> None:
        self.tickets, self.done = list(tickets), done

    def __iter__(self) -> Iterator[Any]:
        """The tickets after the first ``done()`` (trained before a mid-epoch checkpoint), asked when the first
        ticket is taken: Lightning restores its loops after it has built the loader. The length stays the
        epoch's, which is what Lightning's restored batch count runs up to."""
        yield from self.tickets[self.done():]

    def __len__(self) -> int:
        return len(self.tickets)


class SampledDataModule(L.LightningDataModule):
    """What the single-code and the mixture data modules share about ``sampling``: the check of the setting,
    the rank and training device read in :meth:`setup`, and :meth:`train_batches`. Subclasses implement
    ``train_dataloader`` and, for device sampling, ``on_after_batch_transfer`` (tickets -> batches)."""

    def init_sampling(self, sampling: str, num_workers: int) -> None:
        self.sampling = parse_sampling(sampling)
        if self.sampling is Sampling.DEVICE and num_workers:
            raise ConfigError("data.num_workers must be 0 with data.sampling=device (batches are drawn on the device)")
        self.rank, self.device = 0, torch.device("cpu")

    def setup(self, stage: str | None = None) -> None:
        if self.trainer is not None:
            self.rank, self.device = self.trainer.global_rank, self.trainer.strategy.root_device

    @property
    def epoch(self) -> int:
        return self.trainer.current_epoch if self.trainer is not None else 0

    def resumed_batches(self, batches_per_epoch: int) -> int:
        """Batches of this epoch trained before the mid-epoch checkpoint this fit resumed from, else 0: the
        epoch's tickets continue after them, so a resumed run sees the batches an uninterrupted one would."""
        trainer = self.trainer
        if trainer is None or not trainer.fit_loop.restarting:
            return 0
        done = trainer.fit_loop.epoch_loop.batch_progress.current.processed
        return done if 0 < done < batches_per_epoch else 0

    def train_batches(self) -> Iterator[dict[str, Any]]:
        """This epoch's training batches as the training step receives them (drawn on ``self.device`` when
        sampling on the device)."""
        for item in self.train_dataloader():
            yield self.on_after_batch_transfer(item, 0)

    def resident(self, batches: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Fixed (validation) batches, moved once to the training device when sampling there."""
        return move_data_to_device(batches, self.device) if self.sampling is Sampling.DEVICE else batches


class AWGNStream(IterableDataset):
    """Endless batches ``{"llr": (B, n), "bits": (B, n), "ebn0_db": (B,)}`` over BPSK-AWGN (or ``channel``).

    ``batches`` bounds one pass (an epoch) per rank; workers split it between them. ``channel`` follows the
    Monte-Carlo protocol ``channel(bits, ebn0_db, rate, generator) -> llr`` (default BPSK-AWGN).
    """

    def __init__(self, code: Code, ebn0: EbN0Sampler, batch_size: int, batches: int, codewords: str, seed: int,
                 epoch: int = 0, rank: int = 0, channel: Channel = bpsk_awgn_channel) -> None:
        if batch_size < 1 or batches < 1:
            raise ConfigError(f"batch_size and batches_per_epoch must be positive, got {batch_size}, {batches}")
        self.code, self.ebn0, self.batch_size, self.batches = code, ebn0, batch_size, batches
        self.codewords, self.seed, self.epoch, self.rank, self.channel = codewords, seed, epoch, rank, channel
        self.G = torch.as_tensor(code.G.copy(), dtype=torch.float32) if codewords == "random" else None

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        generator = torch.Generator().manual_seed(stream_seed(self.seed, self.epoch, self.rank, worker))
        for _ in range(worker, self.batches, workers):
            bits = draw_words(self.code, self.batch_size, self.codewords, generator, self.G)
            ebn0 = self.ebn0.sample(self.batch_size, generator)
            llr = self.channel(bits, ebn0, self.code.rate, generator)
            yield {"llr": llr, "bits": bits, "ebn0_db": ebn0}


def fixed_stream(code: Code, ebn0_db: float, frames: int, batch_size: int, codewords: str, seed: int,
                 channel: Channel = bpsk_awgn_channel) -> list[dict[str, torch.Tensor]]:
    """A reproducible list of batches at one Eb/N0 (validation / test)."""
    generator = torch.Generator().manual_seed(stream_seed(seed, -1, 0, int(round(ebn0_db * 1000))))
    G = torch.as_tensor(code.G.copy(), dtype=torch.float32) if codewords == "random" else None
    out = []
    for start in range(0, frames, batch_size):
        count = min(batch_size, frames - start)
        bits = draw_words(code, count, codewords, generator, G)
        ebn0 = torch.full((count,), float(ebn0_db))
        out.append({"llr": channel(bits, ebn0, code.rate, generator), "bits": bits, "ebn0_db": ebn0})
    return out


class AWGNDataModule(SampledDataModule):
    """Training stream with per-sample Eb/N0 and fixed validation streams, one per ``val_ebn0_db``.

    ``sampling="device"``: batch b of epoch e on rank r is drawn on the training device from seed
    (seed, e, r, b) (:class:`DeviceSampler`); ``"host"``: epoch e on rank r streams from seed (seed, e, r,
    worker). ``train_dataloader`` is rebuilt every epoch (use ``reload_dataloaders_every_n_epochs=1``) so
    epochs never repeat samples. ``channel`` replaces BPSK-AWGN (``BICMDataModule`` passes a BICM channel).
    """

    def __init__(self, code: Code, train_ebn0_db: Sequence[float] | float, batch_size: int = 128,
                 batches_per_epoch: int = 100, codewords: str = "zero", val_ebn0_db: Sequence[float] = (4.0, 5.0, 6.0),
                 val_frames: int = 2000, val_batch_size: int = 2000, seed: int = 0, num_workers: int = 0,
                 channel: Channel = bpsk_awgn_channel, sampling: str = "device") -> None:
        super().__init__()
        self.code, self.channel = code, channel
        self.train_ebn0 = EbN0Sampler.from_config(train_ebn0_db)
        self.val_ebn0_db = [float(v) for v in val_ebn0_db]
        if codewords not in ("zero", "random"):
            raise ConfigError(f"codewords must be 'zero' or 'random', got {codewords!r}")
        self.batch_size, self.batches_per_epoch, self.codewords = int(batch_size), int(batches_per_epoch), codewords
        self.val_frames, self.val_batch_size, self.seed, self.num_workers = int(val_frames), int(val_batch_size), int(seed), int(num_workers)
        self.init_sampling(sampling, self.num_workers)
        self.sampler = DeviceSampler(code, self.train_ebn0, self.batch_size, codewords, self.seed, channel)
        self._val: list[list[dict[str, torch.Tensor]]] | None = None

    def train_dataloader(self) -> DataLoader:
        if self.sampling is Sampling.DEVICE:  # batch numbers; on_after_batch_transfer draws the batches
            tickets = BatchNumbers(range(self.batches_per_epoch), lambda: self.resumed_batches(self.batches_per_epoch))
            return DataLoader(tickets, batch_size=None)
        stream = AWGNStream(self.code, self.train_ebn0, self.batch_size, self.batches_per_epoch, self.codewords,
                            self.seed, self.epoch, self.rank, self.channel)
        return DataLoader(stream, batch_size=None, num_workers=self.num_workers)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        if not isinstance(batch, int):
            return batch
        return self.sampler.draw(self.epoch, self.rank, batch, self.device)

    def val_dataloader(self) -> list[DataLoader]:
        if self._val is None:
            self._val = [self.resident(fixed_stream(self.code, e, self.val_frames, self.val_batch_size, self.codewords,
                                                    self.seed, self.channel))
                         for e in self.val_ebn0_db]
        return [DataLoader(batches, batch_size=None) for batches in self._val]
