"""A real ``mlflow server`` for tests: a SQLite (or given) backend and proxied artifacts in a temporary directory.

The ``mlflow_server`` fixture in ``tests/conftest.py`` starts one per test session (its start costs seconds)
and stops it when the session ends.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

START_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class MlflowServer:
    """Where a running test server listens and keeps its data."""

    url: str
    backend_uri: str
    artifacts: Path
    log: Path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def stop(process: subprocess.Popen) -> None:
    """SIGTERM the server's process group (gunicorn/uvicorn workers included), SIGKILL if it lingers."""
    for sig, wait_s in ((signal.SIGTERM, 15), (signal.SIGKILL, 15)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        try:
            process.wait(timeout=wait_s)
            break
        except subprocess.TimeoutExpired:
            continue


@contextmanager
def running_mlflow_server(directory: Path, backend_uri: str | None = None) -> Iterator[MlflowServer]:
    """Start ``mlflow server`` on a free 127.0.0.1 port with its data under ``directory`` (its runs in
    ``backend_uri``, default a SQLite file there); stop it after."""
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    server = MlflowServer(
        url=f"http://127.0.0.1:{port}",
        backend_uri=backend_uri or f"sqlite:///{directory / 'mlflow.db'}",
        artifacts=directory / "artifacts",
        log=directory / "server.log",
    )
    command = [
        sys.executable, "-m", "mlflow", "server",
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        "--backend-store-uri", server.backend_uri,
        "--artifacts-destination", str(server.artifacts),
    ]
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    env.pop("MLFLOW_TRACKING_URI", None)
    with open(server.log, "wb") as log:
        process = subprocess.Popen(
            command, cwd=directory, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _healthy(server.url):
            if process.poll() is not None or time.monotonic() > deadline:
                tail = server.log.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"mlflow server did not become healthy at {server.url}:\n{tail}")
            time.sleep(0.25)
        yield server
    finally:
        stop(process)
