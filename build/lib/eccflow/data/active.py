"""Active learning by error samples (NWD paper, section III-B, after Be'ery et al. 2020).

Mini-batches are made only of received words the CURRENT decoder fails on, with an equal count per
training SNR: each SNR then contributes the same total loss (the block-error loss of a failure is ~1),
which balances the gradient across SNRs. :class:`ActiveErrorSampler` draws candidate words at each Eb/N0,
decodes them under ``torch.no_grad()`` and keeps the failures (any bit wrong after hard decision, or any
of ``error_positions`` for target-specific training) until ``frames_per_snr`` are kept or
``max_candidates_per_snr`` were drawn. Its yield (kept / drawn) estimates the decoder's frame-error rate
at each SNR and is exposed as ``yield_stats`` for logging. :class:`ActiveErrorDataModule` regenerates the
hard set every epoch with the LightningModule being trained; :class:`ActiveYieldLogger` logs the yield.
"""
from __future__ import annotations

import itertools
import math
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from torch import nn
from torch.utils.data import DataLoader, IterableDataset

from eccflow.codes import Code
from eccflow.data.awgn import fixed_stream, stream_seed
from eccflow.errors import ConfigError, EccflowError
from eccflow.channels.words import Channel, bpsk_awgn_channel, draw_words

ACTIVE_SLOT = 1 << 20
"""Candidate streams use worker slot ``ACTIVE_SLOT + snr_index`` in :func:`stream_seed` (no dataloader has
that many workers), so they never coincide with a training stream of the same (seed, epoch, rank)."""

Decoder = Callable[[torch.Tensor], Any]
"""llr (B, n) -> an output with ``.bits`` (B, n) (``DecoderOutput``), e.g. a decoder or a DecoderLitModule."""


class ActiveSamplingError(EccflowError):
    """The decoder failed too rarely to fill the hard set within the candidate budget."""


def _db_key(ebn0_db: float) -> str:
    return f"{ebn0_db:g}dB"  # same suffix as eccflow.lit.base.db_key (val/ber_4dB)


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    return value


def _device(decoder: Decoder) -> torch.device:
    if isinstance(decoder, nn.Module):
        first = next(itertools.chain(decoder.parameters(), decoder.buffers()), None)
        if first is not None:
            return first.device
    return torch.device("cpu")


@dataclass
class SnrYield:
    """Bookkeeping at one Eb/N0: failures kept and candidates drawn (see ``ActiveErrorSampler.collect``)."""

    ebn0_db: float
    kept: int = 0
    drawn: int = 0

    @property
    def rate(self) -> float:
        return self.kept / self.drawn if self.drawn else math.nan


class ActiveErrorSampler:
    """Collects ``frames_per_snr`` decoder failures at each of ``ebn0_db`` (NWD III-B active learning).

    Candidates are drawn ``candidate_batch_size`` at a time over ``channel`` (BPSK-AWGN by default, or e.g.
    a ``BICMChannel``) from a generator seeded by (seed, epoch, rank, ACTIVE_SLOT + snr index).
    ``on_shortfall``: when fewer than ``frames_per_snr`` failures turn up within ``max_candidates_per_snr``
    (the decoder is too good at that SNR), ``"warn"`` warns and returns the partial set, ``"error"`` raises
    :class:`ActiveSamplingError` (yield stats are recorded either way).
    """

    def __init__(self, code: Code, ebn0_db: Sequence[float], frames_per_snr: int, max_candidates_per_snr: int = 100_000,
                 candidate_batch_size: int = 1000, codewords: str = "zero", channel: Channel = bpsk_awgn_channel,
                 seed: int = 0, on_shortfall: str = "warn", error_positions: Sequence[int] | None = None) -> None:
        values = [float(v) for v in (ebn0_db if isinstance(ebn0_db, (list, tuple)) else [ebn0_db])]
        if not values or not all(math.isfinite(v) for v in values) or len(set(values)) != len(values):
            raise ConfigError(f"active sampling needs a non-empty list of distinct finite Eb/N0 points, got {ebn0_db!r}")
        if codewords not in ("zero", "random"):
            raise ConfigError(f"codewords must be 'zero' or 'random', got {codewords!r}")
        if on_shortfall not in ("warn", "error"):
            raise ConfigError(f"on_shortfall must be 'warn' or 'error', got {on_shortfall!r}")
        self.code, self.ebn0_db, self.codewords, self.channel = code, values, codewords, channel
        self.frames_per_snr = _positive_int("frames_per_snr", frames_per_snr)
        self.max_candidates_per_snr = _positive_int("max_candidates_per_snr", max_candidates_per_snr)
        self.candidate_batch_size = _positive_int("candidate_batch_size", candidate_batch_size)
        if self.max_candidates_per_snr < self.frames_per_snr:
            raise ConfigError(f"max_candidates_per_snr ({max_candidates_per_snr}) must be >= "
                              f"frames_per_snr ({frames_per_snr})")
        self.seed, self.on_shortfall = int(seed), on_shortfall
        self.positions: torch.Tensor | None = None
        if error_positions is not None:
            self.positions = torch.as_tensor(list(error_positions), dtype=torch.long)
            p = self.positions
            if p.numel() == 0 or bool((p < 0).any()) or bool((p >= code.n).any()):
                raise ConfigError(f"error_positions must be a non-empty list of indices in [0, {code.n}), "
                                  f"got {error_positions!r}")
        self.G = torch.as_tensor(code.G.copy(), dtype=torch.float32) if codewords == "random" else None
        self.stats: list[SnrYield] = []

    def _failures(self, decoder: Decoder, llr: torch.Tensor, bits: torch.Tensor) -> torch.Tensor:
        """Bool (B,): the decoder's hard decision differs from ``bits`` (on ``error_positions`` if set)."""
        device = _device(decoder)
        out = decoder(llr.to(device))
        decided = getattr(out, "bits", None)
        if not isinstance(decided, torch.Tensor) or decided.shape != bits.shape:
            raise ConfigError(f"the decoder must return an output with .bits of shape {tuple(bits.shape)} "
                              f"(DecoderOutput), got {type(out).__name__}")
        wrong = decided.detach().cpu().round() != bits
        if self.positions is not None:
            wrong = wrong[:, self.positions]
        return wrong.any(dim=1)

    def _collect_one(self, decoder: Decoder, index: int, epoch: int,
                     rank: int) -> tuple[dict[str, torch.Tensor], SnrYield]:
        ebn0 = self.ebn0_db[index]
        generator = torch.Generator().manual_seed(stream_seed(self.seed, epoch, rank, ACTIVE_SLOT + index))
        stat, kept = SnrYield(ebn0), {"llr": [], "bits": []}
        while stat.kept < self.frames_per_snr and stat.drawn < self.max_candidates_per_snr:
            count = min(self.candidate_batch_size, self.max_candidates_per_snr - stat.drawn)
            bits = draw_words(self.code, count, self.codewords, generator, self.G)
            llr = self.channel(bits, torch.full((count,), ebn0), self.code.rate, generator)
            failed = torch.nonzero(self._failures(decoder, llr, bits)).flatten()
            take = failed[: self.frames_per_snr - stat.kept]
            # candidates after the last failure we need are discarded unseen, so kept / drawn stays the FER estimate
            stat.drawn += int(take[-1]) + 1 if stat.kept + len(take) == self.frames_per_snr else count
            stat.kept += len(take)
            kept["llr"].append(llr[take])
            kept["bits"].append(bits[take])
        frames = {k: torch.cat(v) for k, v in kept.items()}
        frames["ebn0_db"] = torch.full((stat.kept,), ebn0)
        return frames, stat

    def collect(self, decoder: Decoder, epoch: int = 0, rank: int = 0) -> list[dict[str, torch.Tensor]]:
        """Hard set, one dict ``{"llr", "bits", "ebn0_db"}`` per Eb/N0 (in ``ebn0_db`` order), on the CPU.

        Each holds ``frames_per_snr`` failures unless the budget ran out (see ``on_shortfall``). The decoder
        runs under ``torch.no_grad()`` and, if it is a module, in eval mode (its mode is restored after).
        """
        training = decoder.training if isinstance(decoder, nn.Module) else None
        if isinstance(decoder, nn.Module):
            decoder.eval()
        try:
            with torch.no_grad():
                results = [self._collect_one(decoder, i, epoch, rank) for i in range(len(self.ebn0_db))]
        finally:
            if training is not None:
                decoder.train(training)
        self.stats = [stat for _, stat in results]
        short = [s for s in self.stats if s.kept < self.frames_per_snr]
        if short:
            detail = ", ".join(f"{s.ebn0_db:g} dB: {s.kept}/{self.frames_per_snr} failures in {s.drawn} candidates"
                               for s in short)
            message = (f"active sampling could not fill the hard set ({detail}; max_candidates_per_snr="
                       f"{self.max_candidates_per_snr}): the decoder is too good there; lower those Eb/N0 points "
                       "or raise max_candidates_per_snr")
            if self.on_shortfall == "error":
                raise ActiveSamplingError(message)
            warnings.warn(message + "; keeping the partial set", stacklevel=2)
        return [frames for frames, _ in results]

    @property
    def yield_stats(self) -> dict[str, float]:
        """Last collection's yield: ``active/yield_<E>dB`` = kept / drawn per Eb/N0, ``active/yield`` overall,
        ``active/kept`` and ``active/candidates`` totals; empty before the first :meth:`collect`."""
        if not self.stats:
            return {}
        out = {f"active/yield_{_db_key(s.ebn0_db)}": s.rate for s in self.stats}
        kept, drawn = sum(s.kept for s in self.stats), sum(s.drawn for s in self.stats)
        out.update({"active/yield": kept / drawn if drawn else math.nan, "active/kept": float(kept),
                    "active/candidates": float(drawn)})
        return out


def equal_snr_batches(per_snr: Sequence[dict[str, torch.Tensor]], per_snr_in_batch: int,
                      batches: int) -> list[dict[str, torch.Tensor]]:
    """``batches`` mini-batches, each with ``per_snr_in_batch`` frames of every SNR (NWD: equal count per SNR).

    A partial SNR set is repeated cyclically to fill its slots; the slots of an SNR without any failure take
    failures of the other SNRs. The count and size of batches are thus fixed (DDP ranks step in lockstep).
    """
    needed = per_snr_in_batch * batches
    pooled = {k: torch.cat([f[k] for f in per_snr]) for k in ("llr", "bits", "ebn0_db")}
    if pooled["llr"].shape[0] == 0:
        raise ActiveSamplingError("active sampling found no decoder failure at any Eb/N0: nothing to train on; "
                                  "lower the Eb/N0 points or raise max_candidates_per_snr")
    columns = []
    for frames in per_snr:
        source = frames if frames["llr"].shape[0] else pooled
        index = torch.arange(needed) % source["llr"].shape[0]
        columns.append({k: v[index].reshape(batches, per_snr_in_batch, *v.shape[1:]) for k, v in source.items()})
    return [{k: torch.cat([c[k][j] for c in columns]) for k in ("llr", "bits", "ebn0_db")} for j in range(batches)]


class _BatchList(IterableDataset):
    """Iterable over prepared batches (iterable, so Lightning never re-shards a rank's own hard set)."""

    def __init__(self, batches: list[dict[str, torch.Tensor]]) -> None:
        self.batches = batches

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


class ActiveErrorDataModule(L.LightningDataModule):
    """Training on the hard set of the module being trained, regenerated every epoch; fixed validation streams.

    Each mini-batch holds ``batch_size / len(ebn0_db)`` failures per SNR and an epoch has
    ``passes * frames_per_snr / (batch_size / len(ebn0_db))`` mini-batches (``passes`` > 1 steps through the
    hard set several times: decoding candidates costs far more than a gradient step). The decoder is ``trainer.lightning_module``
    (its ``forward`` returns a ``DecoderOutput``) or ``decoder_of(lightning_module)``. Needs
    ``reload_dataloaders_every_n_epochs=1`` (``eccflow.train.fit`` sets it); add :class:`ActiveYieldLogger`
    to the trainer's callbacks to log the yield. Validation streams equal ``AWGNDataModule``'s for the same
    code, channel, codewords and seed.
    """

    def __init__(self, sampler: ActiveErrorSampler, batch_size: int, val_ebn0_db: Sequence[float] = (4.0, 5.0, 6.0),
                 val_frames: int = 2000, val_batch_size: int = 2000,
                 decoder_of: Callable[[L.LightningModule], Decoder] | None = None, passes: int = 1) -> None:
        super().__init__()
        snrs = len(sampler.ebn0_db)
        if _positive_int("batch_size", batch_size) % snrs:
            raise ConfigError(f"batch_size ({batch_size}) must be a multiple of the number of Eb/N0 points ({snrs})")
        self.per_snr_in_batch = batch_size // snrs
        if sampler.frames_per_snr % self.per_snr_in_batch:
            raise ConfigError(f"frames_per_snr ({sampler.frames_per_snr}) must be a multiple of batch_size / "
                              f"len(ebn0_db) = {self.per_snr_in_batch}")
        self.sampler, self.batch_size, self.decoder_of = sampler, batch_size, decoder_of
        self.batches_per_epoch = sampler.frames_per_snr // self.per_snr_in_batch * _positive_int("passes", passes)
        self.val_ebn0_db = [float(v) for v in val_ebn0_db]
        self.val_frames = _positive_int("val_frames", val_frames)
        self.val_batch_size = _positive_int("val_batch_size", val_batch_size)
        self._val: list[list[dict[str, torch.Tensor]]] | None = None

    @property
    def yield_stats(self) -> dict[str, float]:
        return self.sampler.yield_stats

    def train_dataloader(self) -> DataLoader:
        if self.trainer is None or self.trainer.lightning_module is None:
            raise ConfigError("ActiveErrorDataModule needs a Trainer with a LightningModule "
                              "(the decoder to sample against)")
        module = self.trainer.lightning_module
        decoder = self.decoder_of(module) if self.decoder_of is not None else module
        per_snr = self.sampler.collect(decoder, epoch=self.trainer.current_epoch, rank=self.trainer.global_rank)
        return DataLoader(_BatchList(equal_snr_batches(per_snr, self.per_snr_in_batch, self.batches_per_epoch)),
                          batch_size=None)

    def val_dataloader(self) -> list[DataLoader]:
        s = self.sampler
        if self._val is None:
            self._val = [fixed_stream(s.code, e, self.val_frames, self.val_batch_size, s.codewords, s.seed, s.channel)
                         for e in self.val_ebn0_db]
        return [DataLoader(batches, batch_size=None) for batches in self._val]


class ActiveYieldLogger(Callback):
    """Logs the active sampler's ``yield_stats`` once per epoch with ``pl_module.log`` (mean over DDP ranks).

    The sampler is ``sampler`` or, by default, ``trainer.datamodule.sampler`` (an ActiveErrorDataModule).
    Logged at ``on_train_epoch_start``, right after the epoch's hard set was drawn.
    """

    def __init__(self, sampler: ActiveErrorSampler | None = None) -> None:
        self.sampler = sampler

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        sampler = self.sampler or getattr(trainer.datamodule, "sampler", None)
        if sampler is None:
            raise ConfigError("ActiveYieldLogger needs a sampler or a datamodule with a .sampler (ActiveErrorDataModule)")
        stats = {k: v for k, v in sampler.yield_stats.items() if math.isfinite(v)}
        if stats:
            pl_module.log_dict(stats, on_step=False, on_epoch=True, sync_dist=trainer.world_size > 1, batch_size=1)
