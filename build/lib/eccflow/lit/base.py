"""Base LightningModule for decoders: one shared ``model_step``, Adam + cosine LR, per-SNR validation.

The module receives a built network (``net``) and the config that rebuilds it (``net_config`` with
``code``), so checkpoints reload without Lightning (:func:`load_decoder`). Validation dataloader i
is Eb/N0 ``val_ebn0_db[i]``; it logs ``val/ber_4dB``, ``val/fer_4dB``, ``val/neg_ln_ber_4dB`` per
Eb/N0, the baseline's ``val/baseline_ber_4dB``, and the normalised validation error NVE = mean_s BER_net(s) / BER_baseline(s) (NWD paper,
after Be'ery et al.) where the baseline is the classical decoder on the same validation words (points
where the baseline made no bit error have no ratio and are left out of the mean). The baseline's bit errors on
each validation batch are computed once per process (:func:`cached_frame_errors`): the validation words are
fixed streams, so later epochs, stages and Optuna trials on the same words reuse them. A
universal model validated on a code mixture gets one dataloader per (code, Eb/N0), metrics named
``val/neg_ln_ber_<code>_4dB``, one baseline per code, and the NVE over all pairs.
"""
from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any, Sequence

import lightning as L
import torch
from torch import nn

from eccflow.decoders.base import DecoderOutput
from eccflow.errors import ConfigError, EccflowError
from eccflow.eval.metrics import BitErrorRate, FrameErrorRate, frame_bit_errors

ADAM_OPTIONS: dict[str, dict[str, bool]] = {"default": {}, "foreach": {"foreach": True}, "fused": {"fused": True}}
"""``torch.optim.Adam`` keyword arguments per ``adam`` setting: the same update, per-tensor, multi-tensor or one kernel."""

_BASELINE_ERRORS: dict[str, torch.Tensor] = {}
"""Per-frame bit errors of a classical baseline on a validation batch, by (baseline, words) digest."""


def cached_frame_errors(baseline: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Per-frame bit errors (B,) of ``baseline`` (a classical decoder without weights, identified by its repr)
    on ``batch``, decoded once per process and reused whenever the same words come again."""
    digest = hashlib.sha1(repr(baseline).encode())
    for name in ("llr", "bits"):
        digest.update(batch[name].detach().cpu().numpy().tobytes())
    key = digest.hexdigest()
    if key not in _BASELINE_ERRORS:
        _BASELINE_ERRORS[key] = frame_bit_errors(baseline(batch["llr"]).bits, batch["bits"]).cpu()
    return _BASELINE_ERRORS[key].to(batch["llr"].device)


def db_key(ebn0_db: float) -> str:
    """Metric suffix for an Eb/N0: 4.0 -> '4dB', 4.5 -> '4.5dB'."""
    return f"{ebn0_db:g}dB"


def normalized_validation_error(pairs: list[tuple[float, float]]) -> float:
    """NVE = mean over points of BER_net / BER_baseline, from (BER_net, BER_baseline) pairs.

    A point where the baseline made no bit error has no ratio and is left out; NaN if none is left.
    """
    ratios = [net / base for net, base in pairs if base > 0]
    return sum(ratios) / len(ratios) if ratios else float("nan")


class DecoderLitModule(L.LightningModule):
    """Subclasses implement :meth:`model_step` (loss and decoder output for a batch)."""

    def __init__(
        self,
        net: nn.Module,
        net_config: dict[str, Any],
        code: str,
        val_ebn0_db: Sequence[float] = (4.0, 5.0, 6.0),
        lr: float = 1e-2,
        lr_min: float = 1e-4,
        warmup: float = 0.0,
        weight_decay: float = 0.0,
        baseline: nn.Module | dict[str, nn.Module] | None = None,
        val_codes: Sequence[str] | None = None,
        heldout_codes: Sequence[str] = (),
        delta_lr: float | None = None,
        adam: str = "default",
        compile: str | None = None,
    ) -> None:
        super().__init__()
        if not lr > 0 or not 0 <= lr_min <= lr:
            raise ConfigError(f"need lr > 0 and 0 <= lr_min <= lr, got lr={lr}, lr_min={lr_min}")
        if not 0 <= warmup < 1:
            raise ConfigError(f"warmup must be a fraction of the steps in [0, 1), got {warmup}")
        if delta_lr is not None and not delta_lr >= lr_min:
            raise ConfigError(f"need delta_lr >= lr_min, got delta_lr={delta_lr}, lr_min={lr_min}")
        self.save_hyperparameters(ignore=["net", "baseline", "teacher"])  # modules never go into hparams
        self.net = net
        self.baselines = nn.ModuleDict(baseline if isinstance(baseline, dict) else {} if baseline is None else {code: baseline})
        self.val_ebn0_db = [float(v) for v in val_ebn0_db]
        # validation dataloader i <-> (code, Eb/N0); a mixture lists every (code, Eb/N0) pair, code-major
        codes = list(val_codes) if val_codes else [None]
        self.val_keys = [(c, e) for c in codes for e in self.val_ebn0_db]
        self.val_ber = nn.ModuleList(BitErrorRate() for _ in self.val_keys)
        self.val_fer = nn.ModuleList(FrameErrorRate() for _ in self.val_keys)
        self.baseline_ber = nn.ModuleList(BitErrorRate() for _ in self.val_keys)
        self._baseline_done = False

    def forward(self, llr: torch.Tensor) -> DecoderOutput:
        return self.net(llr)

    def configure_model(self) -> None:
        """With ``compile`` (a ``torch.compile`` backend, e.g. ``inductor``), compile the network; parameter
        names, checkpoints and the eager network are unchanged."""
        if self.hparams.get("compile") and not getattr(self, "_compiled", False):
            self.compile_network(self.hparams.compile)
            self._compiled = True

    def compile_network(self, backend: str) -> None:
        self.net.compile(backend=backend)

    def model_step(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, DecoderOutput]:
        raise NotImplementedError

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss, _ = self.model_step(batch)
        # kept on the device between logging intervals: no host synchronisation per step
        self.log("train/loss", loss, on_step=True, on_epoch=True, batch_size=batch["llr"].shape[0])
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int, dataloader_idx: int = 0) -> None:
        loss, out = self.model_step(batch)
        self.val_ber[dataloader_idx].update(out.bits, batch["bits"])
        self.val_fer[dataloader_idx].update(out.bits, batch["bits"])
        baseline = self.baselines[batch.get("code", self.hparams.code)] if self.baselines else None
        if baseline is not None and not self._baseline_done:
            self.baseline_ber[dataloader_idx].update_frame_errors(cached_frame_errors(baseline, batch), batch["bits"].shape[-1])

    def on_validation_epoch_end(self) -> None:
        """Per (code, Eb/N0): BER, FER, -ln(BER) and the baseline's BER. ``val/nve`` (the monitor) is the NVE over
        the trained codes; held-out codes (decoded zero-shot) get their own ``val/nve_heldout``."""
        heldout = set(self.hparams.get("heldout_codes") or ())
        ratios, heldout_ratios = [], []
        for i, (code, ebn0) in enumerate(self.val_keys):
            ber, fer = float(self.val_ber[i].compute()), float(self.val_fer[i].compute())
            key = db_key(ebn0) if code is None else f"{code}_{db_key(ebn0)}"
            self.log(f"val/ber_{key}", ber, add_dataloader_idx=False)
            self.log(f"val/fer_{key}", fer, add_dataloader_idx=False)
            self.log(f"val/neg_ln_ber_{key}", -math.log(max(ber, 1e-12)), add_dataloader_idx=False)
            if self.baselines:
                base = float(self.baseline_ber[i].compute())
                self.log(f"val/baseline_ber_{key}", base, add_dataloader_idx=False)
                (heldout_ratios if code in heldout else ratios).append((ber, base))
            self.val_ber[i].reset()
            self.val_fer[i].reset()
        if self.baselines:
            self._baseline_done = True
            self.log("val/nve", normalized_validation_error(ratios), prog_bar=True, add_dataloader_idx=False)
            if heldout_ratios:
                self.log("val/nve_heldout", normalized_validation_error(heldout_ratios), add_dataloader_idx=False)

    def param_groups(self) -> list[dict[str, Any]]:
        """Adam parameter groups: everything at ``lr``; with ``delta_lr`` set, the ternary scales
        (parameters named ``*.delta``, :class:`eccflow.nn.ternary.TernaryLinear`) in a group of their own."""
        delta_lr = self.hparams.get("delta_lr")
        named = list(self.named_parameters())
        if delta_lr is None:
            return [{"params": [p for _, p in named], "name": "all"}]
        deltas = [p for n, p in named if n.endswith(".delta")]
        groups = [{"params": [p for n, p in named if not n.endswith(".delta")], "name": "weights"}]
        return groups + ([{"params": deltas, "lr": float(delta_lr), "name": "delta"}] if deltas else [])

    def configure_optimizers(self) -> dict[str, Any]:
        """Adam; every group's rate rises linearly over the first ``warmup`` fraction of the steps (from 1/W of it, W the
        warm-up steps), then CosineAnnealingLR anneals it to ``lr_min`` over the remaining steps."""
        optimizer = torch.optim.Adam(self.param_groups(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay,
                                     **ADAM_OPTIONS[self.hparams.get("adam", "default")])
        steps = max(1, int(self.trainer.estimated_stepping_batches))
        warm = min(steps - 1, int(round(self.hparams.get("warmup", 0.0) * steps)))
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps - warm, eta_min=self.hparams.lr_min)
        if warm > 0:
            rise = torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=1.0 / warm, total_iters=warm)
            schedule = torch.optim.lr_scheduler.SequentialLR(optimizer, [rise, schedule], milestones=[warm])
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """A Lightning checkpoint as a dict, or a clear error if missing or corrupt."""
    path = Path(path)
    if not path.is_file():
        raise EccflowError(f"checkpoint {path} does not exist")
    try:  # weights-only unpickling: a checkpoint can never run code on load
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for truncated / foreign files
        raise EccflowError(f"checkpoint {path} is corrupt or not a torch checkpoint ({type(err).__name__}: {err})") from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt or "hyper_parameters" not in ckpt:
        raise EccflowError(f"checkpoint {path} is not an eccflow Lightning checkpoint (no state_dict / hyper_parameters)")
    return ckpt
