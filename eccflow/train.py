"""Fit a decoder from a resolved config (used by the train stage, Optuna trials and the DDP test)."""
from __future__ import annotations

import shutil
import time
import warnings
from pathlib import Path
from typing import Any, Sequence

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint

from eccflow.codes import Code, get_code
from eccflow.data import AWGNDataModule, BICMDataModule, MultiCodeDataModule
from eccflow.decoders.message_passing import BeliefPropagationDecoder
from eccflow.decoders.flops import flops_per_frame
from eccflow.decoders.factory import TRANSFORMER_FAMILIES, build_decoder
from eccflow.errors import ConfigError, EccflowError
from eccflow.lit import DecoderLitModule, NeuralBPLitModule, TransformerLitModule, load_weights, read_checkpoint


def build_datamodule(code: Code, config: dict[str, Any], stage: str = "train") -> L.LightningDataModule:
    """Single-code AWGN stream, or the code mixture when the stage lists ``codes`` (FECCT pretraining)."""
    d, st = config["data"], config["stages"][stage]
    common = dict(batch_size=d["batch_size"], batches_per_epoch=d["batches_per_epoch"], codewords=d["codewords"],
                  val_ebn0_db=d["val_ebn0_db"], val_frames=d["val_frames"], seed=config["seed"], num_workers=d["num_workers"])
    if st.get("codes"):
        return MultiCodeDataModule(st["codes"], d["train_ebn0_db"], weights=st.get("weights"), **common)
    dec = config.get("decoder", {})
    if dec.get("channel", "awgn") == "bicm":  # the BICM system the decoder declares (SBND)
        return BICMDataModule(code, d["train_ebn0_db"], modulation=dec.get("modulation", "qam"),
                              order=int(dec.get("order", 16)), demapping=dec.get("demapper", "exact"),
                              interleaver_seed=int(dec.get("interleaver_seed", 0)), **common)
    return AWGNDataModule(code, d["train_ebn0_db"], **common)


def build_lit_module(code: Code, config: dict[str, Any], init_checkpoint: str | Path | None = None,
                     stage: str = "train") -> DecoderLitModule:
    """The family's LightningModule around a freshly built network (weights from ``init_checkpoint`` if given).

    The NVE baseline is BP with the decoder's own iterations, or ``stages.<stage>.baseline_iterations``
    for decoders that do not iterate (transformers); a mixture gets one baseline per code.
    """
    dec, st = config["decoder"], config["stages"][stage]
    if init_checkpoint:  # a pruned checkpoint carries its unit mask: build the same smaller backbone
        mask = read_checkpoint(init_checkpoint)["hyper_parameters"].get("net_config", {}).get("unit_mask")
        dec = {**dec, "unit_mask": mask} if mask else dec
    net = build_decoder(code, dec)
    if init_checkpoint:
        load_weights(net, init_checkpoint)
    codes = [get_code(c) for c in st["codes"]] if st.get("codes") else [code]
    baselines = {c.name: BeliefPropagationDecoder(c, iterations=int(dec.get("iterations", st["baseline_iterations"])),
                                                  check_update=dec.get("check_update", "sum-product")) for c in codes}
    common = dict(val_ebn0_db=config["data"]["val_ebn0_db"], lr=float(st["lr"]), lr_min=float(st["lr_min"]),
                  weight_decay=float(st["weight_decay"]), baseline=baselines,
                  val_codes=[c.name for c in codes] if st.get("codes") else None)
    if dec["family"] in TRANSFORMER_FAMILIES:
        return TransformerLitModule(net, dec, code.name, **common)
    if dec["family"] == "sbnd":
        from eccflow.lit.sbnd import SBNDLitModule

        return SBNDLitModule(net, dec, code.name, **common)
    if dec["family"] == "ewgnn":
        from eccflow.lit.ewgnn import EWGNNLitModule

        return EWGNNLitModule(net, dec, code.name, multiloss=st["multiloss"], **common)
    return NeuralBPLitModule(net, dec, code.name, multiloss=st["multiloss"], **common)


def _resume_checkpoint(ckpt_dir: Path) -> Path | None:
    """The checkpoint a killed run resumes from: ``last.ckpt``, else ``best.ckpt``, else none.

    A checkpoint cut short by the kill is moved aside to ``*.corrupt`` (kept for inspection, never
    deleted) with a warning, and the next candidate is tried.
    """
    for name in ("last.ckpt", "best.ckpt"):
        path = ckpt_dir / name
        if not path.is_file():
            continue
        try:
            read_checkpoint(path)
            return path
        except EccflowError as err:
            aside = path.with_suffix(f".corrupt-{int(time.time())}")
            path.rename(aside)
            warnings.warn(f"{err}; moved to {aside.name}, not resuming from it", stacklevel=2)
    return None


def fit(
    code: Code,
    config: dict[str, Any],
    out_dir: Path,
    logger: Any = False,
    callbacks: Sequence[Callback] = (),
    progress: bool = True,
    init_checkpoint: str | Path | None = None,
    stage: str = "train",
    lit_module: DecoderLitModule | None = None,
    datamodule: L.LightningDataModule | None = None,
) -> tuple[Path, dict[str, float]]:
    """Train; returns (path of the selected checkpoint copied to ``out_dir/model.ckpt``, summary metrics).

    Checkpoints go to ``out_dir/checkpoints`` (best by ``stages.train.monitor`` and ``last``); when a
    ``last.ckpt`` is already there (a killed run), training resumes from it. ``init_checkpoint``
    starts from trained weights (fine-tuning a pretrained backbone). ``stage`` names the config block
    (``train``, ``pretrain``, ``finetune``) with the optimiser settings and an optional ``max_epochs``.
    ``lit_module`` replaces the family's default module (e.g. LoRA + KD recovery), ``datamodule`` the
    default AWGN stream (e.g. active learning or boosting samples for window decoders).
    """
    st, tr = config["stages"][stage], config["trainer"]
    if st["monitor_mode"] not in ("min", "max"):
        raise ConfigError(f"stages.{stage}.monitor_mode must be 'min' or 'max', got {st['monitor_mode']!r}")
    torch.manual_seed(config["seed"])
    lit = lit_module if lit_module is not None else build_lit_module(code, config, init_checkpoint, stage)
    datamodule = datamodule if datamodule is not None else build_datamodule(code, config, stage)
    ckpt_dir = Path(out_dir) / "checkpoints"
    checkpoint = ModelCheckpoint(dirpath=ckpt_dir, filename="best", monitor=st["monitor"], mode=st["monitor_mode"], save_last=True)
    trainer = L.Trainer(
        accelerator=tr["accelerator"], devices=tr["devices"], num_nodes=tr["num_nodes"], strategy=tr["strategy"],
        max_epochs=int(st.get("max_epochs") or tr["max_epochs"]), gradient_clip_val=tr["gradient_clip_val"], precision=tr["precision"],
        logger=logger, callbacks=[checkpoint, *callbacks], default_root_dir=str(out_dir),
        reload_dataloaders_every_n_epochs=1, enable_progress_bar=progress, enable_model_summary=False,
        log_every_n_steps=10,
    )
    resume = _resume_checkpoint(ckpt_dir)
    resumed_epoch = int(read_checkpoint(resume)["epoch"]) + 1 if resume else 0
    start = time.perf_counter()
    trainer.fit(lit, datamodule=datamodule, ckpt_path=str(resume) if resume else None)
    seconds = time.perf_counter() - start
    best = Path(checkpoint.best_model_path) if checkpoint.best_model_path else ckpt_dir / "last.ckpt"
    model = Path(out_dir) / "model.ckpt"
    if trainer.is_global_zero:
        shutil.copyfile(best, model)
    metrics = {"train_seconds": seconds, "decoder_params": float(sum(p.numel() for p in lit.net.parameters())),
               "decoder_flops": float(flops_per_frame(lit.net, code.n)),
               "resumed_from_epoch": float(resumed_epoch)}
    if checkpoint.best_model_score is not None:
        metrics[f"best_{st['monitor'].replace('/', '_')}"] = float(checkpoint.best_model_score)
    return model, metrics
