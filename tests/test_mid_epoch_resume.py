"""A training run killed with SIGKILL inside an epoch resumes from its last step checkpoint
(``trainer.checkpoint_every_n_steps``) and ends with the weights of a run that was never interrupted."""
from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import torch

from eccflow.codes import get_code
from eccflow.config import compose
from eccflow.lit import read_checkpoint
from eccflow.train import fit
from conftest import shrunk

ROOT = Path(__file__).resolve().parents[1]
CODE = "BCH_n15_k7"
OVERRIDES = shrunk("trainer.max_epochs=2", "data.batches_per_epoch=10", "trainer.checkpoint_every_n_steps=3")
KILLER = f"""
import os, signal, sys
from pathlib import Path
import lightning as L
from eccflow.codes import get_code
from eccflow.config import compose
from eccflow.train import fit

class KillAtStep8(L.Callback):  # after the step-6 checkpoint, inside the first epoch of 10 steps
    def on_train_batch_end(self, trainer, *args):
        if trainer.global_step == 8:
            os.kill(os.getpid(), signal.SIGKILL)

config = compose({CODE!r}, "neural_bp", "quick", {OVERRIDES!r})
fit(get_code({CODE!r}), config, Path(sys.argv[1]), callbacks=[KillAtStep8()], progress=False)
"""


def test_a_run_killed_mid_epoch_resumes_from_its_last_step_and_ends_equal(tmp_path: Path) -> None:
    killed = tmp_path / "killed"
    done = subprocess.run([sys.executable, "-c", KILLER, str(killed)], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    last = read_checkpoint(killed / "checkpoints" / "last.ckpt")
    assert (last["global_step"], last["epoch"]) == (6, 0)  # a kill at step 8 lost 2 steps, not the epoch
    config = compose(CODE, "neural_bp", "quick", OVERRIDES)
    fit(get_code(CODE), config, killed, progress=False)  # resumes from step 6
    fit(get_code(CODE), config, tmp_path / "whole", progress=False)
    resumed = read_checkpoint(killed / "checkpoints" / "last.ckpt")
    whole = read_checkpoint(tmp_path / "whole" / "checkpoints" / "last.ckpt")
    assert resumed["global_step"] == whole["global_step"] == 20
    assert resumed["state_dict"].keys() == whole["state_dict"].keys()
    for key, value in whole["state_dict"].items():
        assert torch.equal(resumed["state_dict"][key], value), key
