"""MLflow tracking: store location, metric names, config params, parent/stage runs, registry, server, UI.

Every test runs against its own SQLite store under ``tmp_path`` (a copy of one migrated template, since
creating MLflow's tables costs about 8 s); the slow tests start a real ``mlflow server``.
"""
from __future__ import annotations

import json
import re
import shutil
import urllib.parse
import urllib.request
from pathlib import Path

import mlflow
import mlflow.pyfunc
import numpy as np
import pytest
import torch
import yaml
from conftest_mlflow import MlflowServer
from mlflow import MlflowClient
from torch import nn

from eccflow.errors import ConfigError
from eccflow.eval.montecarlo import PointResult
from eccflow.track import (
    NEG_LN_BER_CAP,
    configure_mlflow,
    default_tracking_uri,
    flatten_config,
    get_or_create_experiment,
    git_commit,
    load_registered_decoder,
    log_config,
    pipeline_run,
    point_metrics,
    register_checkpoint,
    stage_run,
    standard_tags,
)

CHROMIUM = Path("/usr/bin/chromium")


LOADER = "eccflow.lit:load_decoder"  # eccflow's own loader: the only kind a registered model may name
CODE_N = 63


def _checkpoint(directory: Path, name: str) -> tuple[Path, nn.Module]:
    """A neural BP checkpoint of BCH(63,45) with random weights: enough to tell two checkpoints apart."""
    from eccflow.codes import get_code
    from eccflow.decoders.neural_bp import NeuralBPDecoder
    from eccflow.lit import save_decoder

    config = {"family": "neural_bp", "iterations": 2, "check_update": "sum-product", "weight_sharing": "check",
              "weight_init": 1.0}
    decoder = NeuralBPDecoder(get_code("BCH_n63_k45"), iterations=2, weight_sharing="check")
    with torch.no_grad():
        decoder.weights.uniform_(0.3, 1.5)
    path = save_decoder(decoder, config, "BCH_n63_k45", directory / f"{name}.ckpt")
    return path, decoder.eval()


def _point(ebn0: float, ber: float, fer: float) -> PointResult:
    neg_ln = -np.log(ber) if ber > 0 else float("inf")
    return PointResult(ebn0, ber, fer, 1000, 0, 0, (0.0, 1.0), (0.0, 1.0), neg_ln, (0.0, neg_ln), 0.1)


@pytest.fixture(scope="module")
def template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MLflow SQLite database with its tables created, copied by each test."""
    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture(autouse=True)
def store(tmp_path: Path, template_db: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point MLflow at a fresh store under tmp_path; restore MLflow's URIs and environment after."""
    monkeypatch.setattr(mlflow.tracking._tracking_service.utils, "_tracking_uri", None)
    monkeypatch.setattr(mlflow.tracking._model_registry.utils, "_registry_uri", None)
    database = tmp_path / "mlruns" / "mlflow.db"
    database.parent.mkdir()
    shutil.copy(template_db, database)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{database}")  # MLflow exports it too; undone after
    uri = configure_mlflow()
    yield uri
    while mlflow.active_run() is not None:
        mlflow.end_run()


# ------------------------------------------------------------------------------------------- store
def test_default_uri_is_repo_sqlite_or_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    repo = Path(__file__).resolve().parents[1]
    assert default_tracking_uri() == f"sqlite:///{repo}/mlruns/mlflow.db"
    assert (repo / "mlruns").is_dir()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    assert default_tracking_uri() == "http://127.0.0.1:5999"
    with pytest.raises(ConfigError, match="non-empty"):
        configure_mlflow("  ")


def test_configure_sets_both_uris_and_artifacts_beside_the_database(store: str, tmp_path: Path) -> None:
    assert mlflow.get_tracking_uri() == store and mlflow.get_registry_uri() == store
    experiment_id = get_or_create_experiment("eccflow smoke/1")
    assert get_or_create_experiment("eccflow smoke/1") == experiment_id
    location = MlflowClient().get_experiment(experiment_id).artifact_location
    assert location == (tmp_path / "mlruns" / "artifacts" / "eccflow_smoke_1").as_uri()
    with pytest.raises(ConfigError):
        get_or_create_experiment("")


# ------------------------------------------------------------------------------------- params
def test_flatten_config() -> None:
    cfg = {
        "code": "BCH_n63_k45",
        "model": {"iters": 5, "weights": {"tied": True}, "dims": [1, 2.5, "x"], "extra": {}},
        "train": {"lr": 1e-3, "schedule": None, "ebn0": (1, 7)},
        "notes": "x" * 7000,
    }
    flat = flatten_config(cfg)
    assert flat == {
        "code": "BCH_n63_k45",
        "model.iters": "5",
        "model.weights.tied": "true",
        "model.dims": '[1, 2.5, "x"]',
        "model.extra": "{}",
        "train.lr": "0.001",
        "train.schedule": "null",
        "train.ebn0": "[1, 7]",
        "notes": "x" * 5997 + "...",
    }
    assert len(flat["notes"]) == 6000
    with pytest.raises(ConfigError, match="mapping"):
        flatten_config([1, 2])
    assert flatten_config({"stages": {"evaluate:zeroshot": {"x": 1}}}) == {"stages.evaluate/zeroshot.x": "1"}
    with pytest.raises(ConfigError, match="not a valid MLflow key"):
        flatten_config({"a@b": 1})
    with pytest.raises(ConfigError, match="not a valid MLflow key"):
        flatten_config({"a": {"x/../y": 1}})


def test_log_config_params_in_chunks_and_yaml_artifact(tmp_path: Path) -> None:
    cfg = {"code": "LDPC_n49_k24", "grid": {f"p{i:03d}": i for i in range(250)}, "ebn0": [4, 5, 6]}
    with pytest.raises(ConfigError, match="active MLflow run"):
        log_config(cfg)
    with pipeline_run("params", "cfg") as run:
        flat = log_config(cfg)
    logged = MlflowClient().get_run(run.info.run_id).data.params
    assert logged == flat and len(logged) == 252
    assert logged["grid.p249"] == "249" and logged["ebn0"] == "[4, 5, 6]"
    text = mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/config.yaml")
    assert yaml.safe_load(text) == cfg


# -------------------------------------------------------------------------------------- metrics
def test_point_metric_names_and_infinite_neg_ln_ber() -> None:
    results = [_point(4, 1e-3, 2e-2), _point(4.5, 1e-4, 3e-3), _point(5, 0.0, 0.0)]
    metrics = point_metrics(results)
    assert list(metrics) == [
        "neg_ln_ber_4dB", "ber_4dB", "fer_4dB",
        "neg_ln_ber_4.5dB", "ber_4.5dB", "fer_4.5dB",
        "neg_ln_ber_5dB", "ber_5dB", "fer_5dB",
    ]
    assert metrics["neg_ln_ber_4dB"] == pytest.approx(-np.log(1e-3))
    assert metrics["neg_ln_ber_5dB"] == NEG_LN_BER_CAP and metrics["ber_5dB"] == 0.0
    assert list(point_metrics(results[:1], prefix="val/")) == ["val/neg_ln_ber_4dB", "val/ber_4dB", "val/fer_4dB"]
    with pipeline_run("metrics", "points") as run:
        mlflow.log_metrics(metrics)
    assert MlflowClient().get_run(run.info.run_id).data.metrics == metrics
    with pytest.raises(ConfigError, match="twice"):
        point_metrics([_point(4, 1e-3, 1e-2), _point(4.0, 2e-3, 1e-2)])
    with pytest.raises(ConfigError, match="ebn0_db"):
        point_metrics([{"ebn0_db": 4}])
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        point_metrics([_point(4, 1.5, 0.1)])


# ----------------------------------------------------------------------------------------- runs
def test_git_commit_and_standard_tags(tmp_path: Path) -> None:
    assert git_commit(tmp_path) == "unknown"
    tags = standard_tags("BCH_n63_k45", "NBP", "train", "ci")
    assert set(tags) == {"code", "family", "stage", "profile", "git_commit"}
    assert tags["git_commit"] == git_commit()
    assert re.fullmatch(r"[0-9a-f]{40}|unknown", tags["git_commit"])
    with pytest.raises(ConfigError, match="profile"):
        standard_tags("BCH_n63_k45", "NBP", "train", "")


def test_pipeline_run_with_nested_stage_runs() -> None:
    tags = standard_tags("BCH_n63_k45", "NBP", "pipeline", "ci")
    with pytest.raises(ConfigError, match="active MLflow run"):
        with stage_run("train"):
            pass
    with pipeline_run("pipelines", "nbp-bch", tags) as parent:
        with pytest.raises(ConfigError, match="top-level"):
            with pipeline_run("pipelines", "inner"):
                pass
        with stage_run("train", {"epochs": 2}) as train:
            mlflow.log_metric("loss", 0.5)
        with pytest.raises(RuntimeError):
            with stage_run("eval"):
                raise RuntimeError("boom")
    client = MlflowClient()
    parent_run = client.get_run(parent.info.run_id)
    assert parent_run.info.status == "FINISHED" and parent_run.info.run_name == "nbp-bch"
    assert {k: parent_run.data.tags[k] for k in tags} == tags
    children = client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'"
    )
    by_name = {run.info.run_name: run for run in children}
    assert set(by_name) == {"train", "eval"}
    assert by_name["train"].info.run_id == train.info.run_id
    assert by_name["train"].info.status == "FINISHED" and by_name["eval"].info.status == "FAILED"
    for stage, run in by_name.items():
        assert run.data.tags["stage"] == stage
        assert {k: run.data.tags[k] for k in ("code", "family", "profile", "git_commit")} == {
            k: tags[k] for k in ("code", "family", "profile", "git_commit")
        }
    assert by_name["train"].data.tags["epochs"] == "2" and by_name["train"].data.metrics == {"loss": 0.5}


# ------------------------------------------------------------------------------------- registry
def _register(tmp_path: Path, label: str, value: float, higher: bool = True, family: str = "NBP"):
    path, decoder = _checkpoint(tmp_path, label)
    metric = "neg_ln_ber_5dB" if higher else "ber_5dB"
    with pipeline_run("registry", label):
        info = register_checkpoint(path, family, "BCH_n63_k45", {metric: value}, metric, higher, loader=LOADER)
    return info, decoder


def _aliases(name: str) -> dict[str, str]:
    return {alias: str(version) for alias, version in MlflowClient().get_registered_model(name).aliases.items()}


def test_registry_aliases_and_round_trip(tmp_path: Path) -> None:
    first, _ = _register(tmp_path, "v1", 5.0)
    assert first.name == "eccflow-nbp-BCH_n63_k45" and first.version == "1" and first.champion
    assert _aliases(first.name) == {"candidate": "1", "champion": "1"}
    second, better = _register(tmp_path, "v2", 6.0)
    assert second.champion and _aliases(first.name) == {"candidate": "2", "champion": "2"}
    third, newest = _register(tmp_path, "v3", 5.5)
    assert not third.champion and _aliases(first.name) == {"candidate": "3", "champion": "2"}
    tags = MlflowClient().get_model_version(first.name, "3").tags
    assert tags["loader"] == LOADER and tags["champion_metric"] == "neg_ln_ber_5dB"

    llr = 3 * torch.randn(4, CODE_N)
    for alias, original in (("candidate", newest), ("champion", better)):
        loaded = load_registered_decoder("NBP", "BCH_n63_k45", alias)
        assert type(loaded) is type(original) and not loaded.training
        assert torch.equal(loaded(llr).llr, original(llr).llr)
    pyfunc = mlflow.pyfunc.load_model(f"models:/{first.name}@champion")
    predicted = pyfunc.predict(llr.numpy())
    with torch.no_grad():
        expected = better(llr)
    assert np.array_equal(predicted["bits"], expected.bits.numpy().astype(np.uint8))
    assert predicted["llr"].dtype == np.float32 and np.array_equal(predicted["llr"], expected.llr.numpy())

    with pytest.raises(ConfigError, match="no alias"):
        load_registered_decoder("NBP", "BCH_n63_k45", "production")
    with pytest.raises(ConfigError, match="no registered model"):
        load_registered_decoder("NBP", "POLAR_n64_k48")


def test_experiments_open_on_their_training_runs_in_the_ui() -> None:
    from eccflow.track.mlflow_tracking import EXPERIMENT_KIND, EXPERIMENT_KIND_TAG

    client = MlflowClient()
    fresh = client.get_experiment(get_or_create_experiment("kind-fresh"))
    assert fresh.tags[EXPERIMENT_KIND_TAG] == EXPERIMENT_KIND == "custom_model_development"
    older = client.create_experiment("kind-older")  # made before eccflow tagged its experiments
    get_or_create_experiment("kind-older")
    assert client.get_experiment(older).tags[EXPERIMENT_KIND_TAG] == EXPERIMENT_KIND


def test_a_registered_model_may_only_name_eccflows_own_loaders(tmp_path: Path) -> None:
    """Whoever can register a model must not run code on every reader: a stored loader string outside the
    allow-list is refused, and the model is logged as code, not as a pickle."""
    from eccflow.track.mlflow_tracking import _load_decoder

    evil = tmp_path / "evil.py"
    evil.write_text(f"open({str(tmp_path / 'ran')!r}, 'w').write('ran')\n")
    with pytest.raises(ConfigError, match="not one of eccflow's own"):
        _load_decoder("runpy:run_path", evil)
    assert not (tmp_path / "ran").exists()
    first, _ = _register(tmp_path, "signed", 5.0, family="safe")
    local = Path(mlflow.artifacts.download_artifacts(first.model_uri, dst_path=str(tmp_path / "model")))
    assert not list(local.rglob("*.pkl")), "a registered decoder must not be a pickle"
    signature = mlflow.models.get_model_info(first.model_uri).signature
    assert tuple(signature.inputs.to_dict()[0]["tensor-spec"]["shape"]) == (-1, CODE_N)
    outputs = {spec["name"]: spec["tensor-spec"] for spec in signature.outputs.to_dict()}
    assert outputs == {"bits": {"dtype": "uint8", "shape": (-1, CODE_N)}, "llr": {"dtype": "float32", "shape": (-1, CODE_N)}}


def test_a_fresh_python_loads_and_serves_the_champion(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    first, decoder = _register(tmp_path, "fresh", 5.0, family="fresh")
    llr = 3 * torch.randn(5, CODE_N)
    np.save(tmp_path / "llr.npy", llr.numpy())
    script = ("import sys, numpy as np, mlflow.pyfunc\n"
              f"model = mlflow.pyfunc.load_model('models:/{first.name}@champion')\n"
              f"np.save(sys.argv[1], model.predict(np.load(sys.argv[2]))['bits'])\n")
    subprocess.run([sys.executable, "-c", script, str(tmp_path / "bits.npy"), str(tmp_path / "llr.npy")], check=True,
                   env={**os.environ, "MLFLOW_TRACKING_URI": mlflow.get_tracking_uri()}, cwd=tmp_path, timeout=300)
    assert np.array_equal(np.load(tmp_path / "bits.npy"), decoder(llr).bits.numpy().astype(np.uint8))


def test_registry_lower_is_better_keeps_champion_until_beaten(tmp_path: Path) -> None:
    first, _ = _register(tmp_path, "w1", 1e-3, higher=False, family="wbp")
    worse, _ = _register(tmp_path, "w2", 2e-3, higher=False, family="wbp")
    assert first.champion and not worse.champion
    assert _aliases(first.name) == {"candidate": "2", "champion": "1"}
    tie, _ = _register(tmp_path, "w3", 1e-3, higher=False, family="wbp")
    assert not tie.champion
    best, _ = _register(tmp_path, "w4", 5e-4, higher=False, family="wbp")
    assert best.champion and _aliases(first.name) == {"candidate": "4", "champion": "4"}


def test_register_checkpoint_rejects_bad_input(tmp_path: Path) -> None:
    path, _ = _checkpoint(tmp_path, "bad")
    cases = [
        (dict(checkpoint_path=tmp_path / "missing.pt"), "not a file"),
        (dict(loader="runpy:run_path"), "not one of eccflow's own"),
        (dict(loader="no_colon_here"), "not one of eccflow's own"),
        (dict(champion_metric="fer_5dB"), "not among"),
        (dict(metrics={"ber_5dB": float("nan")}), "finite"),
        (dict(family="N B P"), "letters, digits"),
    ]
    with pipeline_run("registry", "bad"):
        for override, message in cases:
            kwargs = dict(checkpoint_path=path, family="NBP", code="BCH_n63_k45", metrics={"ber_5dB": 1e-3},
                          champion_metric="ber_5dB", loader=LOADER) | override
            with pytest.raises(ConfigError, match=message):
                register_checkpoint(**kwargs)
    with pytest.raises(ConfigError, match="active MLflow run"):
        register_checkpoint(path, "NBP", "BCH_n63_k45", {"ber_5dB": 1e-3}, "ber_5dB", loader=LOADER)


# --------------------------------------------------------------------------------------- server
def _get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


@pytest.mark.slow
def test_server_round_trip(mlflow_server: MlflowServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.url)
    assert configure_mlflow() == mlflow_server.url
    results = [_point(4, 1e-3, 2e-2), _point(5, 1e-5, 1e-3)]
    path, decoder = _checkpoint(tmp_path, "served")
    with pipeline_run("server-roundtrip", "pipeline", standard_tags("BCH_n63_k45", "NBP", "pipeline", "ci")) as parent:
        log_config({"code": "BCH_n63_k45", "iters": 5})
        with stage_run("eval") as child:
            mlflow.log_metrics(point_metrics(results))
            info = register_checkpoint(path, "NBP", "BCH_n63_k45", point_metrics(results), "neg_ln_ber_5dB", loader=LOADER)

    api = f"{mlflow_server.url}/api/2.0/mlflow"
    found = _get_json(f"{api}/runs/get?run_id={child.info.run_id}")["run"]
    tags = {t["key"]: t["value"] for t in found["data"]["tags"]}
    assert tags["mlflow.parentRunId"] == parent.info.run_id and tags["stage"] == "eval"
    metrics = {m["key"]: m["value"] for m in found["data"]["metrics"]}
    assert metrics["neg_ln_ber_4dB"] == pytest.approx(-np.log(1e-3))
    model = _get_json(f"{api}/registered-models/get?name={urllib.parse.quote(info.name)}")["registered_model"]
    assert {a["alias"]: a["version"] for a in model["aliases"]} == {"candidate": "1", "champion": "1"}
    assert mlflow.artifacts.load_text(f"runs:/{parent.info.run_id}/config.yaml").startswith("code: BCH_n63_k45")
    assert any(mlflow_server.artifacts.rglob("served.ckpt"))

    llr = 3 * torch.randn(3, CODE_N)
    loaded = load_registered_decoder("NBP", "BCH_n63_k45", "champion")
    assert torch.equal(loaded(llr).llr, decoder(llr).llr)


@pytest.mark.slow
def test_ui_compares_runs_in_headless_chromium(mlflow_server: MlflowServer, monkeypatch: pytest.MonkeyPatch,
                                              tmp_path: Path) -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"no chromium binary at {CHROMIUM} (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.url)
    configure_mlflow()
    run_ids, values = [], (7.125, 9.375)
    for name, value in zip(("baseline", "contender"), values):
        with pipeline_run("ui-compare", name) as run:
            mlflow.log_metric("neg_ln_ber_4dB", value)
        run_ids.append(run.info.run_id)
    experiment_id = get_or_create_experiment("ui-compare")
    query = urllib.parse.urlencode({"runs": json.dumps(run_ids), "experiments": json.dumps([experiment_id])})
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--headless", "--disable-gpu"]
        )
        try:
            page = browser.new_page()
            page.goto(f"{mlflow_server.url}/#/compare-runs?{query}")
            page.get_by_text("neg_ln_ber_4dB").first.wait_for(timeout=30_000)
            for value in values:
                page.get_by_text(str(value), exact=True).first.wait_for(timeout=10_000)
            text = page.inner_text("body")
            # the address make ui prints opens the experiment on its training runs, not on the GenAI overview
            # (MLflow 3.17 follows its workflowType switch; experimentKind alone did not change the page)
            page.goto(f"{mlflow_server.url}/#/experiments/{experiment_id}?workflowType=machine_learning")
            for name in ("baseline", "contender"):
                page.get_by_role("link", name=name).first.wait_for(timeout=30_000)
            assert "/runs" in page.url and "overview" not in page.url, page.url
            page.screenshot(path=str(tmp_path / "experiment.png"))
        finally:
            browser.close()
    assert (tmp_path / "experiment.png").stat().st_size > 10_000
    # the "Metrics" table of the comparison: the metric name, then one value per run in URL order
    assert re.search(r"neg_ln_ber_4dB\s+7\.125\s+9\.375", text), text[-2000:]
