"""Code mixtures for universal decoders (SAP paper, FECCT pretraining: one backbone trained on many codes).

Every training batch holds words of ONE code (codes differ in n), chosen with the mixture weights; the
batch carries ``"code"`` (its name) and ``"code_index"`` (position in ``MultiCodeDataModule.codes``) so the
LightningModule can pick that code's H / attention mask. Which code each batch of an epoch uses is one
schedule drawn from (base seed, epoch) alone, the same on every DDP rank, so all ranks step on the same
code (same shapes, same parameters in use); the words and noise come from (base seed, epoch, rank,
batch) on the training device, or (base seed, epoch, rank, worker) on the host, as in
:mod:`eccflow.data.awgn`, so ranks and workers never repeat samples.
"""
from __future__ import annotations

import math
from typing import Any, Iterator, Sequence

import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from eccflow.codes import Code, get_code
from eccflow.data.awgn import (BatchNumbers, DeviceSampler, EbN0Sampler, SampledDataModule, Sampling, fixed_stream,
                               stream_seed)
from eccflow.errors import ConfigError
from eccflow.channels.words import Channel, bpsk_awgn_channel, draw_words

SCHEDULE_SALT = 0x5C4EDC0DE
"""Mixed into the base seed for the per-epoch code schedule (kept apart from the sample streams)."""


def mixture_weights(weights: Sequence[float] | None, count: int) -> torch.Tensor:
    """Normalised sampling probabilities (count,); ``None`` means uniform. ConfigError on bad values."""
    if weights is None:
        return torch.full((count,), 1.0 / count, dtype=torch.float64)
    values = [float(w) for w in weights]
    if len(values) != count:
        raise ConfigError(f"need one mixture weight per code ({count}), got {len(values)}: {values}")
    if not all(math.isfinite(w) and w >= 0 for w in values) or sum(values) <= 0:
        raise ConfigError(f"mixture weights must be finite, >= 0 and not all zero, got {values}")
    total = sum(values)
    return torch.tensor([w / total for w in values], dtype=torch.float64)


def code_schedule(probabilities: torch.Tensor, batches: int, seed: int, epoch: int) -> list[int]:
    """Code index of each of the epoch's ``batches`` batches, from (seed, epoch) only (rank-independent)."""
    generator = torch.Generator().manual_seed(stream_seed(seed ^ SCHEDULE_SALT, epoch, 0, 0))
    return torch.multinomial(probabilities, batches, replacement=True, generator=generator).tolist()


class MultiCodeStream(IterableDataset):
    """One epoch of ``batches`` single-code batches ``{"llr", "bits", "ebn0_db", "code", "code_index"}``.

    Batch b uses code ``schedule[b]``; workers take batches b = worker, worker + workers, ... so the
    DataLoader yields them in schedule order.
    """

    def __init__(self, codes: Sequence[Code], probabilities: torch.Tensor, ebn0: EbN0Sampler, batch_size: int,
                 batches: int, codewords: str, seed: int, epoch: int = 0, rank: int = 0,
                 channel: Channel = bpsk_awgn_channel) -> None:
        if batch_size < 1 or batches < 1:
            raise ConfigError(f"batch_size and batches_per_epoch must be positive, got {batch_size}, {batches}")
        self.codes, self.ebn0, self.batch_size, self.batches = list(codes), ebn0, batch_size, batches
        self.codewords, self.seed, self.epoch, self.rank, self.channel = codewords, seed, epoch, rank, channel
        self.schedule = code_schedule(probabilities, batches, seed, epoch)
        self.G = [torch.as_tensor(c.G.copy(), dtype=torch.float32) if codewords == "random" else None for c in self.codes]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        generator = torch.Generator().manual_seed(stream_seed(self.seed, self.epoch, self.rank, worker))
        for b in range(worker, self.batches, workers):
            index = self.schedule[b]
            code = self.codes[index]
            bits = draw_words(code, self.batch_size, self.codewords, generator, self.G[index])
            ebn0 = self.ebn0.sample(self.batch_size, generator)
            llr = self.channel(bits, ebn0, code.rate, generator)
            yield {"llr": llr, "bits": bits, "ebn0_db": ebn0, "code": code.name, "code_index": index}


class MultiCodeDataModule(SampledDataModule):
    """Mixture of codes with sampling ``weights`` (uniform by default); one code per training batch.

    ``codes``: ``Code`` objects or names for :func:`eccflow.codes.get_code` (names must be distinct).
    ``heldout``: codes that are validated on but never trained on (zero-shot), disjoint from ``codes``.
    Validation: one fixed stream per (code, Eb/N0), mixture codes then held-out codes, dataloader index
    ``i * len(val_ebn0_db) + j`` for code i and Eb/N0 j (see :attr:`val_keys`); each is identical to
    ``AWGNDataModule``'s stream for that code alone, so per-code numbers compare with single-code training.
    Needs ``reload_dataloaders_every_n_epochs=1``.
    The channel is BPSK-AWGN (a BICM channel's interleaver is tied to one n).
    """

    def __init__(self, codes: Sequence[Code | str], train_ebn0_db: Sequence[float] | float,
                 weights: Sequence[float] | None = None, heldout: Sequence[Code | str] = (), batch_size: int = 128,
                 batches_per_epoch: int = 100,
                 codewords: str = "zero", val_ebn0_db: Sequence[float] = (4.0, 5.0, 6.0), val_frames: int = 2000,
                 val_batch_size: int = 2000, seed: int = 0, num_workers: int = 0, sampling: str = "device") -> None:
        super().__init__()
        self.init_sampling(sampling, int(num_workers))
        if isinstance(codes, (str, Code)) or not codes:
            raise ConfigError(f"codes must be a non-empty list of codes or code names, got {codes!r}")
        self.codes = [get_code(c) for c in codes]
        names = [c.name for c in self.codes]
        if len(set(names)) != len(names):
            raise ConfigError(f"codes in a mixture must be distinct, got {names}")
        self.heldout = [get_code(c) for c in heldout]
        overlap = sorted(set(names) & {c.name for c in self.heldout})
        if overlap:
            raise ConfigError(f"held-out codes must never enter the mixture; in both lists: {overlap}")
        self.probabilities = mixture_weights(weights, len(self.codes))
        if codewords not in ("zero", "random"):
            raise ConfigError(f"codewords must be 'zero' or 'random', got {codewords!r}")
        self.train_ebn0 = EbN0Sampler.from_config(train_ebn0_db)
        self.val_ebn0_db = [float(v) for v in val_ebn0_db]
        self.batch_size, self.batches_per_epoch, self.codewords = int(batch_size), int(batches_per_epoch), codewords
        self.val_frames, self.val_batch_size, self.seed = int(val_frames), int(val_batch_size), int(seed)
        self.num_workers, self.channel = int(num_workers), bpsk_awgn_channel
        self.samplers = [DeviceSampler(c, self.train_ebn0, self.batch_size, codewords, self.seed, self.channel)
                         for c in self.codes]
        self._val: list[list[dict[str, Any]]] | None = None
        self._schedule: tuple[int, list[int]] | None = None  # (epoch, code index per batch)

    @property
    def code_names(self) -> list[str]:
        return [c.name for c in self.codes]

    @property
    def val_codes(self) -> list[Code]:
        """The validated codes: the mixture's, then the held-out ones."""
        return self.codes + self.heldout

    @property
    def val_keys(self) -> list[tuple[str, float]]:
        """(code name, Eb/N0) of each validation dataloader, in dataloader order."""
        return [(c.name, e) for c in self.val_codes for e in self.val_ebn0_db]

    def train_dataloader(self) -> DataLoader:
        if self.sampling is Sampling.DEVICE:  # batch numbers; on_after_batch_transfer picks the code and draws
            tickets = BatchNumbers(range(self.batches_per_epoch), lambda: self.resumed_batches(self.batches_per_epoch))
            return DataLoader(tickets, batch_size=None)
        stream = MultiCodeStream(self.codes, self.probabilities, self.train_ebn0, self.batch_size, self.batches_per_epoch,
                                 self.codewords, self.seed, self.epoch, self.rank, self.channel)
        return DataLoader(stream, batch_size=None, num_workers=self.num_workers)

    def schedule(self, epoch: int) -> list[int]:
        """The epoch's code schedule (:func:`code_schedule`), computed once per epoch when its batches are
        drawn, so a resumed fit uses the epoch it resumed in."""
        if self._schedule is None or self._schedule[0] != epoch:
            self._schedule = (epoch, code_schedule(self.probabilities, self.batches_per_epoch, self.seed, epoch))
        return self._schedule[1]

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        if isinstance(batch, dict):
            return batch
        number = int(batch)
        index = self.schedule(self.epoch)[number]
        drawn = self.samplers[index].draw(self.epoch, self.rank, number, self.device)
        return {**drawn, "code": self.codes[index].name, "code_index": index}

    def val_dataloader(self) -> list[DataLoader]:
        if self._val is None:
            self._val = []
            for index, code in enumerate(self.val_codes):
                for e in self.val_ebn0_db:
                    batches = fixed_stream(code, e, self.val_frames, self.val_batch_size, self.codewords, self.seed,
                                           self.channel)
                    self._val.append(self.resident([{**b, "code": code.name, "code_index": index} for b in batches]))
        return [DataLoader(batches, batch_size=None) for batches in self._val]
