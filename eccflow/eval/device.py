"""Human-readable description of where a benchmark ran."""
from __future__ import annotations

import os
import platform

import torch


def device_name(device: str | torch.device) -> str:
    """E.g. 'NVIDIA H100 80GB HBM3 (cuda)' or 'x86_64 CPU, 2 cores, 2 torch threads'."""
    device = torch.device(device)
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (cuda)"
    return f"{platform.machine()} CPU, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads"
