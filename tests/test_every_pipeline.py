"""Every pipeline in conf/pipelines/ runs end to end on a tiny override set: here, or in the test file named
for it below (which runs it with its own assertions)."""
from __future__ import annotations

from pathlib import Path

import pytest

from conftest import TINY_BACKBONE, shrunk
from eccflow.config import CONF_DIR
from eccflow.pipelines import run_pipeline

PIPELINES = sorted(p.stem for p in (CONF_DIR / "pipelines").glob("*.yaml"))
ELSEWHERE = {"neural_bp": "test_pipeline.py", "ewgnn": "test_ewgnn.py", "nwd": "test_nwd_pipeline.py",
             "sbnd": "test_sbnd.py", "ecct": "test_transformer_pipelines.py", "aecct": "test_transformer_pipelines.py",
             "universal": "test_transformer_pipelines.py", "fecct": "test_transformer_pipelines.py",
             "fecct_prune": "test_transformer_pipelines.py", "sap": "test_transformer_pipelines.py",
             "sap_arms": "test_transformer_pipelines.py"}
EVALUATE = ["stages.evaluate.osd_max_k=0"]
NO_EVALUATE = {"nwd_schedule", "sap_library"}  # pipelines without an evaluate stage
SAP_TINY = ["stages.sap.calibration_frames=64", "stages.sap.calibration_ebn0_db=[5.0]"]
HERE = {  # pipeline -> (code, overrides beyond the shrunk set)
    "ewgnn_ldpc": ("BCH_n15_k7", [*EVALUATE, "stages.evaluate:CCSDS_n128_k64.max_frames=200",
                                  "stages.evaluate:peg_n512_dv3_dc6.max_frames=200",
                                  "stages.evaluate:peg_n512_dv3_dc6.batch_size=200"]),
    "nwd_schedule": ("scldpc_dv3_dc6_w3_L6_M10", ["decoder.window=3", "decoder.iterations=3",
                                                 "data.train_ebn0_db=[2.0,3.0]", "stages.nwd.frames_per_snr=64",
                                                 "stages.nwd.max_candidates_per_snr=4000",
                                                 "stages.nwd:damped.frames_per_snr=64", "stages.nwd:damped.passes=1",
                                                 "stages.schedule.max_frames=400"]),
    "sap_full": ("BCH_n15_k7", [*SAP_TINY, *EVALUATE]),
    "sap_library": ("BCH_n15_k7", SAP_TINY),
}


def test_every_pipeline_has_an_end_to_end_run():
    assert sorted({*ELSEWHERE, *HERE}) == PIPELINES, "a pipeline without an end-to-end test"
    for pipeline, test_file in ELSEWHERE.items():
        text = (Path(__file__).parent / test_file).read_text()
        assert f'"{pipeline}"' in text and "run_pipeline(" in text, f"{test_file} does not run {pipeline}"


@pytest.mark.slow
@pytest.mark.parametrize("pipeline", sorted(HERE))
def test_the_remaining_pipelines_run_on_tiny_settings(pipeline, isolated_mlflow, tiny_backbone, tmp_path):
    code, extra = HERE[pipeline]
    overrides = shrunk(*extra, evaluate=pipeline not in NO_EVALUATE)
    if pipeline.startswith("sap"):
        overrides += [*TINY_BACKBONE, f"stages.pretrained.weights={tiny_backbone}",
                      f"stages.sap.library_dir={tmp_path / 'sap'}"]
    summary = run_pipeline(code, pipeline, "quick", overrides=overrides, log=lambda _: None)
    assert list(summary["stages"]) == summary.get("stage_order", list(summary["stages"]))
    assert all(not stage["cached"] for stage in summary["stages"].values())
    for stage in summary["stages"].values():
        for path in stage["outputs"].values():
            assert not isinstance(path, str) or not path.startswith("/") or Path(path).exists()
