"""Where eccflow reads and writes outside its package: ``$ECCFLOW_HOME``, else the current directory.

Under the home, ``mlruns/`` holds everything eccflow writes by default: the MLflow store (``mlflow.db``,
``artifacts/``), the Optuna database (``optuna.db``), the stage cache (``cache/``), study outputs
(``studies/``) and the SAP mask library (``sap/``). The same holds in a source checkout and in a
non-editable install; environment variables (``MLFLOW_TRACKING_URI``, ``ECCFLOW_CACHE_DIR``, ...) still
choose each place on its own.
"""
from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def home() -> Path:
    """``$ECCFLOW_HOME`` if set, else the current working directory."""
    chosen = os.environ.get("ECCFLOW_HOME", "").strip()
    return Path(chosen).expanduser() if chosen else Path.cwd()


def store_dir(*parts: str, create: bool = True) -> Path:
    """``<home>/mlruns/<parts...>``, created unless ``create`` is false."""
    path = home().joinpath("mlruns", *parts)
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path


def checkout_root() -> Path | None:
    """The source checkout holding this package (the folder above it with ``pyproject.toml``), or ``None``
    for an installed package."""
    root = PACKAGE_DIR.parent
    return root if (root / "pyproject.toml").is_file() else None
