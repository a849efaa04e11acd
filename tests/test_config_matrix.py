"""Every pipeline composes under every profile, and a misspelled pipeline or stage name in a profile is an error."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from eccflow.config import CONF_DIR, compose, decoder_preset
from eccflow.errors import ConfigError

PIPELINES = sorted(p.stem for p in (CONF_DIR / "pipelines").glob("*.yaml"))
PROFILES = sorted(p.stem for p in (CONF_DIR / "profiles").glob("*.yaml"))
CHAIN = "scldpc_dv3_dc6_w3_L20_M50"  # the window-decoder pipelines decode SC-LDPC chains


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("pipeline", PIPELINES)
def test_every_pipeline_composes_under_every_profile(pipeline, profile):
    config = compose(CHAIN if pipeline.startswith("nwd") else "BCH_n31_k16", pipeline, profile)
    assert config["stage_order"] and set(config["stage_order"]) <= set(config["stages"])


@pytest.mark.parametrize("key, message", [("pipelines", "sizes unknown pipelines \\['fectt'\\]"),
                                          ("stages", "sets unknown stages \\['evalute'\\]")])
def test_misspelled_names_in_a_profile_are_errors(tmp_path, key, message):
    bad = {"pipelines": {"fectt": {"trainer": {"max_epochs": 1}}}} if key == "pipelines" else {"stages": {"evalute": {"max_frames": 10}}}
    profile = tmp_path / "typo.yaml"
    profile.write_text(yaml.safe_dump({"extends": "quick", **bad}))
    with pytest.raises(ConfigError, match=f"profile 'typo' {message}"):
        compose("BCH_n31_k16", "ecct", str(profile))


def test_a_pipeline_and_a_profile_may_be_the_users_own_files(tmp_path):
    pipeline = tmp_path / "my_bp.yaml"
    pipeline.write_text(yaml.safe_dump({"decoder": "neural_bp", "stages": ["train", "evaluate"]}))
    profile = tmp_path / "tiny.yaml"
    profile.write_text(yaml.safe_dump({"extends": "quick", "trainer": {"max_epochs": 1}}))
    config = compose("BCH_n15_k7", str(pipeline), str(profile))
    assert (config["pipeline"], config["profile"]) == ("my_bp", "tiny")  # names in MLflow and the cache
    assert config["trainer"]["max_epochs"] == 1 and config["stage_order"] == ["train", "evaluate"]
    with pytest.raises(ConfigError, match="pipeline file .*nope.yaml does not exist"):
        compose("BCH_n15_k7", str(tmp_path / "nope.yaml"))


def test_training_stages_take_their_optimiser_block_from_one_file():
    group = yaml.safe_load((CONF_DIR / "optim" / "adam.yaml").read_text())
    training = [p.stem for p in (CONF_DIR / "stages").glob("*.yaml") if "optim" in yaml.safe_load(p.read_text())]
    assert {"train", "pretrain", "finetune", "qat", "recover"} <= set(training)
    config = compose("BCH_n31_k16", "sap_full", "quick")  # pretrained, sap, recover, evaluate
    for stage in training:
        own = yaml.safe_load((CONF_DIR / "stages" / f"{stage}.yaml").read_text())
        assert not {"warmup", "adam", "weight_decay", "recipe"} & set(own), f"{stage}.yaml repeats the optim group"
    recover = config["stages"]["recover"]
    assert {k: recover[k] for k in ("warmup", "adam", "weight_decay", "recipe", "lr_min")} == \
        {k: group[k] for k in ("warmup", "adam", "weight_decay", "recipe", "lr_min")}
    assert compose("BCH_n31_k16", "neural_bp", "quick", ["stages.train.warmup=0.1"])["stages"]["train"]["warmup"] == 0.1
    with pytest.raises(ConfigError, match="optim"):
        compose("BCH_n31_k16", "neural_bp", "quick", ["stages.train.optim=sgd"])


def test_transformer_sizes_are_picked_by_name_from_one_file():
    sizes = yaml.safe_load((CONF_DIR / "sizes.yaml").read_text())
    for family in ("ecct", "aecct", "fecct"):
        pipeline = "universal" if family == "fecct" else family
        quick, paper = compose("BCH_n31_k16", pipeline, "quick"), compose("BCH_n31_k16", pipeline, "paper")
        assert {k: quick["decoder"][k] for k in ("layers", "d_model")} == sizes["quick"][family]
        assert {k: paper["decoder"][k] for k in ("layers", "d_model")} == sizes["paper"][family]
        own = yaml.safe_load((CONF_DIR / "decoders" / f"{family}.yaml").read_text())
        assert own["size"] == "quick" and not {"layers", "d_model"} & set(own)
    picked = compose("BCH_n31_k16", "ecct", "quick", ["decoder.size=paper", "decoder.layers=10"])["decoder"]
    assert (picked["layers"], picked["d_model"]) == (10, 128)  # a later key wins over the size
    later = compose("BCH_n31_k16", "ecct", "quick", ["decoder.layers=10", "decoder.size=paper"])["decoder"]
    assert later["layers"] == 6  # and a later size over an earlier key
    with pytest.raises(ConfigError, match="unknown decoder.size 'huge'"):
        compose("BCH_n31_k16", "ecct", "quick", ["decoder.size=huge"])
    with pytest.raises(ConfigError, match="not to the neural_bp decoder"):
        compose("BCH_n31_k16", "neural_bp", "quick", ["decoder.size=paper"])


def test_benchmark_models_are_decoder_files_at_a_named_size():
    small = decoder_preset("fecct", "small")
    assert (small["layers"], small["d_model"]) == (2, 32) and small["embedding"] == "type"  # the rest: fecct.yaml
    assert decoder_preset("ecct", "paper") == compose("BCH_n31_k16", "ecct", "paper")["decoder"]
    with pytest.raises(ConfigError, match="unknown decoder.size 'huge'"):
        decoder_preset("aecct", "huge")
