"""The NWD pipeline end to end on a tiny chain: every stage runs, is tracked, and bad settings are clear errors."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from eccflow.config import compose
from eccflow.errors import ConfigError
from eccflow.pipelines import run_pipeline
from conftest import shrunk

CODE = "scldpc_dv3_dc6_w3_L6_M10"
TINY = shrunk("trainer.max_epochs=2", "data.val_frames=400", "data.train_ebn0_db=[2.0,3.0]", "decoder.window=3",
              "decoder.iterations=3", "stages.nwd.frames_per_snr=64", "stages.nwd.max_candidates_per_snr=4000",
              "stages.nwd:all.frames_per_snr=64", "stages.nwd:damped.frames_per_snr=64", "stages.schedule.max_frames=400",
              "stages.boosting.max_frames=2000", "stages.boosting.samples=200", "stages.ep_train.max_epochs=2",
              "stages.evaluate_chain.max_frames=400", "stages.evaluate_chain.ebn0_db=[3.0,4.0]", evaluate=False)


pytestmark = pytest.mark.usefixtures("isolated_mlflow")  # tests/conftest.py


def test_quick_profile_sizes_the_nwd_pipeline():
    cfg = compose("scldpc_dv3_dc6_w3_L20_M50", "nwd", "quick")
    assert cfg["stage_order"] == ["nwd", "nwd:all", "nwd:damped", "schedule", "boosting", "ep_train", "evaluate_chain"]
    assert cfg["stages"]["nwd:all"]["scope"] == "all" and cfg["stages"]["nwd:damped"]["damping"] is True
    assert cfg["data"]["train_ebn0_db"] == [3.0, 3.5, 4.0, 4.5]  # eccflow/conf/codes/sc-ldpc.yaml


@pytest.mark.slow
def test_nwd_pipeline_runs_every_stage(tmp_path: Path):
    summary = run_pipeline(CODE, "nwd", "quick", overrides=TINY, log=lambda _: None)
    stages = summary["stages"]
    assert all(not s["cached"] for s in stages.values())
    assert stages["nwd"]["metrics"]["stored_weights"] <= stages["nwd:all"]["metrics"]["stored_weights"]
    plan = json.loads(Path(stages["schedule"]["outputs"]["schedule"]).read_text())
    assert plan["total_updates"] == 9 and len(plan["curve"]) >= 2
    report = Path(stages["evaluate_chain"]["outputs"]["report"]).read_text()
    for name in ("| WD |", "| WD-BP |", "NWD (target)", "NWD (all)", "adaptive NWD (ucn)", "adaptive NWD (genie)"):
        assert name in report
    assert (Path(stages["evaluate_chain"]["outputs"]["report"]).parent / "chain_fer_ep.png").is_file()
    results = json.loads((Path(stages["evaluate_chain"]["outputs"]["report"]).parent / "chain_results.json").read_text())
    pairs = {(d["decoder"], d["baseline"]) for d in results["paired"]}
    assert ("NWD (target)", "WD") in pairs and ("adaptive NWD (ucn)", "WD-BP") in pairs  # same chains, paired
    assert len({p["frames"] for points in results["decoders"].values() for p in points[:1]}) == 1
    assert "fer_verdict_nwd__target_vs_wd_" + f"{results['paired'][0]['ebn0_db']:g}dB" in stages["evaluate_chain"]["metrics"]
    again = run_pipeline(CODE, "nwd", "quick", overrides=TINY, log=lambda _: None)
    assert all(s["cached"] for s in again["stages"].values())


def test_init_from_a_missing_stage_is_a_clear_error():
    overrides = [*TINY, "stages.nwd.init=nwd:damped"]
    with pytest.raises(ConfigError, match="not an output of an earlier stage"):
        run_pipeline(CODE, "nwd", "quick", overrides=overrides, log=lambda _: None)
