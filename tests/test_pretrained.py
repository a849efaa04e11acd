"""The shipped universal FECCT backbone: verified on load, decodes any binary code zero-shot, and every damaged,
truncated or foreign weights file is a clear error naming the file."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from conftest import TINY_BACKBONE
from eccflow.cli import main
from eccflow.codes import get_code
from eccflow.config import compose
from eccflow.data import fixed_stream
from eccflow.lit.families import build_network
from eccflow.errors import EccflowError
from eccflow.lit import save_decoder
from eccflow.pipelines import run_pipeline
from eccflow.config import file_sha256
from eccflow.pretrained import FORMAT_VERSION, SHIPPED, export_backbone, load_backbone, shipped_manifest


def test_the_shipped_backbone_verifies_and_records_how_it_was_trained():
    backbone = load_backbone()
    manifest = backbone.manifest
    assert manifest["format_version"] == FORMAT_VERSION and manifest["sha256"] == file_sha256(backbone.path)
    assert backbone.path.stat().st_size < 4 * 2**20  # a small file in the package data
    assert manifest["net_config"]["family"] == "fecct" and len(manifest["commit"]) == 40
    training = manifest["training"]
    assert training["steps"] > 0 and training["words"] == training["steps"] * training["batch_size"]
    assert len(training["heldout"]) >= 8 and not set(training["heldout"]) & set(training["mixture"])
    # the pipelines' default FECCT architecture is the shipped one
    decoder = compose("POLAR_n64_k48", "fecct", "quick")["decoder"]
    assert all(decoder[k] == v for k, v in backbone.net_config.items() if k != "impl")


@pytest.mark.parametrize("name", ["BCH_n63_k36", "polarpw_n256_k128", "nr5g_bg1_z2"])
def test_the_backbone_decodes_registered_and_constructed_codes_zero_shot(name):
    code = get_code(name)
    net = load_backbone().decoder(code)
    batch = fixed_stream(code, 5.0, 64, 64, "zero", seed=1)[0]
    with torch.no_grad():
        out = net(batch["llr"])
    assert out.bits.shape == (64, code.n)
    assert (out.bits != batch["bits"]).float().mean() < (batch["llr"] < 0).float().mean()  # fewer errors than hard decision


def _copy(tmp_path: Path) -> Path:
    """A copy of the shipped backbone (manifest path) to damage."""
    manifest = shipped_manifest()
    for path in (manifest, manifest.with_suffix(".ckpt")):
        shutil.copyfile(path, tmp_path / path.name)
    return tmp_path / manifest.name


def _rewrite(manifest: Path, **changes) -> None:
    data = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**data, **changes}))


def test_a_corrupted_weights_file_is_a_clear_error(tmp_path):
    manifest = _copy(tmp_path)
    weights = manifest.with_suffix(".ckpt")
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(EccflowError, match=f"{weights}.* are corrupted: SHA-256"):
        load_backbone(manifest)


def test_a_truncated_weights_file_is_a_clear_error(tmp_path):
    manifest = _copy(tmp_path)
    weights = manifest.with_suffix(".ckpt")
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(EccflowError, match=f"{weights}.* are truncated or altered: 1000 bytes"):
        load_backbone(manifest)


def test_a_missing_or_damaged_manifest_is_a_clear_error(tmp_path):
    with pytest.raises(EccflowError, match="no backbone manifest .*nope.json"):
        load_backbone(tmp_path / "nope.json")
    manifest = _copy(tmp_path)
    manifest.write_text(manifest.read_text()[:40])
    with pytest.raises(EccflowError, match=f"manifest {manifest} is damaged"):
        load_backbone(manifest)


def test_a_manifest_of_another_format_version_is_a_clear_error(tmp_path):
    manifest = _copy(tmp_path)
    _rewrite(manifest, format_version=FORMAT_VERSION + 1)
    with pytest.raises(EccflowError, match=f"{manifest} is format version {FORMAT_VERSION + 1}"):
        load_backbone(manifest)


def test_weights_of_another_backbone_version_are_a_clear_error(tmp_path):
    manifest = _copy(tmp_path)
    weights = manifest.with_suffix(".ckpt")
    # another architecture's weights under the shipped manifest (its checksum updated): the network differs
    config = compose("BCH_n15_k7", "fecct", "quick", TINY_BACKBONE)["decoder"]
    save_decoder(build_network(get_code("BCH_n15_k7"), config), config, "BCH_n15_k7", weights)
    _rewrite(manifest, sha256=file_sha256(weights), bytes=weights.stat().st_size)
    with pytest.raises(EccflowError, match=f"{weights} were trained as another backbone version"):
        load_backbone(manifest)
    # same config, different tensors (a later release renamed a layer): caught when the network is built
    state = torch.load(shipped_manifest().with_suffix(".ckpt"), weights_only=True)
    state["state_dict"] = {k.replace("blocks.0.", "layers.0."): v for k, v in state["state_dict"].items()}
    torch.save(state, weights)
    _rewrite(manifest, sha256=file_sha256(weights), bytes=weights.stat().st_size)
    with pytest.raises(EccflowError, match=f"{weights} holds weights of another backbone version"):
        load_backbone(manifest).decoder(get_code("BCH_n15_k7"))


def test_eval_decodes_with_the_shipped_backbone_beside_the_baselines(tmp_path, capsys):
    out = tmp_path / "fecct.json"
    assert main(["eval", "--code", "BCH_n31_k16", "--decoder", "fecct", "--decoder", "bp:5", "--ebn0", "5",
                 "--max-frames", "400", "--batch-size", "400", "--threads", "1", "--quiet", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert "FECCT universal_fecct zero-shot" in capsys.readouterr().out and len(result["paired"]) == 1


def test_eval_rejects_a_code_or_backbone_it_cannot_take(tmp_path, capsys):
    matrix = tmp_path / "ternary.txt"
    matrix.write_text("1 1 0 2\n0 1 1 1\n")
    assert main(["eval", "--code", str(matrix), "--decoder", "fecct", "--ebn0", "5"]) == 2
    assert "non-binary entries" in capsys.readouterr().err
    manifest = _copy(tmp_path)
    manifest.with_suffix(".ckpt").write_bytes(b"\0" * 10)
    assert main(["eval", "--code", "BCH_n15_k7", "--decoder", f"fecct:{manifest}", "--ebn0", "5"]) == 2
    assert f"{manifest.with_suffix('.ckpt')} are truncated" in capsys.readouterr().err


def test_export_then_show_round_trip(tmp_path, capsys, tiny_backbone):
    assert main(["backbone", "show", tiny_backbone]) == 0
    assert json.loads(capsys.readouterr().out)["name"] == "tiny"
    exported = export_backbone(load_backbone(tiny_backbone).path, tmp_path, "again", {"steps": 1}, commit="x")
    assert exported.manifest["net_config"] == load_backbone(tiny_backbone).net_config
    assert main(["backbone", "show", str(tmp_path / "missing.json")]) == 2


@pytest.mark.usefixtures("isolated_mlflow")
def test_a_pipeline_whose_decoder_is_not_the_backbone_fails_before_any_work(tiny_backbone):
    from mlflow import MlflowClient

    with pytest.raises(EccflowError, match=r"decoder config differs from backbone tiny .*decoder.layers: 2 vs 1"):
        run_pipeline("BCH_n15_k7", "fecct", overrides=["decoder.layers=2", "decoder.d_model=32",
                                                       f"stages.pretrained.weights={tiny_backbone}"], log=lambda _: None)
    assert not MlflowClient().search_runs([e.experiment_id for e in MlflowClient().search_experiments()])
    assert SHIPPED == "universal_fecct"


def test_a_budgeted_fine_tune_plans_its_steps_and_stops_at_the_budget(tmp_path, tiny_backbone):
    from eccflow.train import fit

    config = compose("BCH_n15_k7", "fecct", "quick", [*TINY_BACKBONE, "stages.finetune.budget_s=8", "data.batch_size=32",
                                                      "stages.finetune.max_epochs=2", "data.val_frames=200",
                                                      "data.val_ebn0_db=[5.0]"])
    _, metrics = fit(get_code("BCH_n15_k7"), config, tmp_path, stage="finetune", progress=False,
                     init_checkpoint=load_backbone(tiny_backbone).path)
    plan = json.loads((tmp_path / "budget_plan.json").read_text())
    assert metrics["budget_steps"] == plan["steps"] >= 10 and 0 < metrics["steps"] <= plan["steps"], plan
    assert metrics["budget_epochs"] == plan["epochs"] in (1.0, 2.0) and plan["val_pass_s"] > 0
    assert metrics["train_seconds"] < 8 + 5  # Lightning's max_time stops it at what calibration left of the budget
    with pytest.raises(EccflowError, match="budget_s must be a positive number of seconds"):
        fit(get_code("BCH_n15_k7"), compose("BCH_n15_k7", "fecct", "quick", [*TINY_BACKBONE, "stages.finetune.budget_s=-1"]),
            tmp_path / "bad", stage="finetune", progress=False)


def test_a_budget_gives_long_codes_fewer_validation_passes_and_keeps_room_for_the_last():
    from eccflow.train import OVERHEAD_SHARE, budget_schedule

    # step and validation-pass times of the order measured on one thread for the shipped FECCT (N=4, d=64) on
    # POLAR(64,48) and on PEG(256,128) (benchmarks/results/universal/finetune_budget.json)
    short = budget_schedule("finetune", 300, 15, step_s=0.29, val_pass_s=2.7, build_s=0.3, epochs=4)
    long = budget_schedule("finetune", 300, 30, step_s=5.9, val_pass_s=54, build_s=1.0, epochs=4)
    assert short["epochs"] == 4 and long["epochs"] == 1
    for plan, (spent, build) in ((short, (15, 0.3)), (long, (30, 1.0))):
        planned = spent + build + plan["steps"] * plan["step_s"] + plan["epochs"] * plan["val_pass_s"]
        assert planned <= (1 - OVERHEAD_SHARE) * 300 + 1e-9
        assert plan["max_time_s"] + plan["val_pass_s"] + spent + build <= 300  # the pass after a stop still fits
    with pytest.raises(EccflowError, match=r"budget_s=60 s leaves no time to train: .* one validation pass takes 54 s"):
        budget_schedule("finetune", 60, 10, step_s=5.9, val_pass_s=54, build_s=1.0, epochs=4)


def test_a_code_longer_than_the_backbone_takes_is_a_clear_error(monkeypatch, capsys):
    import eccflow.decoders.transformer as transformer

    monkeypatch.setattr(transformer, "MAX_TOKENS", 20)  # BCH(15,7) has 15 + 8 tokens
    assert main(["eval", "--code", "BCH_n15_k7", "--decoder", "fecct", "--ebn0", "5"]) == 2
    assert "code BCH_n15_k7 has 23 tokens (n + m); the transformer decoders" in capsys.readouterr().err
