"""What eccflow writes goes under $ECCFLOW_HOME or the current directory, never into the installed package."""
from __future__ import annotations

from pathlib import Path

import pytest

from eccflow.home import PACKAGE_DIR, checkout_root, home, store_dir


def test_the_store_cache_and_studies_default_to_the_current_directory(tmp_path, monkeypatch: pytest.MonkeyPatch):
    from eccflow.pipelines.runner import default_cache_root
    from eccflow.track.mlflow_tracking import default_tracking_uri
    from eccflow.track.study import default_storage_url, default_study_dir

    for name in ("ECCFLOW_HOME", "MLFLOW_TRACKING_URI", "ECCFLOW_CACHE_DIR", "ECCFLOW_STUDY_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    assert home() == tmp_path
    assert default_tracking_uri() == f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    assert default_storage_url() == f"sqlite:///{tmp_path / 'mlruns' / 'optuna.db'}"
    assert default_cache_root() == tmp_path / "mlruns" / "cache"
    assert default_study_dir() == tmp_path / "mlruns" / "studies"
    elsewhere = tmp_path / "home"
    monkeypatch.setenv("ECCFLOW_HOME", str(elsewhere))
    assert store_dir("sap") == elsewhere / "mlruns" / "sap" and (elsewhere / "mlruns" / "sap").is_dir()
    assert default_cache_root() == elsewhere / "mlruns" / "cache"


def test_the_checkout_is_found_from_the_package():
    root = checkout_root()
    assert root is None or (root / "pyproject.toml").is_file() and PACKAGE_DIR.parent == root
    assert (PACKAGE_DIR / "conf" / "defaults.yaml").is_file()  # conf/ is package data
    assert Path(PACKAGE_DIR / "pretrained" / "universal_fecct.json").is_file()
