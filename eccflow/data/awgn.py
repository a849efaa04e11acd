"""Channel samples generated on the fly (nothing on disk): BPSK-AWGN words for training and validation.

Training batches come from an endless ``IterableDataset`` whose generator is seeded from
(base seed, epoch, rank, worker), so DDP ranks and dataloader workers never repeat samples and a
re-run is reproducible. Validation uses fixed streams (one per Eb/N0), built once from the base seed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator, Sequence

import lightning as L
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from eccflow.codes import Code
from eccflow.errors import ConfigError
from eccflow.eval.montecarlo import Channel, bpsk_awgn_channel


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
        if self.is_range:
            low, high = self.values
            return low + (high - low) * torch.rand(count, generator=generator)
        index = torch.randint(len(self.values), (count,), generator=generator)
        return torch.tensor(self.values)[index]


def draw_words(code: Code, count: int, codewords: str, generator: torch.Generator, G: torch.Tensor | None) -> torch.Tensor:
    """``count`` codewords (count, n): all-zero or uniform random u G."""
    if codewords == "zero":
        return torch.zeros(count, code.n)
    if codewords == "random":
        messages = torch.randint(0, 2, (count, code.k), generator=generator).float()
        return torch.remainder(messages @ G, 2.0)
    raise ConfigError(f"codewords must be 'zero' or 'random', got {codewords!r}")


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


class AWGNDataModule(L.LightningDataModule):
    """Training stream with per-sample Eb/N0 and fixed validation streams, one per ``val_ebn0_db``.

    Epoch ``e`` on rank ``r`` draws from seed (seed, e, r, worker); ``train_dataloader`` is rebuilt every
    epoch (use ``reload_dataloaders_every_n_epochs=1``) so epochs never repeat samples. ``channel``
    replaces BPSK-AWGN (``BICMDataModule`` passes a BICM channel).
    """

    def __init__(self, code: Code, train_ebn0_db: Sequence[float] | float, batch_size: int = 128,
                 batches_per_epoch: int = 100, codewords: str = "zero", val_ebn0_db: Sequence[float] = (4.0, 5.0, 6.0),
                 val_frames: int = 2000, val_batch_size: int = 2000, seed: int = 0, num_workers: int = 0,
                 channel: Channel = bpsk_awgn_channel) -> None:
        super().__init__()
        self.code, self.channel = code, channel
        self.train_ebn0 = EbN0Sampler.from_config(train_ebn0_db)
        self.val_ebn0_db = [float(v) for v in val_ebn0_db]
        if codewords not in ("zero", "random"):
            raise ConfigError(f"codewords must be 'zero' or 'random', got {codewords!r}")
        self.batch_size, self.batches_per_epoch, self.codewords = int(batch_size), int(batches_per_epoch), codewords
        self.val_frames, self.val_batch_size, self.seed, self.num_workers = int(val_frames), int(val_batch_size), int(seed), int(num_workers)
        self.rank = 0
        self._val: list[list[dict[str, torch.Tensor]]] | None = None

    def setup(self, stage: str | None = None) -> None:
        self.rank = self.trainer.global_rank if self.trainer is not None else 0

    def train_dataloader(self) -> DataLoader:
        epoch = self.trainer.current_epoch if self.trainer is not None else 0
        stream = AWGNStream(self.code, self.train_ebn0, self.batch_size, self.batches_per_epoch, self.codewords,
                            self.seed, epoch, self.rank, self.channel)
        return DataLoader(stream, batch_size=None, num_workers=self.num_workers)

    def val_dataloader(self) -> list[DataLoader]:
        if self._val is None:
            self._val = [fixed_stream(self.code, e, self.val_frames, self.val_batch_size, self.codewords, self.seed,
                                      self.channel)
                         for e in self.val_ebn0_db]
        return [DataLoader(batches, batch_size=None) for batches in self._val]
