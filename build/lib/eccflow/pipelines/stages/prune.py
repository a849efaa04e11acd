"""``prune`` stage: Fisher structured pruning of the input transformer for CODE (Kwon et al. 2022).

Importance on a fixed calibration stream of CODE, mask search under ``flops_reduction``, physical
removal. Outputs ``mask`` (JSON), ``mask_tensors`` (.pt), ``checkpoint`` (the pruned backbone, before
recovery), and FLOPs / params / memory of the full and pruned backbone (SAP Tables 1 and 7) with the
wall-clock of mask derivation.
"""
from __future__ import annotations

import copy
import json

import mlflow
import torch

from eccflow.compress.fisher import apply_mask, calibrated_mask, network_size
from eccflow.errors import ConfigError
from eccflow.lit import load_decoder, read_checkpoint, save_decoder
from eccflow.pipelines.runner import StageContext, StageResult, stage


@stage("prune")
def prune(ctx: StageContext) -> StageResult:
    checkpoint = ctx.inputs.get("checkpoint")
    if checkpoint is None:
        raise ConfigError("the prune stage needs a trained transformer checkpoint from an earlier stage")
    model = load_decoder(checkpoint, code=ctx.code)
    if not hasattr(model, "blocks"):
        raise ConfigError(f"prune needs a transformer decoder, got {type(model).__name__}")
    full = network_size(model, ctx.code.n)
    mask, seconds = calibrated_mask(model, ctx.stage_config, ctx.config["seed"], f"stages.{ctx.name}")
    pruned = apply_mask(copy.deepcopy(model), mask)
    small = network_size(pruned, ctx.code.n)
    mask_path, tensor_path = ctx.out_dir / "mask.json", ctx.out_dir / "mask.pt"
    mask.to_json(mask_path)
    torch.save(dict(zip(("heads", "channels"), mask.as_tensors())), tensor_path)
    net_config = {**read_checkpoint(checkpoint)["hyper_parameters"]["net_config"], "unit_mask": json.loads(mask_path.read_text())}
    model_path = save_decoder(pruned, net_config, ctx.code.name, ctx.out_dir / "pruned.ckpt")
    metrics = {f"{k}_full": v for k, v in full.items()} | {f"{k}_pruned": v for k, v in small.items()}
    metrics |= {"flops_ratio": small["flops"] / full["flops"], "mask_seconds": seconds,
                "heads_kept": float(sum(map(len, mask.heads))), "channels_kept": float(sum(map(len, mask.channels)))}
    table = ("| backbone | FLOPs/frame | params | memory (KiB) |\n|---|---:|---:|---:|\n"
             + "".join(f"| {name} | {d['flops']:,.0f} | {d['params']:,.0f} | {d['memory_bytes'] / 1024:,.1f} |\n"
                       for name, d in (("full", full), ("pruned", small))))
    (ctx.out_dir / "prune_table.md").write_text(table)
    ctx.log(table)
    for path in (mask_path, tensor_path, ctx.out_dir / "prune_table.md"):
        mlflow.log_artifact(str(path))
    mlflow.log_metrics(metrics)
    return StageResult(outputs={"checkpoint": str(model_path), "mask": str(mask_path), "mask_tensors": str(tensor_path),
                                "teacher": checkpoint, "report": str(ctx.out_dir / "prune_table.md")}, metrics=metrics)
