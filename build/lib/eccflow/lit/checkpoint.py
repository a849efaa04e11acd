"""Rebuild decoders from Lightning checkpoints (weights-only), with clear errors on mismatches."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from eccflow.codes import Code, get_code
from eccflow.errors import EccflowError
from eccflow.files import atomic_path
from eccflow.lit.base import read_checkpoint


def net_state(ckpt: dict[str, Any]) -> dict[str, Any]:
    """The network's tensors of a LightningModule checkpoint, without the module's ``net.`` prefix."""
    return {k[len("net."):]: v for k, v in ckpt["state_dict"].items() if k.startswith("net.")}


def load_weights(net: nn.Module, checkpoint_path: str | Path) -> dict[str, Any]:
    """Copy a checkpoint's network weights into ``net``; returns the checkpoint's hyper-parameters.

    Every missing, unexpected or differently shaped tensor is listed in one error that also names
    the code and architecture the checkpoint was trained with.
    """
    ckpt = read_checkpoint(checkpoint_path)
    hp = ckpt["hyper_parameters"]
    state = net_state(ckpt)
    own = net.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = sorted(f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
                    for k in set(own) & set(state) if state[k].shape != own[k].shape)
    if missing or unexpected or shapes:
        problems = "; ".join(part for part in (
            f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}" if missing else "",
            f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}" if unexpected else "",
            f"shape mismatch {shapes[:3]}{'...' if len(shapes) > 3 else ''}" if shapes else "",
        ) if part)
        arch = {k: v for k, v in hp.get("net_config", {}).items()}
        raise EccflowError(f"checkpoint {checkpoint_path} (code {hp.get('code')!r}, decoder {arch}) does not fit this "
                           f"model: {problems}")
    net.load_state_dict(state)
    return hp


def load_decoder(checkpoint_path: str | Path, code: Code | str | None = None) -> nn.Module:
    """The trained decoder of a checkpoint, in eval mode, for its own code or (universal models) ``code``."""
    hp = read_checkpoint(checkpoint_path)["hyper_parameters"]
    if "net_config" not in hp or "code" not in hp:
        raise EccflowError(f"checkpoint {checkpoint_path} has no eccflow decoder config (net_config, code)")
    target = get_code(code) if isinstance(code, str) else code if code is not None else get_code(hp["code"])
    from eccflow.lit.families import build_network  # the families module imports the LightningModules

    net = build_network(target, hp["net_config"])
    load_weights(net, checkpoint_path)
    return net.eval()


def save_decoder(net: nn.Module, net_config: dict[str, Any], code: str, path: str | Path) -> Path:
    """Write ``net`` as a checkpoint that :func:`load_decoder` and ``fit(init_checkpoint=...)`` read."""
    return save_state(net.state_dict(), net_config, code, path)


def save_state(state: dict[str, torch.Tensor], net_config: dict[str, Any], code: str | None, path: str | Path) -> Path:
    """Write network tensors (keys without the ``net.`` prefix) as a checkpoint :func:`load_decoder` reads."""
    prefixed = {f"net.{k}": v.detach().cpu() for k, v in state.items()}
    with atomic_path(path) as tmp:
        torch.save({"state_dict": prefixed, "hyper_parameters": {"net_config": net_config, "code": code}}, tmp)
    return Path(path)
