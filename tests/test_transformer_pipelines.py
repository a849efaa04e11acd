"""ECCT and FECCT pipelines end to end on tiny budgets: stages, registry, code-independent pretraining cache."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlflow import MlflowClient

from conftest import TINY_BACKBONE, shrunk
from eccflow.config import compose
from eccflow.errors import ConfigError
from eccflow.pipelines import run_pipeline
from eccflow.track import load_registered_decoder
from eccflow.lit.base import normalized_validation_error
from eccflow.train import optimizer_settings

TINY = shrunk("data.batches_per_epoch=3", "stages.evaluate.max_frames=600", "stages.evaluate.batch_size=600")
ZEROSHOT_TINY = ["stages.evaluate:zeroshot.max_frames=600", "stages.evaluate:zeroshot.batch_size=600",
                 "stages.evaluate:zeroshot.ebn0_db=[5.0]"]


NO_BUDGET = "stages.finetune.budget_s=null"  # the quick profile fine-tunes for 5 minutes; tests by TINY's steps


def backbone(manifest: str) -> list[str]:
    """Overrides that start a FECCT pipeline from the tiny exported backbone (tests/conftest.py)."""
    return [*TINY_BACKBONE, f"stages.pretrained.weights={manifest}"]


pytestmark = pytest.mark.usefixtures("isolated_mlflow")  # tests/conftest.py


def _quiet(_: str) -> None:
    pass


def test_profiles_size_the_transformer_pipelines():
    quick, paper = compose("BCH_n31_k16", "ecct", "quick"), compose("BCH_n31_k16", "ecct", "paper")
    assert (quick["decoder"]["layers"], quick["decoder"]["d_model"]) == (2, 32)
    assert (paper["decoder"]["layers"], paper["decoder"]["d_model"], paper["trainer"]["max_epochs"]) == (6, 128, 1000)
    assert optimizer_settings(paper, "train")["lr"] == 1e-4 and paper["data"]["batches_per_epoch"] == 1000
    assert optimizer_settings(compose("BCH_n31_k16", "ecct", "paper", ["data.batch_size=2048"]), "train")["lr"] == \
        pytest.approx(1e-4 * 16 ** 0.33)  # the large-batch recipe
    fecct = compose("POLAR_n64_k48", "fecct", "quick")
    assert fecct["stage_order"] == ["pretrained", "evaluate:zeroshot", "finetune", "evaluate"]
    assert fecct["stages"]["evaluate:zeroshot"]["register"] is False
    assert fecct["stages"]["pretrained"]["weights"] == "universal_fecct" and fecct["stages"]["finetune"]["budget_s"] == 300


def test_ecct_pipeline_trains_evaluates_and_registers():
    summary = run_pipeline("BCH_n15_k7", "ecct", overrides=TINY, log=_quiet)
    metrics = summary["stages"]["evaluate"]["metrics"]
    assert {"neg_ln_ber_5dB", "bp5_neg_ln_ber_5dB", "vs_bp50_ber_verdict_5dB", "decoder_flops", "decoder_params"} <= set(metrics)
    registered = load_registered_decoder("ecct", "BCH_n15_k7")
    assert type(registered).__name__ == "TransformerDecoder" and registered.code.name == "BCH_n15_k7"


def test_universal_pretraining_validates_heldout_codes_zero_shot():
    universal = compose("BCH_n31_k16", "universal", "quick")
    mixture, heldout = universal["stages"]["pretrain"]["codes"], universal["stages"]["pretrain"]["heldout"]
    assert universal["stage_order"] == ["pretrain"] and len(heldout) >= 8 and not set(mixture) & set(heldout)
    tiny = shrunk("data.batches_per_epoch=3", evaluate=False)  # the pipeline has no evaluate stage
    overrides = [*tiny, *TINY_BACKBONE, "stages.pretrain.codes=[BCH_n15_k7, POLAR_n16_k8]",
                 "stages.pretrain.heldout=[POLAR_n32_k16, bch_m4_t1]"]
    summary = run_pipeline("BCH_n31_k16", "universal", overrides=overrides, log=_quiet)
    run = MlflowClient().search_runs([MlflowClient().get_experiment_by_name("eccflow").experiment_id],
                                     "tags.stage = 'pretrain'")[0]
    assert {"val/nve", "val/nve_heldout", "val/neg_ln_ber_POLAR_n32_k16_5dB"} <= set(run.data.metrics)
    # a construction's spec name (bch_m4_t1) counts as held out under its code name (BCH_m4_t1)
    metrics = run.data.metrics
    pairs = [(metrics[f"val/ber_{c}_5dB"], metrics[f"val/baseline_ber_{c}_5dB"]) for c in ("POLAR_n32_k16", "BCH_m4_t1")]
    assert metrics["val/nve_heldout"] == pytest.approx(normalized_validation_error(pairs))
    assert summary["stages"]["pretrain"]["outputs"]["checkpoint"]
    with pytest.raises(ConfigError, match="never enter the mixture"):
        run_pipeline("BCH_n31_k16", "universal", log=_quiet,
                     overrides=[*tiny, "stages.pretrain.codes=[BCH_n15_k7]", "stages.pretrain.heldout=[BCH_n15_k7]"])


@pytest.mark.slow
def test_fecct_pipeline_fine_tunes_the_backbone_for_each_target_code(tiny_backbone):
    overrides = [*TINY, *ZEROSHOT_TINY, *backbone(tiny_backbone), NO_BUDGET]
    first = run_pipeline("POLAR_n32_k16", "fecct", overrides=overrides, log=_quiet)
    assert [s["cached"] for s in first["stages"].values()] == [False, False, False, False]
    second = run_pipeline("BCH_n31_k16", "fecct", overrides=overrides, log=_quiet)
    # the backbone stage is shared; everything after it depends on the target code
    assert [s["cached"] for s in second["stages"].values()] == [True, False, False, False]
    assert second["stages"]["pretrained"]["outputs"] == first["stages"]["pretrained"]["outputs"]
    client = MlflowClient()
    names = {m.name for m in client.search_registered_models()}
    assert {"eccflow-fecct-BCH_n31_k16", "eccflow-fecct-POLAR_n32_k16", "eccflow-fecct-tiny"} <= names
    # the backbone is registered once (first use), tagged with its checksum
    versions = client.search_model_versions("name = 'eccflow-fecct-tiny'")
    assert len(versions) == 1 and len(versions[0].tags["sha256"]) == 64


@pytest.mark.slow
def test_prune_pipeline_shrinks_the_backbone_to_the_budget(tiny_backbone):
    overrides = [*TINY, *backbone(tiny_backbone), NO_BUDGET, "stages.prune.calibration_frames=64",
                 "stages.prune.calibration_ebn0_db=[5.0]"]
    summary = run_pipeline("BCH_n31_k16", "fecct_prune", overrides=overrides, log=_quiet)
    prune = summary["stages"]["prune"]["metrics"]
    assert 0.55 < prune["flops_ratio"] <= 0.6 and prune["params_pruned"] < prune["params_full"]
    recovered = summary["stages"]["finetune:recover"]["metrics"]
    assert recovered["decoder_flops"] == pytest.approx(prune["flops_pruned"])
    assert summary["stages"]["evaluate"]["metrics"]["decoder_flops"] == pytest.approx(prune["flops_pruned"])


@pytest.mark.slow
def test_sap_pipeline_derives_then_reuses_masks(tmp_path, tiny_backbone):
    overrides = [*TINY, *backbone(tiny_backbone), "stages.sap.calibration_frames=64",
                 "stages.sap.calibration_ebn0_db=[5.0]", f"stages.sap.library_dir={tmp_path / 'sap'}", "stages.sap.tau=0.5",
                 "stages.sap.temperature=5.0"]
    first = run_pipeline("BCH_n31_k16", "sap", overrides=overrides, log=_quiet)["stages"]["sap"]["metrics"]
    assert first["reused"] == 0.0 and first["library_size"] == 1.0
    # the same target again (cache off): its own entry is retrieved, S = 1, and far faster than deriving
    again = run_pipeline("BCH_n31_k16", "sap", overrides=[*overrides, "cache.enabled=false"], log=_quiet)["stages"]["sap"]
    assert again["metrics"]["reused"] == 1.0 and again["metrics"]["similarity"] == pytest.approx(1.0)
    assert again["metrics"]["retrieval_seconds"] < first["derivation_seconds"]
    assert again["metrics"]["flops_pruned"] == pytest.approx(first["flops_pruned"])


@pytest.mark.slow
def test_sap_lora_recovery_merges_into_the_pruned_backbone(tmp_path, tiny_backbone):
    overrides = [*TINY, *backbone(tiny_backbone), "stages.sap.calibration_frames=64",
                 "stages.sap.calibration_ebn0_db=[5.0]", f"stages.sap.library_dir={tmp_path / 'sap'}", "stages.recover.rank=2"]
    summary = run_pipeline("BCH_n15_k7", "sap", overrides=overrides, log=_quiet)
    recover = summary["stages"]["recover"]
    assert 0 < recover["metrics"]["lora_fraction"] < 0.2 and Path(recover["outputs"]["adapters"]).is_file()
    flops = summary["stages"]["sap"]["metrics"]["flops_pruned"]
    assert summary["stages"]["evaluate"]["metrics"]["decoder_flops"] == pytest.approx(flops)  # merged: no adapter cost


@pytest.mark.slow
def test_aecct_pipeline_trains_full_precision_then_ternary():
    overrides = [*TINY, "stages.evaluate:fp.max_frames=600", "stages.evaluate:fp.batch_size=600",
                 "stages.evaluate:fp.ebn0_db=[5.0]", "stages.qat.max_epochs=1"]
    summary = run_pipeline("BCH_n15_k7", "aecct", overrides=overrides, log=_quiet)
    assert list(summary["stages"]) == ["train", "evaluate:fp", "qat", "evaluate"]
    qat = summary["stages"]["qat"]["metrics"]
    assert 0.3 < qat["compression"] < 0.94 and 0 < qat["sparsity_qkv"] < 1
    registered = load_registered_decoder("aecct", "BCH_n15_k7")
    assert registered.config.quantization == "aap"


def test_a_branch_must_start_after_an_earlier_stage():
    arms = compose("POLAR_n64_k48", "sap_arms", "quick")
    assert arms["stages"]["sap"]["after"] == "pretrained" and arms["stages"]["recover:sap_lora"]["after"] == "sap"
    with pytest.raises(ConfigError, match="stages.prune.after must name a stage listed before 'prune'"):
        compose("POLAR_n64_k48", "sap_arms", "quick", ["stages.prune.after=evaluate:sap_lora"])


@pytest.mark.slow
def test_sap_arms_compare_four_recoveries_in_one_parent_run(tmp_path, tiny_backbone, monkeypatch):
    evals = ("evaluate:unpruned", "evaluate:dedicated", "evaluate:sap_full", "evaluate:sap_lora")
    overrides = [*TINY, *backbone(tiny_backbone), f"stages.sap.library_dir={tmp_path / 'sap'}",
                 *(f"stages.{s}.calibration_{k}" for s in ("sap", "prune") for k in ("frames=64", "ebn0_db=[5.0]")),
                 *(f"stages.{e}.{k}" for e in evals for k in ("max_frames=600", "batch_size=600", "ebn0_db=[5.0]"))]
    summary = run_pipeline("BCH_n31_k16", "sap_arms", overrides=overrides, log=_quiet)
    stages = summary["stages"]
    # each branch starts from the pretrained backbone; LoRA arms carry adapters, the full arm none
    assert stages["prune"]["outputs"]["teacher"] == stages["pretrained"]["outputs"]["checkpoint"]
    assert stages["sap"]["outputs"]["teacher"] == stages["pretrained"]["outputs"]["checkpoint"]
    assert "adapters" in stages["recover:sap_lora"]["outputs"] and "adapters" not in stages["recover:sap_full"]["outputs"]
    flops = [stages[e]["metrics"]["decoder_flops"] for e in evals]
    assert flops[1] == pytest.approx(flops[2]) == pytest.approx(flops[3]) and flops[1] < 0.61 * flops[0]
    client = MlflowClient()
    experiments = [e.experiment_id for e in client.search_experiments()]
    children = client.search_runs(experiments, f"tags.mlflow.parentRunId = '{summary['parent_run_id']}'")
    assert set(evals) <= {run.info.run_name for run in children}  # the four arms side by side in one parent run
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import sap_arms  # the benchmark's table from this summary (frame errors and verdicts of every arm)

    (tmp_path / "target_BCH_n31_k16.json").write_text(json.dumps(sap_arms.summarize("BCH_n31_k16", summary)))
    table = sap_arms.report(tmp_path)
    assert all(f"| {arm} | not run | " in table for arm in sap_arms.ARMS if arm not in ("random mask + LoRA", "mismatched mask + LoRA"))
    assert "| osd order 2 | not run | " in table and "| BCH_n31_k16 | 5 | " in table  # SAP vs dedicated at 5 dB


@pytest.mark.parametrize("profile", ["quick", "paper"])
def test_compression_pipelines_share_the_shipped_backbone(profile):
    from eccflow.pipelines.runner import _load_stages, stage_key

    _load_stages()  # registers pretrained as code-independent
    keys = {p: stage_key("pretrained", compose("POLAR_n64_k48", p, profile), {})
            for p in ("fecct", "fecct_prune", "sap", "sap_full", "sap_library", "sap_arms")}
    assert len(set(keys.values())) == 1, keys
