"""``qat`` stage (AECCT phase 2): ternary AAP quantization-aware training from the full-precision input
``checkpoint``; reports the exported memory footprint (2-bit weights) and weight sparsity per layer type."""
from __future__ import annotations

import mlflow
from lightning.pytorch.loggers import MLFlowLogger

from eccflow.compress.qat import footprint, load_full_precision, sparsity_by_layer_type
from eccflow.lit.families import build_network
from eccflow.errors import ConfigError, EccflowError
from eccflow.lit import TransformerLitModule, read_checkpoint
from eccflow.lit.checkpoint import net_state
from eccflow.nn.ternary import SCALE_GRADS
from eccflow.pipelines.runner import StageContext, StageResult, stage
from eccflow.train import fit, lit_settings


@stage("qat")
def qat(ctx: StageContext) -> StageResult:
    st = ctx.stage_config
    if "checkpoint" not in ctx.inputs:
        raise ConfigError("the qat stage needs a full-precision checkpoint from an earlier stage")
    if st["quantization"] not in ("aap", "percentile"):
        raise ConfigError(f"stages.{ctx.name}.quantization must be aap or percentile, got {st['quantization']!r}")
    scale_grad = st["scale_grad"]
    if scale_grad not in SCALE_GRADS:
        raise ConfigError(f"stages.{ctx.name}.scale_grad must be one of {SCALE_GRADS}, got {scale_grad!r}")
    delta_lr = st["delta_lr"]  # null, or checked against lr_min by the LightningModule
    ckpt = read_checkpoint(ctx.inputs["checkpoint"])
    net_config = {**ckpt["hyper_parameters"]["net_config"], "quantization": st["quantization"],
                  "quant_percentile": float(st["percentile"]), "quant_scale_grad": scale_grad}
    net = build_network(ctx.code, net_config)
    try:
        load_full_precision(net, net_state(ckpt))
    except ValueError as err:
        raise EccflowError(f"{ctx.inputs['checkpoint']}: {err}") from None
    lit = TransformerLitModule(net, net_config, ctx.code.name, **lit_settings([ctx.code], ctx.config, ctx.name),
                               delta_lr=None if delta_lr is None else float(delta_lr))
    logger = MLFlowLogger(tracking_uri=ctx.tracking_uri, run_id=ctx.run_id, log_model=False)
    model, metrics = fit(ctx.code, ctx.config, ctx.out_dir, logger=logger, stage=ctx.name, lit_module=lit)
    net.load_state_dict(net_state(read_checkpoint(model)))
    metrics |= footprint(net) | sparsity_by_layer_type(net)
    mlflow.log_metrics(metrics)
    return StageResult(outputs={"checkpoint": str(model)}, metrics=metrics)
