"""A throwaway PostgreSQL cluster for tests: ``initdb`` into a temporary folder, owned by an unprivileged user
(PostgreSQL refuses to run as root), password authentication, listening on a free 127.0.0.1 port only.

The password holds a quote and a double quote, so every command that passes a storage URL is tested with one.
"""
from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator
from urllib.parse import quote

from conftest_mlflow import free_port

USER = "eccflow"
PASSWORD = "pw'with\"quotes"
UNPRIVILEGED = "nobody"  # the cluster's owner when the tests run as root
BIN_DIRS = [Path("/usr/lib/postgresql/15/bin"), *(Path(p) for p in os.environ.get("PATH", "").split(os.pathsep))]


class PostgresUnavailable(RuntimeError):
    """No cluster can be started here (the reason is the message)."""


@dataclass(frozen=True)
class Postgres:
    """A running cluster: ``url(db)`` is the SQLAlchemy URL of one of its databases."""

    port: int
    folder: Path

    def url(self, database: str) -> str:
        password = quote(PASSWORD, safe="'")  # a raw quote: what a shell or Makefile must pass intact
        return f"postgresql://{USER}:{password}@127.0.0.1:{self.port}/{database}"


def _binary(name: str) -> str:
    for folder in BIN_DIRS:
        if (folder / name).is_file() and os.access(folder / name, os.X_OK):
            return str(folder / name)
    raise PostgresUnavailable(f"PostgreSQL's {name} is not installed (looked in {BIN_DIRS[0]} and on PATH)")


def _as_owner(command: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return command
    if shutil.which("runuser") is None:
        raise PostgresUnavailable("running as root without runuser: cannot start PostgreSQL as an unprivileged user")
    return ["runuser", "-u", UNPRIVILEGED, "--", *command]


def _run(command: list[str], what: str) -> None:
    done = subprocess.run(_as_owner(command), capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise PostgresUnavailable(f"{what} failed (rc {done.returncode}): {(done.stderr or done.stdout)[-1500:]}")


@contextmanager
def running_postgres(databases: tuple[str, ...]) -> Iterator[Postgres]:
    """Start a cluster with ``databases`` created; stop it and delete its folder after."""
    try:
        import psycopg
    except ImportError:
        raise PostgresUnavailable("psycopg is not installed (pip install -e '.[servers]')") from None
    initdb, pg_ctl = _binary("initdb"), _binary("pg_ctl")
    folder = Path(tempfile.mkdtemp(prefix="eccflow-pg-"))  # not under pytest's root-only tmp folders
    try:
        password_file = folder / "password"
        password_file.write_text(PASSWORD + "\n")
        if os.geteuid() == 0:
            owner = pwd.getpwnam(UNPRIVILEGED)
            for path in (folder, password_file):
                os.chown(path, owner.pw_uid, owner.pw_gid)
        _run([initdb, "-D", str(folder / "data"), "-U", USER, f"--pwfile={password_file}", "--auth=scram-sha-256",
              "-E", "UTF8"], "initdb")
        port = free_port()
        _run([pg_ctl, "-D", str(folder / "data"), "-l", str(folder / "server.log"), "-w", "-t", "60", "-o",
              f"-p {port} -k {folder} -c listen_addresses=127.0.0.1", "start"], "pg_ctl start")
        try:
            server = Postgres(port, folder)
            with psycopg.connect(server.url("postgres"), autocommit=True) as connection:
                for database in databases:
                    connection.execute(f'CREATE DATABASE "{database}"')
            yield server
        finally:
            subprocess.run(_as_owner([pg_ctl, "-D", str(folder / "data"), "-m", "fast", "-w", "stop"]),
                           capture_output=True, timeout=120)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
