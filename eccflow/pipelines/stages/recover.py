"""``recover`` stage: recover the pruned input ``checkpoint`` on CODE with LoRA adapters (or all weights,
``method: full``) on BCE + lambda * KD against the ``teacher`` (the unpruned backbone).

Outputs the merged ``checkpoint`` (plain weights, decodes like the adapted model) and, for LoRA, the
adapters alone (``adapters.pt``, a small file logged and registered with the run); reports the
adapter parameters as a fraction of the full model (SAP paper: about 7%).
"""
from __future__ import annotations

import mlflow
import torch
from lightning.pytorch.loggers import MLFlowLogger

from eccflow.compress.lora import adapter_state, add_lora, merge_lora
from eccflow.errors import ConfigError
from eccflow.lit import load_decoder, read_checkpoint, save_decoder
from eccflow.lit.checkpoint import net_state
from eccflow.lit.recovery import RecoveryLitModule
from eccflow.pipelines.runner import StageContext, StageResult, stage
from eccflow.train import fit, lit_settings


@stage("recover")
def recover(ctx: StageContext) -> StageResult:
    st = ctx.stage_config
    if st["method"] not in ("lora", "full"):
        raise ConfigError(f"stages.{ctx.name}.method must be 'lora' or 'full', got {st['method']!r}")
    if "checkpoint" not in ctx.inputs:
        raise ConfigError("the recover stage needs a pruned checkpoint from an earlier stage (prune or sap)")
    pruned_path = ctx.inputs["checkpoint"]
    net_config = read_checkpoint(pruned_path)["hyper_parameters"]["net_config"]
    net = load_decoder(pruned_path, code=ctx.code).train()
    teacher_path = ctx.inputs.get("teacher")
    teacher = load_decoder(teacher_path, code=ctx.code) if teacher_path and st["kd_lambda"] else None
    total = sum(p.numel() for p in net.parameters())
    adapters = add_lora(net, int(st["rank"]), float(st["alpha"])) if st["method"] == "lora" else []
    lit = RecoveryLitModule(net, net_config, ctx.code.name, teacher=teacher, kd_lambda=float(st["kd_lambda"]),
                            **lit_settings([ctx.code], ctx.config, ctx.name))
    logger = MLFlowLogger(tracking_uri=ctx.tracking_uri, run_id=ctx.run_id, log_model=False)
    best, metrics = fit(ctx.code, ctx.config, ctx.out_dir, logger=logger, stage=ctx.name, lit_module=lit)
    net.load_state_dict(net_state(read_checkpoint(best)))
    outputs = {}
    if adapters:
        adapter_file = ctx.out_dir / "adapters.pt"
        torch.save(adapter_state(net), adapter_file)
        mlflow.log_artifact(str(adapter_file), artifact_path="adapters")
        outputs["adapters"] = str(adapter_file)
        lora_params = sum(p.numel() for p in adapters)
        metrics |= {"lora_params": float(lora_params), "lora_fraction": lora_params / total,
                    "adapter_bytes": float(adapter_file.stat().st_size)}
        merge_lora(net)
    model_path = save_decoder(net.eval(), net_config, ctx.code.name, ctx.out_dir / "recovered.ckpt")
    mlflow.log_metrics(metrics)
    return StageResult(outputs={**outputs, "checkpoint": str(model_path)}, metrics=metrics)
