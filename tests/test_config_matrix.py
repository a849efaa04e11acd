"""Every pipeline composes under every profile, and a misspelled pipeline or stage name in a profile is an error."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from eccflow.config import CONF_DIR, compose
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
def test_misspelled_names_in_a_profile_are_errors(tmp_path, monkeypatch, key, message):
    import eccflow.config as config

    conf = tmp_path / "conf"
    for group in ("codes", "decoders", "pipelines", "stages", "profiles"):
        (conf / group).mkdir(parents=True)
        for path in (CONF_DIR / group).glob("*.yaml"):
            (conf / group / path.name).write_text(path.read_text())
    (conf / "defaults.yaml").write_text((CONF_DIR / "defaults.yaml").read_text())
    bad = {"pipelines": {"fectt": {"trainer": {"max_epochs": 1}}}} if key == "pipelines" else {"stages": {"evalute": {"max_frames": 10}}}
    (conf / "profiles" / "typo.yaml").write_text(yaml.safe_dump({"extends": "quick", **bad}))
    monkeypatch.setattr(config, "CONF_DIR", Path(conf))
    with pytest.raises(ConfigError, match=f"profile 'typo' {message}"):
        compose("BCH_n31_k16", "ecct", "typo")
