"""The large-batch recipe: a learning rate scaled with the batch, a linear warm-up before the cosine schedule, and
clear errors for a batch or learning rate the recipe does not cover."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
from lightning.pytorch.callbacks import Callback

from eccflow.codes import get_code
from eccflow.config import compose
from eccflow.errors import ConfigError
from eccflow.train import fit, optimizer_settings
from conftest import shrunk

CODE = "BCH_n15_k7"
TINY = shrunk("trainer.max_epochs=2", "data.batches_per_epoch=6", "data.val_frames=100", "data.val_ebn0_db=[4.0]",
              "decoder.layers=1", "decoder.d_model=16", "decoder.heads=4", "stages.train.lr=0.004",
              "stages.train.lr_min=0.0001")
RECIPE = "stages.train.recipe={lr: 0.001, batch: 128, max_batch: 8192, power: 0.5}"


class LearningRates(Callback):
    def __init__(self) -> None:
        self.rates: list[float] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.rates.append(trainer.optimizers[0].param_groups[0]["lr"])


def _rates(tmp_path: Path, *overrides: str) -> list[float]:
    recorder = LearningRates()
    fit(get_code(CODE), compose(CODE, "ecct", "quick", [*TINY, *overrides]), tmp_path, callbacks=[recorder], progress=False)
    return recorder.rates


def _cosine(step: int, steps: int, lr: float = 0.004, lr_min: float = 0.0001) -> float:
    return lr_min + (lr - lr_min) * (1 + math.cos(math.pi * step / steps)) / 2


def test_without_warmup_the_schedule_is_the_plain_cosine(tmp_path: Path) -> None:
    assert _rates(tmp_path) == pytest.approx([_cosine(i, 12) for i in range(12)], rel=1e-9)


def test_warmup_rises_linearly_then_follows_the_cosine(tmp_path: Path) -> None:
    rates = _rates(tmp_path, "stages.train.warmup=0.25")  # 3 of 12 steps
    assert rates[:3] == pytest.approx([0.004 * (1 / 3 + (2 / 3) * i / 3) for i in range(3)], rel=1e-9)
    assert rates[3:] == pytest.approx([_cosine(i, 9) for i in range(9)], rel=1e-9)


@pytest.mark.parametrize("batch, power, expected", [(128, 0.5, 1e-3), (512, 0.5, 2e-3), (8192, 0.5, 8e-3),
                                                    (512, 1.0, 4e-3), (2048, 0.0, 1e-3)])
def test_the_recipe_scales_the_learning_rate_with_the_batch(batch: int, power: float, expected: float) -> None:
    recipe = f"stages.train.recipe={{lr: 0.001, batch: 128, max_batch: 8192, power: {power}}}"
    config = compose(CODE, "ecct", "quick", [f"data.batch_size={batch}", "stages.train.lr=null", recipe])
    assert optimizer_settings(config, "train")["lr"] == pytest.approx(expected)


@pytest.mark.parametrize("overrides, message", [
    (["data.batch_size=16384", "stages.train.lr=null", RECIPE], "data.batch_size=16384 does not fit the large-batch recipe"),
    (["data.batch_size=64", "stages.train.lr=null", RECIPE], "data.batch_size=64 does not fit the large-batch recipe"),
    (["stages.train.lr=0.002", RECIPE], "stages.train.lr=0.002 and stages.train.recipe both set the learning rate"),
    (["stages.train.lr=null"], "stages.train.lr is null and no stages.train.recipe sets it"),
    (["stages.train.lr=null", "stages.train.recipe={lr: 0.001, batch: 128}"], "recipe must map lr, batch, max_batch and power"),
    (["stages.train.lr=null", "stages.train.recipe={lr: -1, batch: 128, max_batch: 8192, power: 0.5}"], "recipe needs lr > 0"),
    (["stages.train.warmup=1.0"], r"stages.train.warmup must be a fraction of the steps in \[0, 1\)"),
    (["stages.train.warmup=true"], r"stages.train.warmup must be a number"),
])
def test_a_batch_or_learning_rate_outside_the_recipe_is_a_clear_error(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        optimizer_settings(compose(CODE, "ecct", "quick", overrides), "train")


def test_the_papers_exact_recipe_is_a_profile_of_its_own() -> None:
    exact = compose("BCH_n31_k16", "ecct", "paper_exact")
    assert (exact["data"]["batch_size"], exact["data"]["batches_per_epoch"], exact["trainer"]["max_epochs"]) == (128, 1000, 1000)
    assert (exact["stages"]["train"]["lr"], exact["stages"]["train"]["lr_min"], exact["stages"]["train"]["recipe"]) == (1e-4, 5e-7, None)
    assert optimizer_settings(exact, "train")["lr"] == 1e-4
    paper, exact_nwd = compose("BCH_n31_k16", "nwd", "paper"), compose("BCH_n31_k16", "nwd", "paper_exact")
    assert paper["stages"] == exact_nwd["stages"]  # everything but the transformer recipe comes from the paper profile


def test_a_profile_that_extends_itself_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import eccflow.config as config_module

    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "a.yaml").write_text("extends: b\n")
    (tmp_path / "profiles" / "b.yaml").write_text("extends: a\n")
    monkeypatch.setattr(config_module, "CONF_DIR", tmp_path)
    with pytest.raises(ConfigError, match="profile 'b' extends 'a', which extends it back"):
        config_module.read_profile("a")


def test_every_pipeline_composes_under_every_profile_with_a_learning_rate() -> None:
    from eccflow.config import CONF_DIR

    profiles = sorted(p.stem for p in (CONF_DIR / "profiles").glob("*.yaml"))
    assert {"quick", "paper", "paper_exact"} <= set(profiles)
    for pipeline in sorted(p.stem for p in (CONF_DIR / "pipelines").glob("*.yaml")):
        code = "scldpc_dv3_dc6_w3_L20_M50" if pipeline.startswith("nwd") else "POLAR_n64_k32"
        for profile in profiles:
            config = compose(code, pipeline, profile)
            for stage in (s for s in config["stage_order"] if "adam" in config["stages"][s]):
                assert optimizer_settings(config, stage)["lr"] > 0, (pipeline, profile, stage)
