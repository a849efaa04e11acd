"""Freed host memory stays in the process: training steps stop page-faulting their activations back in."""
from __future__ import annotations

import platform
import subprocess
import sys

import pytest

PROBE = """
import resource, sys, torch
from eccflow.codes import get_code
from eccflow.config import compose
from eccflow.data import fixed_stream
from eccflow.decoders.factory import build_decoder
from eccflow.host_memory import keep_freed_memory

torch.set_num_threads(1)
applied = keep_freed_memory() if sys.argv[1] == "keep" else False
code = get_code("BCH_n31_k16")
net = build_decoder(code, compose(code.name, "ecct", "quick", [])["decoder"])
llr = fixed_stream(code, 4.0, 256, 256, "zero", seed=0)[0]["llr"]

def step():
    net.logits(llr).square().mean().backward()

for _ in range(4):
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(3):
    step()
print(applied, (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 3)
"""


def _faults_per_step(mode: str) -> tuple[bool, float]:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True).stdout.split()
    return out[0] == "True", float(out[1])


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc malloc settings")
def test_training_steps_reuse_kept_memory_without_page_faults() -> None:
    applied, kept = _faults_per_step("keep")
    _, system = _faults_per_step("system")
    assert applied
    assert system > 2_000  # ECCT N=2 d=32, batch 256: attention tensors of 17 MB come back as fresh pages each step
    assert kept < 0.05 * system
