"""The transformer training path: compiled and eager steps, Adam implementations, validation every K steps,
the cached BP baseline, and clear errors for trainer options this machine cannot run."""
from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from lightning.pytorch.callbacks import Callback
from torch import nn

from eccflow.codes import get_code
from eccflow.config import compose
from eccflow.data import fixed_stream
from eccflow.lit.families import build_network
from eccflow.decoders.message_passing import BeliefPropagationDecoder
from eccflow.errors import ConfigError
from eccflow.lit import read_checkpoint
from eccflow.lit.base import cached_frame_errors
from eccflow.train import check_trainer, fit
from conftest import shrunk

CODE = "BCH_n15_k7"
TINY = shrunk("data.batches_per_epoch=6", "data.val_ebn0_db=[4.0]", "decoder.layers=1", "decoder.d_model=16",
              "decoder.heads=4")


def _fit(tmp_path: Path, *overrides: str) -> dict[str, torch.Tensor]:
    config = compose(CODE, "ecct", "quick", [*TINY, *overrides])
    model, _ = fit(get_code(CODE), config, tmp_path, progress=False)
    return read_checkpoint(model)["state_dict"]


def _outputs(state: dict[str, torch.Tensor]) -> torch.Tensor:
    """The trained network's noise logits on fixed words. (Weights themselves can differ where the true gradient
    is zero, e.g. the key biases, which softmax ignores: Adam scales rounding noise there up to lr-sized steps.)"""
    code = get_code(CODE)
    net = build_network(code, compose(CODE, "ecct", "quick", TINY)["decoder"])
    net.load_state_dict({k[len("net."):]: v for k, v in state.items() if k.startswith("net.")})
    llr = fixed_stream(code, 4.0, 256, 256, "random", seed=9)[0]["llr"]
    with torch.no_grad():
        return net.logits(llr)


def _assert_close(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], atol: float) -> None:
    assert a.keys() == b.keys()
    torch.testing.assert_close(_outputs(a), _outputs(b), atol=atol, rtol=0)


def test_the_learning_curve_at_equal_steps_matches_the_committed_curve(monkeypatch: pytest.MonkeyPatch) -> None:
    """The short fit of benchmarks/committed_curve.py on the default path (batches drawn on the device) against
    the committed curve of the DataLoader path. Different words, so the curves differ by training and
    validation noise: across 4 runs (2 seeds x 2 paths) step-matched differences had a standard deviation of
    about 0.03, and the tolerance is 4 of those. The curve must also rise (learning, not a flat line)."""
    import json

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from committed_curve import learning_curve

    committed = json.loads((Path(__file__).with_name("data") / "ecct_curve_BCH_n31_k16.json").read_text())
    curve = learning_curve("data.sampling=device", "seed=0")
    assert len(curve) == len(committed["neg_ln_ber_4dB"]) == 3
    for ours, reference in zip(curve, committed["neg_ln_ber_4dB"]):
        assert abs(ours - reference) < 0.12, (curve, committed["neg_ln_ber_4dB"])
    assert curve[-1] - curve[0] > 0.1


@pytest.fixture(scope="module")
def default_fit(tmp_path_factory: pytest.TempPathFactory) -> dict[str, torch.Tensor]:
    """The tiny fit with every default (eager, default Adam, device sampling), shared by the comparisons."""
    return _fit(tmp_path_factory.mktemp("default"))


def test_compiled_and_eager_training_steps_agree(tmp_path: Path, default_fit: dict[str, torch.Tensor]) -> None:
    """The compiled network (dynamo graph capture + AOT autograd; ``aot_eager`` keeps the test to seconds, the
    inductor kernels are compared in benchmarks/training_throughput.py) trains to the same weights."""
    _assert_close(default_fit, _fit(tmp_path, "trainer.compile=aot_eager"), atol=1e-4)


@pytest.mark.parametrize("adam", ["foreach", "fused"])
def test_adam_implementations_train_to_the_same_weights(tmp_path: Path, adam: str,
                                                         default_fit: dict[str, torch.Tensor]) -> None:
    _assert_close(default_fit, _fit(tmp_path, f"stages.train.adam={adam}"), atol=1e-4)


def test_host_and_device_sampling_both_train(tmp_path: Path, default_fit: dict[str, torch.Tensor]) -> None:
    """The two ways to draw batches feed the same step (different words, so different weights)."""
    device, host = default_fit, _fit(tmp_path, "data.sampling=host")
    assert device.keys() == host.keys()
    assert not torch.equal(device["net.token_embedding"], host["net.token_embedding"])


def test_validation_every_k_steps(tmp_path: Path) -> None:
    from lightning.pytorch.loggers import CSVLogger

    config = compose(CODE, "ecct", "quick", [*TINY, "trainer.val_check_interval=2", "trainer.max_epochs=2"])
    fit(get_code(CODE), config, tmp_path, logger=CSVLogger(tmp_path, name="csv"), progress=False)
    rows = list(csv.DictReader(open(next((tmp_path / "csv").glob("version_*")) / "metrics.csv")))
    steps = [int(r["step"]) for r in rows if r.get("val/nve")]
    assert steps == [1, 3, 5, 7, 9, 11]  # after steps 2, 4, ..., 12 across both epochs


class LastStepRecorder(Callback):
    """Reads ``last.ckpt`` back after every validation."""

    def __init__(self, ckpt_dir: Path) -> None:
        self.ckpt_dir, self.steps = ckpt_dir, []

    def on_validation_end(self, trainer, pl_module) -> None:
        self.steps.append(int(read_checkpoint(self.ckpt_dir / "last.ckpt")["global_step"]))


def test_last_checkpoint_follows_every_validation_not_only_improvements(tmp_path: Path) -> None:
    # monitoring the step in "min" mode: only the first validation ever improves
    config = compose(CODE, "ecct", "quick", [*TINY, "trainer.val_check_interval=2", "stages.train.monitor=step",
                                             "stages.train.monitor_mode=min"])
    recorder = LastStepRecorder(tmp_path / "checkpoints")
    fit(get_code(CODE), config, tmp_path, callbacks=[recorder], progress=False)
    assert recorder.steps == [2, 4, 6]
    assert int(read_checkpoint(tmp_path / "checkpoints" / "best.ckpt")["global_step"]) == 2
    assert not list((tmp_path / "checkpoints").glob("*.partial"))


class CountingBP(BeliefPropagationDecoder):
    calls = 0

    def forward(self, llr: torch.Tensor, *args, **kwargs):
        CountingBP.calls += 1
        return super().forward(llr, *args, **kwargs)


def test_the_bp_baseline_is_decoded_once_per_validation_batch_and_reused() -> None:
    code = get_code(CODE)
    batch = fixed_stream(code, 4.0, 300, 300, "random", seed=0)[0]
    first = cached_frame_errors(CountingBP(code, iterations=5), batch)
    again = cached_frame_errors(CountingBP(code, iterations=5), batch)
    assert CountingBP.calls == 1 and torch.equal(first, again)
    cached_frame_errors(CountingBP(code, iterations=6), batch)  # another decoder is decoded again
    other = fixed_stream(code, 5.0, 300, 300, "random", seed=0)[0]
    cached_frame_errors(CountingBP(code, iterations=5), other)  # and other words too
    assert CountingBP.calls == 3
    direct = (BeliefPropagationDecoder(code, iterations=5)(batch["llr"]).bits != batch["bits"]).sum(dim=1)
    assert torch.equal(first, direct)


@pytest.mark.parametrize("override, message", [
    ("trainer.compile=turbo", "trainer.compile must be true, false or a torch.compile backend"),
    ("trainer.val_check_interval=0", "trainer.val_check_interval must be null"),
    ("trainer.val_check_interval=2.5", "trainer.val_check_interval must be null"),
    ("stages.train.adam=lion", "stages.train.adam must be one of"),
])
def test_bad_trainer_options_are_clear_errors(override: str, message: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=message):
        _fit(tmp_path, override)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only machine")
def test_gpu_accelerator_without_a_gpu_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="no CUDA GPU is visible"):
        check_trainer(compose(CODE, "ecct", "quick", ["trainer.accelerator=gpu"]))


@pytest.mark.skipif(torch.cuda.is_available() or torch.ops.mkldnn._is_mkldnn_bf16_supported(),
                    reason="checks a CPU without bf16 instructions")
def test_bf16_on_a_cpu_without_bf16_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="this CPU has no bf16 instructions"):
        check_trainer(compose(CODE, "ecct", "quick", ["trainer.precision=bf16-mixed"]))


def test_the_baseline_needs_no_weights() -> None:
    """The cache identifies a baseline by its repr: only weight-free classical decoders may use it."""
    assert not list(BeliefPropagationDecoder(get_code(CODE), iterations=5).parameters())
    assert "iterations=5" in repr(BeliefPropagationDecoder(get_code(CODE), iterations=5))
    assert isinstance(BeliefPropagationDecoder(get_code(CODE)), nn.Module)
