"""Fit a decoder from a resolved config (used by the train stage, Optuna trials and the DDP test)."""
from __future__ import annotations

import copy
import json
import math
import shutil
import statistics
import sys
import time
import warnings
from datetime import timedelta
from pathlib import Path
from typing import Any, Sequence

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from torch.utils.data import DataLoader

from eccflow.codes import Code, get_code
from eccflow.data import AWGNDataModule, MultiCodeDataModule
from eccflow.decoders.message_passing import BeliefPropagationDecoder
from eccflow.decoders.flops import flops_per_frame
from eccflow.errors import ConfigError, EccflowError
from eccflow.files import atomic_path
from eccflow.host_memory import keep_freed_memory
from eccflow.lit import DecoderLitModule, load_weights, read_checkpoint
from eccflow.lit.families import build_network, get_family
from eccflow.lit.base import ADAM_OPTIONS



def compile_backend(value: Any) -> str | None:
    """``trainer.compile``: false (eager), true (inductor) or a ``torch.compile`` backend name."""
    if value is False or value is None:
        return None
    if value is True:
        return "inductor"
    import torch._dynamo

    if isinstance(value, str) and value in torch._dynamo.list_backends(exclude_tags=()):
        return value
    raise ConfigError(f"trainer.compile must be true, false or a torch.compile backend "
                      f"({', '.join(torch._dynamo.list_backends())}), got {value!r}")


PRECISIONS = ("32-true", "32", "bf16-mixed", "bf16-true", "16-mixed", "16-true", "64-true", "64")


def check_trainer(config: dict[str, Any]) -> None:
    """ConfigError, before any work, on trainer options this machine cannot run: ``trainer.compile`` without
    the compiler inductor needs, bf16 precision on a CPU without bf16 instructions, a CUDA accelerator
    without a GPU, a ``trainer.val_check_interval`` that is not a positive number of steps."""
    tr = config["trainer"]
    accelerator, precision = str(tr["accelerator"]), str(tr["precision"])
    cuda = accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())
    if accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise ConfigError(f"trainer.accelerator={accelerator} but no CUDA GPU is visible; use trainer.accelerator=cpu")
    if precision not in PRECISIONS:
        raise ConfigError(f"trainer.precision={precision} is not one of {list(PRECISIONS)}")
    if precision.startswith("16"):
        raise ConfigError(f"trainer.precision={precision}: float16 needs loss scaling, which the fused Adam with "
                          "gradient clipping eccflow trains with does not take; use bf16-mixed (CUDA, or a CPU with "
                          "bf16 instructions) or 32-true")
    if precision.startswith("bf16") and not cuda and not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        raise ConfigError(f"trainer.precision={precision}: this CPU has no bf16 instructions "
                          f"({torch.backends.cpu.get_cpu_capability()}); use 32-true on the CPU, bf16 on a CUDA GPU")
    backend = compile_backend(tr.get("compile", False))
    if backend == "inductor" and cuda:
        from torch.utils._triton import has_triton

        if not has_triton():
            raise ConfigError("trainer.compile=true on CUDA needs triton, which is not installed")
    elif backend == "inductor" and shutil.which("g++") is None and shutil.which("c++") is None:
        raise ConfigError("trainer.compile=true on the CPU needs a C++ compiler (g++) for inductor; none found")
    interval = tr.get("val_check_interval")
    if interval is not None and (isinstance(interval, bool) or not isinstance(interval, int) or interval < 1):
        raise ConfigError(f"trainer.val_check_interval must be null (every epoch) or a positive number of training "
                          f"steps, got {interval!r}")


def recipe_learning_rate(config: dict[str, Any], stage: str) -> float:
    """The stage's Adam learning rate: ``stages.<stage>.lr``, or with a large-batch ``recipe`` the recipe's rate at
    ``data.batch_size`` B, ``recipe.lr * (B / recipe.batch) ** power`` (power 0.5: square-root scaling, 1: linear),
    for ``recipe.batch <= B <= recipe.max_batch`` (the batches it was measured at). ConfigError on a batch outside
    that range or on both ``lr`` and ``recipe`` set."""
    st, batch = config["stages"][stage], config["data"]["batch_size"]
    recipe = st.get("recipe")
    if recipe is None:
        if st.get("lr") is None:
            raise ConfigError(f"stages.{stage}.lr is null and no stages.{stage}.recipe sets it; give one of them")
        return float(st["lr"])
    if st.get("lr") is not None:
        raise ConfigError(f"stages.{stage}.lr={st['lr']} and stages.{stage}.recipe both set the learning rate; set "
                          f"stages.{stage}.lr=null to follow the recipe, or stages.{stage}.recipe=null to choose it yourself")
    try:
        base, low, high, power = (float(recipe[k]) for k in ("lr", "batch", "max_batch", "power"))
    except (KeyError, TypeError, ValueError):
        raise ConfigError(f"stages.{stage}.recipe must map lr, batch, max_batch and power to numbers, got {recipe!r}") from None
    if not (base > 0 and 0 < low <= high and power >= 0):
        raise ConfigError(f"stages.{stage}.recipe needs lr > 0, 0 < batch <= max_batch and power >= 0, got {recipe!r}")
    if not low <= batch <= high:
        raise ConfigError(f"data.batch_size={batch} does not fit the large-batch recipe of stages.{stage} (measured at "
                          f"batches {low:g} to {high:g}); choose a batch in that range, or set stages.{stage}.recipe=null "
                          f"and stages.{stage}.lr to train outside it")
    return base * (batch / low) ** power


def optimizer_settings(config: dict[str, Any], stage: str) -> dict[str, Any]:
    """The LightningModule keyword arguments a stage's optimiser block and the trainer set: Adam (learning rate from
    :func:`recipe_learning_rate`, ``weight_decay``, implementation ``adam``) with a linear warm-up over the fraction
    ``warmup`` of the steps and a cosine schedule to ``lr_min``, the ``compile`` backend, and the validation Eb/N0
    list."""
    st = config["stages"][stage]
    adam = st.get("adam", "default")
    if adam not in ADAM_OPTIONS:
        raise ConfigError(f"stages.{stage}.adam must be one of {list(ADAM_OPTIONS)}, got {adam!r}")
    lr, warmup = recipe_learning_rate(config, stage), st["warmup"]
    if isinstance(warmup, bool) or not isinstance(warmup, (int, float)) or not 0 <= warmup < 1:
        raise ConfigError(f"stages.{stage}.warmup must be a fraction of the steps in [0, 1), got {warmup!r}")
    return dict(val_ebn0_db=config["data"]["val_ebn0_db"], lr=lr, lr_min=float(st["lr_min"]), warmup=float(warmup),
                weight_decay=float(st["weight_decay"]), adam=adam, compile=compile_backend(config["trainer"].get("compile", False)))


def build_datamodule(code: Code, config: dict[str, Any], stage: str = "train") -> L.LightningDataModule:
    """The code mixture when the stage lists ``codes`` (FECCT pretraining), else the family's stream (BPSK-AWGN
    unless the family says otherwise, e.g. SBND's BICM system)."""
    d, st = config["data"], config["stages"][stage]
    common = dict(batch_size=d["batch_size"], batches_per_epoch=d["batches_per_epoch"], codewords=d["codewords"],
                  val_ebn0_db=d["val_ebn0_db"], val_frames=d["val_frames"], seed=config["seed"], num_workers=d["num_workers"],
                  sampling=d["sampling"])
    if st.get("codes"):
        return MultiCodeDataModule(st["codes"], d["train_ebn0_db"], weights=st.get("weights"),
                                   heldout=st.get("heldout") or (), **common)
    stream = {"train_ebn0_db": d["train_ebn0_db"], **common}
    family = get_family(config["decoder"].get("family"))
    return family.datamodule(code, config["decoder"], stream) if family.datamodule else AWGNDataModule(code, **stream)


def lit_settings(codes: list[Code], config: dict[str, Any], stage: str, iterations: int | None = None,
                 check_update: str = "sum-product") -> dict[str, Any]:
    """The keyword arguments every stage's :class:`DecoderLitModule` takes: the stage's optimiser settings
    and its NVE baseline, BP per code with ``iterations`` (default ``stages.<stage>.baseline_iterations``)."""
    iterations = int(iterations if iterations is not None else config["stages"][stage]["baseline_iterations"])
    baselines = {c.name: BeliefPropagationDecoder(c, iterations=iterations, check_update=check_update) for c in codes}
    return {**optimizer_settings(config, stage), "baseline": baselines}


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
    net = build_network(code, dec)
    if init_checkpoint:
        load_weights(net, init_checkpoint)
    heldout = [get_code(c).name for c in st.get("heldout") or ()] if st.get("codes") else []  # as val_keys name them
    codes = [get_code(c) for c in [*st["codes"], *heldout]] if st.get("codes") else [code]
    common = dict(**lit_settings(codes, config, stage, dec.get("iterations"), dec.get("check_update", "sum-product")),
                  val_codes=[c.name for c in codes] if st.get("codes") else None, heldout_codes=heldout)
    family = get_family(dec["family"])
    if family.lightning is None:
        raise ConfigError(f"the {family.name} family is trained by a stage of its own (PIPELINE={family.name})")
    return family.lightning(net, dec, code.name, st, common)


class EpochLines(L.Callback):
    """One short line per epoch on stderr (for logs, where progress bars would print every redraw)."""

    def __init__(self, stage: str) -> None:
        self.stage, self.started = stage, time.perf_counter()

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.started = time.perf_counter()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        shown = {k: float(v) for k, v in trainer.callback_metrics.items()
                 if k in ("train/loss_epoch", "val/nve", "val/nve_heldout")}
        values = ", ".join(f"{k} {v:.4g}" for k, v in shown.items())
        print(f"[{self.stage}] epoch {trainer.current_epoch + 1}/{trainer.max_epochs}, step {trainer.global_step}: "
              f"{values} ({time.perf_counter() - self.started:.1f} s)", file=sys.stderr, flush=True)


class LastCheckpoint(Callback):
    """Writes ``last.ckpt`` (weights, optimiser, step, loop state) after every validation, at the end of
    training and optionally every N steps, whatever the monitored metric did, so a killed run resumes from its last validation rather than
    from its last improvement. The file is written beside and then renamed over, so a kill never truncates it.
    """

    def __init__(self, ckpt_dir: Path, every_n_steps: int | None = None) -> None:
        self.path, self.every_n_steps = Path(ckpt_dir) / "last.ckpt", every_n_steps

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        """Also every ``every_n_steps`` optimiser steps inside an epoch (``trainer.checkpoint_every_n_steps``):
        a kill then loses at most that many steps."""
        if self.every_n_steps and trainer.global_step % self.every_n_steps == 0:
            self._save(trainer)

    def _save(self, trainer: L.Trainer) -> None:
        if trainer.sanity_checking:
            return
        if trainer.is_global_zero:
            with atomic_path(self.path) as partial:
                trainer.save_checkpoint(partial)
        else:
            trainer.save_checkpoint(self.path)  # every rank takes part; only rank zero writes

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._save(trainer)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._save(trainer)


class _StepClock(Callback):
    def __init__(self) -> None:
        self.times: list[float] = []

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        self.times.append(time.perf_counter())


CALIBRATION_STEPS = 8  # the first two are warm-up, the median of the other step times counts
CALIBRATION_VAL_FRAMES = 128  # per validation stream, timed and scaled to the whole pass
VALIDATION_SHARE = 0.25  # of a time budget, at most, for validation passes (fewer passes on long codes)
OVERHEAD_SHARE = 0.05  # of a time budget, kept for trainer start-up, the stopping step and the checkpoint copy


def _frames(batch: dict[str, Any]) -> int:
    """Frames in a batch: the leading size of its first tensor."""
    return next(int(v.shape[0]) for v in batch.values() if torch.is_tensor(v) and v.dim() > 0)


def _head(batch: dict[str, Any], frames: int) -> dict[str, Any]:
    """The first ``frames`` frames of a batch (tensors sliced, per-batch fields such as a code name kept)."""
    return {k: v[:frames] if torch.is_tensor(v) and v.dim() > 0 else v for k, v in batch.items()}


def budget_schedule(stage: str, budget_s: float, spent_s: float, step_s: float, val_pass_s: float, build_s: float,
                    epochs: int) -> dict[str, float]:
    """How a budget of ``budget_s`` seconds, ``spent_s`` of them already spent by calibration, divides into
    validation passes (at most ``epochs``, at least one, together at most ``VALIDATION_SHARE`` of what is left),
    training steps of ``step_s`` and ``OVERHEAD_SHARE`` of overhead; ``build_s`` is the one-off cost of the fixed
    validation stream. ``max_time_s`` (Lightning's ``max_time``) stops training so that the pass after the stop fits."""
    remaining = budget_s - spent_s
    usable = remaining - build_s - OVERHEAD_SHARE * budget_s  # for training steps and validation passes
    passes = min(epochs, max(1, int(VALIDATION_SHARE * remaining / val_pass_s)))
    train_s = usable - passes * val_pass_s
    if train_s < step_s:
        raise ConfigError(f"stages.{stage}.budget_s={budget_s:g} s leaves no time to train: the calibration took "
                          f"{spent_s:.0f} s and one validation pass takes {val_pass_s:.0f} s "
                          f"(lower data.val_frames or raise the budget)")
    return {"budget_s": float(budget_s), "step_s": step_s, "val_pass_s": val_pass_s, "remaining_s": remaining,
            "epochs": float(passes), "steps": float(int(train_s / step_s)),
            "max_time_s": usable - val_pass_s}


def plan_budget(code: Code, config: dict[str, Any], stage: str, lit: DecoderLitModule, budget_s: float,
                epochs: int, plan_file: Path) -> dict[str, float]:
    """The training steps and validation passes that fit ``budget_s`` seconds of wall clock.

    A copy of ``lit`` trains ``CALIBRATION_STEPS`` steps on the stage's own stream (median step time) and
    validates the first ``CALIBRATION_VAL_FRAMES`` frames of each validation stream (scaled to a whole pass);
    :func:`budget_schedule` divides what is left. The plan is kept in ``plan_file`` so a resumed run keeps its schedule."""
    # a stored plan without "max_time_s" comes from the planner that did not time validation: planned again
    if plan_file.is_file() and "max_time_s" in (stored := json.loads(plan_file.read_text())):
        return stored
    start, clock, tr = time.perf_counter(), _StepClock(), config["trainer"]
    quiet = dict(logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                 accelerator=tr["accelerator"], devices=1, precision=tr["precision"])
    probe = L.Trainer(max_steps=CALIBRATION_STEPS, limit_val_batches=0, num_sanity_val_steps=0, callbacks=[clock],
                      gradient_clip_val=tr["gradient_clip_val"], **quiet)
    datamodule, model = build_datamodule(code, config, stage), copy.deepcopy(lit)
    probe.fit(model, datamodule=datamodule)
    step_s = statistics.median(b - a for a, b in zip(clock.times[1:], clock.times[2:]))
    build = time.perf_counter()
    loaders = datamodule.val_dataloader()
    loaders = loaders if isinstance(loaders, list) else [loaders]
    build_s, frames = time.perf_counter() - build, sum(_frames(batch) for loader in loaders for batch in loader)
    heads = [[_head(next(iter(loader)), CALIBRATION_VAL_FRAMES)] for loader in loaders]
    timed = time.perf_counter()
    L.Trainer(**quiet).validate(model, dataloaders=[DataLoader(h, batch_size=None) for h in heads], verbose=False)
    val_pass_s = (time.perf_counter() - timed) * frames / sum(_frames(h[0]) for h in heads)
    plan = budget_schedule(stage, budget_s, time.perf_counter() - start, step_s, val_pass_s, build_s, epochs)
    plan_file.parent.mkdir(parents=True, exist_ok=True)
    plan_file.write_text(json.dumps(plan, indent=2))
    return plan


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

    Checkpoints go to ``out_dir/checkpoints``: ``best`` by ``stages.train.monitor``, ``last`` after every
    validation; when a ``last.ckpt`` is already there (a killed run), training resumes from it. ``init_checkpoint``
    starts from trained weights (fine-tuning a pretrained backbone). ``stage`` names the config block
    (``train``, ``pretrain``, ``finetune``) with the optimiser settings and an optional ``max_epochs``.
    ``lit_module`` replaces the family's default module (e.g. LoRA + KD recovery), ``datamodule`` the
    default AWGN stream (e.g. active learning or boosting samples for window decoders).
    """
    st, tr = config["stages"][stage], config["trainer"]
    check_trainer(config)
    if tr["keep_host_memory"]:
        keep_freed_memory()
    if st["monitor_mode"] not in ("min", "max"):
        raise ConfigError(f"stages.{stage}.monitor_mode must be 'min' or 'max', got {st['monitor_mode']!r}")
    torch.manual_seed(config["seed"])
    lit = lit_module if lit_module is not None else build_lit_module(code, config, init_checkpoint, stage)
    epochs, plan = int(st.get("max_epochs") or tr["max_epochs"]), None
    if st.get("budget_s") is not None:
        budget = st["budget_s"]
        if isinstance(budget, bool) or not isinstance(budget, (int, float)) or not 0 < budget < float("inf"):
            raise ConfigError(f"stages.{stage}.budget_s must be a positive number of seconds, got {budget!r}")
        if datamodule is not None:
            raise ConfigError(f"stages.{stage}.budget_s plans the steps of the stage's own stream; this stage brings its own")
        plan = plan_budget(code, config, stage, lit, float(budget), epochs, Path(out_dir) / "budget_plan.json")
        epochs = int(plan["epochs"])
        config = {**config, "data": {**config["data"], "batches_per_epoch": max(1, math.ceil(plan["steps"] / epochs))}}
    datamodule = datamodule if datamodule is not None else build_datamodule(code, config, stage)
    ckpt_dir = Path(out_dir) / "checkpoints"
    checkpoint = ModelCheckpoint(dirpath=ckpt_dir, filename="best", monitor=st["monitor"], mode=st["monitor_mode"])
    interval = tr.get("val_check_interval")  # every K steps across epochs, or once per epoch (None)
    bars = progress and sys.stderr.isatty()  # a log (not a terminal) gets one line per epoch instead of redraws
    lines = [EpochLines(stage)] if progress and not bars else []
    trainer = L.Trainer(
        val_check_interval=interval, check_val_every_n_epoch=None if interval else 1,
        accelerator=tr["accelerator"], devices=tr["devices"], num_nodes=tr["num_nodes"], strategy=tr["strategy"],
        max_epochs=epochs, max_steps=int(plan["steps"]) if plan else -1,
        max_time=timedelta(seconds=plan["max_time_s"]) if plan else None, gradient_clip_val=tr["gradient_clip_val"], precision=tr["precision"],
        logger=logger, callbacks=[checkpoint, LastCheckpoint(ckpt_dir, tr.get("checkpoint_every_n_steps")), *callbacks, *lines],
        default_root_dir=str(out_dir), reload_dataloaders_every_n_epochs=1, enable_progress_bar=bars,
        enable_model_summary=False,
        log_every_n_steps=10, num_sanity_val_steps=0,  # validation is tested; a pre-training pass would only cost time
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
    if plan:
        metrics.update(budget_steps=plan["steps"], budget_step_s=plan["step_s"], budget_val_pass_s=plan["val_pass_s"],
                       budget_epochs=plan["epochs"], steps=float(trainer.global_step))
    if checkpoint.best_model_score is not None:
        metrics[f"best_{st['monitor'].replace('/', '_')}"] = float(checkpoint.best_model_score)
    return model, metrics
