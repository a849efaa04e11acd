"""Boosting collection of error-propagation samples for the EP-resilient weight set (NWD paper, V-A).

The chain decoder (plain weights) decodes all-zero chains at one Eb/N0; whenever window t - 1 failed (a
target bit wrong), the *connected* window t is kept whatever its own outcome: the channel LLRs of its
active variables and the decision LLRs of its fixed variables (the previous targets, wrong ones included).
Samples are grouped by window index because every window of a lifted chain has its own graph.
:class:`BoostingDataModule` serves them as batches of a single window each (``window`` names it), with a
held-out fraction for validation.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader

from eccflow.data.active import _BatchList
from eccflow.data.awgn import stream_seed
from eccflow.decoders.window import ChainDecoder
from eccflow.errors import ConfigError, EccflowError
from eccflow.channels.words import bpsk_awgn_channel

BOOSTING_SLOT = 1 << 21


@torch.no_grad()
def collect_ep_samples(chain: ChainDecoder, ebn0_db: float, samples: int, max_frames: int = 1_000_000,
                       batch_size: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Up to ``samples`` connected-window samples ``{window: {"llr", "fixed_llr", "bits"}}`` and the counts."""
    if samples < 1 or max_frames < 1 or batch_size < 1:
        raise ConfigError(f"boosting needs positive samples, max_frames and batch_size, got {samples}, {max_frames}, "
                          f"{batch_size}")
    code = chain.code
    generator = torch.Generator().manual_seed(stream_seed(seed, 0, 0, BOOSTING_SLOT))
    targets = chain.target_masks()
    kept: dict[int, dict[str, list[torch.Tensor]]] = {}
    total = frames = 0
    chain.eval()
    while total < samples and frames < max_frames:
        count = min(batch_size, max_frames - frames)
        bits = torch.zeros(count, code.n)
        llr = bpsk_awgn_channel(bits, ebn0_db, code.rate, generator)
        decision = chain(llr).llr
        frames += count
        wrong = (decision < 0).float() != bits
        fail = torch.stack([wrong[:, t].any(dim=1) for t in targets], dim=1)
        for j in range(1, len(targets)):
            rows = torch.nonzero(fail[:, j - 1]).flatten()
            if rows.numel() == 0 or total >= samples:
                continue
            rows = rows[: samples - total]
            graph = chain.graphs[j]
            entry = kept.setdefault(j, {"llr": [], "fixed_llr": [], "bits": []})
            entry["llr"].append(llr[rows][:, graph.active_vars])
            entry["fixed_llr"].append(decision[rows][:, graph.fixed_vars])
            entry["bits"].append(bits[rows][:, graph.active_vars])
            total += rows.numel()
    windows = {j: {k: torch.cat(v) for k, v in entry.items()} for j, entry in kept.items()}
    return {"windows": windows, "samples": total, "frames": frames, "ebn0_db": float(ebn0_db), "code": code.name,
            "window": chain.plain.window, "target": chain.plain.target}


def load_ep_samples(path: str | Path, chain: ChainDecoder) -> dict[str, Any]:
    """Samples written by the boosting stage, checked against ``chain`` (code, window, target, shapes)."""
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated or foreign file
        raise EccflowError(f"EP sample file {path} is corrupt or not a torch file ({type(err).__name__}: {err})") from None
    expected = (chain.code.name, chain.plain.window, chain.plain.target)
    if not isinstance(data, dict) or (data.get("code"), data.get("window"), data.get("target")) != expected:
        found = (data.get("code"), data.get("window"), data.get("target")) if isinstance(data, dict) else type(data).__name__
        raise EccflowError(f"EP sample file {path} was collected for (code, window, target) = {found}, not {expected}")
    for j, entry in data["windows"].items():
        graph = chain.graphs[j]
        if entry["llr"].shape[1] != graph.n_active or entry["fixed_llr"].shape[1] != graph.n_fixed:
            raise EccflowError(f"EP sample file {path}: window {j} shapes do not fit the chain's window graph")
    return data


class BoostingDataModule(L.LightningDataModule):
    """Batches of connected-window samples, one window per batch, shuffled per epoch; ``val_fraction`` of every
    window's samples held out (fixed) for validation."""

    def __init__(self, data: dict[str, Any], batch_size: int = 128, val_fraction: float = 0.2, seed: int = 0) -> None:
        super().__init__()
        if not 0 < val_fraction < 1:
            raise ConfigError(f"val_fraction must lie in (0, 1), got {val_fraction}")
        if not data["windows"]:
            raise EccflowError("boosting collected no connected-window sample: the previous window never failed; "
                               "lower the boosting Eb/N0 or raise max_frames")
        self.batch_size, self.seed = int(batch_size), int(seed)
        self.train_sets, self.val_sets = {}, {}
        for j, entry in data["windows"].items():
            held = max(1, math.floor(entry["llr"].shape[0] * val_fraction)) if entry["llr"].shape[0] > 1 else 0
            self.val_sets[j] = {k: v[:held] for k, v in entry.items()}
            self.train_sets[j] = {k: v[held:] for k, v in entry.items()}

    @classmethod
    def from_chain(cls, chain: ChainDecoder, ebn0_db: float, samples: int, max_frames: int = 1_000_000,
                   batch_size: int = 128, val_fraction: float = 0.2, seed: int = 0) -> "BoostingDataModule":
        """Run the chain decoder now (boosting collection) and serve what it collected."""
        data = collect_ep_samples(chain, ebn0_db, samples, max_frames=max_frames, seed=seed)
        return cls(data, batch_size=batch_size, val_fraction=val_fraction, seed=seed)

    def _batches(self, sets: dict[int, dict[str, torch.Tensor]], generator: torch.Generator | None) -> list[dict[str, Any]]:
        out = []
        for j, entry in sets.items():
            size = entry["llr"].shape[0]
            order = torch.randperm(size, generator=generator) if generator is not None else torch.arange(size)
            for start in range(0, size, self.batch_size):
                rows = order[start:start + self.batch_size]
                out.append({**{k: v[rows] for k, v in entry.items()}, "window": j})
        if generator is not None:
            out = [out[i] for i in torch.randperm(len(out), generator=generator).tolist()]
        return out

    def train_dataloader(self) -> DataLoader:
        epoch = self.trainer.current_epoch if self.trainer is not None else 0
        generator = torch.Generator().manual_seed(stream_seed(self.seed, epoch, 0, BOOSTING_SLOT))
        return DataLoader(_BatchList(self._batches(self.train_sets, generator)), batch_size=None)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(_BatchList(self._batches({j: s for j, s in self.val_sets.items() if s["llr"].shape[0]}, None)),
                          batch_size=None)
