"""Runs left behind by a killed process: every eccflow run is tagged with the process that runs it
(``eccflow.owner`` = ``<host>:<pid>``); a run still RUNNING whose process is gone was killed (kill -9, a
crash, a lost machine) and is ended KILLED, tagged ``eccflow.stale`` with how and when it was found.

Only runs started on this host can be checked (a process id means nothing elsewhere); runs of other hosts
are left to that host's next pipeline or ``eccflow doctor``.
"""
from __future__ import annotations

import os
import socket
import time

from mlflow import MlflowClient
from mlflow.entities import ViewType

OWNER_TAG = "eccflow.owner"
STALE_TAG = "eccflow.stale"


def owner() -> str:
    """``<host>:<pid>`` of this process."""
    return f"{socket.gethostname()}:{os.getpid()}"


def owner_alive(tag: str) -> bool | None:
    """Whether the process named by an owner tag still runs; ``None`` when it ran on another host."""
    host, _, pid = tag.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return None
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def mark_stale_runs(found_by: str) -> list[str]:
    """End KILLED every RUNNING run of this host whose process is gone; returns their run ids.
    ``found_by`` says what found them (e.g. ``"pipeline start"``, ``"eccflow doctor"``)."""
    client = MlflowClient()
    experiments = [e.experiment_id for e in client.search_experiments(view_type=ViewType.ACTIVE_ONLY)]
    if not experiments:
        return []
    marked = []
    for run in client.search_runs(experiments, filter_string="attributes.status = 'RUNNING'", max_results=50_000):
        tag = run.data.tags.get(OWNER_TAG)
        if tag is None or owner_alive(tag) is not False:
            continue
        when = time.strftime("%Y-%m-%dT%H:%M:%S")
        client.set_tag(run.info.run_id, STALE_TAG, f"process {tag} ended without closing this run; found by {found_by} at {when}")
        client.set_terminated(run.info.run_id, status="KILLED")
        marked.append(run.info.run_id)
    return marked
