"""BICM training data (SBND paper, section II): random codewords over Gray 16-QAM / 8-PSK with bit-LLR demapping.

Chain per word: u uniform -> c = u G mod 2 -> interleave -> Gray mapper (b bits per symbol) -> complex AWGN
with E_s / N0 = R b Eb/N0 -> bit LLRs (exact log-MAP or max-log) -> deinterleave, all done by
:class:`eccflow.channels.BICMChannel`. LLRs are positive for bit 0, as for BPSK. Batches, seeding
(base seed, epoch, rank, worker) and the fixed validation streams are those of :class:`AWGNDataModule`.
"""
from __future__ import annotations

import warnings
from typing import Sequence

from eccflow.channels import BICMChannel, RandomInterleaver, make_constellation
from eccflow.channels.modulation import parse_demapping
from eccflow.codes import Code
from eccflow.data.awgn import AWGNDataModule
from eccflow.errors import ConfigError


def build_bicm_channel(code: Code, modulation: str = "qam", order: int = 16, demapping: str = "exact",
                       interleaver_seed: int = 0, labelling: str = "gray") -> BICMChannel:
    """A BICM channel for ``code``: Gray ``order``-``modulation`` and a random interleaver of length n."""
    constellation = make_constellation(modulation, order, labelling)  # ConfigError on a bad family / order / labelling
    return BICMChannel(constellation, RandomInterleaver(code.n, seed=int(interleaver_seed)), parse_demapping(demapping))


def decoder_channel(code: Code, decoder_config: dict) -> BICMChannel | None:
    """The BICM channel a decoder config declares (``channel: bicm`` with ``modulation``, ``order``,
    ``labelling``, ``demapper``, ``interleaver_seed``, as the SBND keeps them), or None for BPSK-AWGN."""
    kind = decoder_config.get("channel", "awgn")
    if kind == "awgn":
        return None
    if kind != "bicm":
        raise ConfigError(f"decoder.channel must be 'awgn' or 'bicm', got {kind!r}")
    return build_bicm_channel(code, decoder_config.get("modulation", "qam"), int(decoder_config.get("order", 16)),
                              decoder_config.get("demapper", "exact"), int(decoder_config.get("interleaver_seed", 0)),
                              decoder_config.get("labelling", "gray"))


class BICMDataModule(AWGNDataModule):
    """Training stream and fixed validation streams over a BICM channel; batches ``{"llr", "bits", "ebn0_db"}``.

    ``modulation`` / ``order``: ``"qam"`` with 16 (Gray 16-QAM) or ``"psk"`` with 8 (Gray 8-PSK); any Gray
    square QAM or PSK order works. ``demapping``: ``"exact"`` or ``"maxlog"``. The interleaver is part of
    the system, not of the sample: one permutation drawn from ``interleaver_seed`` (default ``seed``), the
    same on every rank, epoch and validation stream. Eb/N0 is per bit of information: N0 = 1 / (R b Eb/N0).
    ``codewords`` defaults to ``"random"``: high-order BICM is not symmetric in the codeword (zero-codeword
    training is biased there, a warning says so).
    """

    def __init__(self, code: Code, train_ebn0_db: Sequence[float] | float, modulation: str = "qam", order: int = 16,
                 demapping: str = "exact", interleaver_seed: int | None = None, batch_size: int = 128,
                 batches_per_epoch: int = 100, codewords: str = "random", val_ebn0_db: Sequence[float] = (4.0, 5.0, 6.0),
                 val_frames: int = 2000, val_batch_size: int = 2000, seed: int = 0, num_workers: int = 0,
                 sampling: str = "device") -> None:
        if interleaver_seed is not None and (isinstance(interleaver_seed, bool)
                                             or not isinstance(interleaver_seed, int)):
            raise ConfigError(f"interleaver_seed must be an integer or None, got {interleaver_seed!r}")
        permutation_seed = seed if interleaver_seed is None else interleaver_seed
        channel = build_bicm_channel(code, modulation, order, demapping, permutation_seed)
        if codewords == "zero" and channel.constellation.order > 4:
            warnings.warn(f"zero-codeword training over {order}-{modulation.upper()} BICM is biased: the channel is not "
                          "symmetric in the codeword; use codewords='random'", stacklevel=2)
        super().__init__(code, train_ebn0_db, batch_size=batch_size, batches_per_epoch=batches_per_epoch,
                         codewords=codewords, val_ebn0_db=val_ebn0_db, val_frames=val_frames,
                         val_batch_size=val_batch_size, seed=seed, num_workers=num_workers, channel=channel,
                         sampling=sampling)
        self.modulation = channel.constellation.modulation.value
        self.order, self.demapping = channel.constellation.order, channel.demapping.value
