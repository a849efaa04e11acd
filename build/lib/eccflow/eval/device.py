"""Where decoding runs: the device's check before any work, and a human-readable description."""
from __future__ import annotations

import os
import platform

import torch

from eccflow.errors import ConfigError


def device_name(device: str | torch.device) -> str:
    """E.g. 'NVIDIA H100 80GB HBM3 (cuda)' or 'x86_64 CPU, 2 cores, 2 torch threads'."""
    device = torch.device(device)
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (cuda)"
    return f"{platform.machine()} CPU, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads"


def check_device(name: str) -> torch.device:
    """``name`` as a torch device this machine has, else a clear error (before any work)."""
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ConfigError(f"unknown device {name!r}; use cpu or cuda[:index]") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r}: no CUDA GPU is visible on this machine; use cpu")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ConfigError(f"device {name!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    if device.type not in ("cpu", "cuda"):
        raise ConfigError(f"device {name!r}: eccflow decodes on cpu or cuda")
    return device
