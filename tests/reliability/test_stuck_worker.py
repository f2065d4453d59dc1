"""A worker killed mid-stream (issue 17, item 1): `govstream lag` must not say OK while events
wait, and `govstream stack status` must list the worker as dead and exit non-zero."""

from __future__ import annotations

import json
import time

import pytest

from pipelines import workers
from tests.integration.test_stack import run_cli
from tests.reliability.conftest import Run

pytestmark = [pytest.mark.reliability, pytest.mark.integration]


def _worker_entry(run: Run, pid: int) -> tuple[int, dict[str, object]]:
    done = run_cli(run.settings, "stack", "status", "--json")
    assert done.stderr == "", done.stderr
    listed = {w["pid"]: w for w in json.loads(done.stdout)["workers"]}
    assert pid in listed, listed
    return done.returncode, listed[pid]


def test_killed_worker_shows_in_lag_and_stack_status(run: Run) -> None:
    first, _ = run.simulate(seed=17, reports=300)
    more, _ = run.simulate(seed=18, reports=100)
    worker = run.worker()
    worker.start().wait_ready()
    assert worker.proc is not None
    pid = worker.proc.pid

    deadline = time.monotonic() + 30
    while True:  # /health answers once the web server is up and the first lag sample is taken
        _, entry = _worker_entry(run, pid)
        if entry["state"] == "healthy" or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert entry["state"] == "healthy", entry
    assert entry["app_id"] == run.settings.app_id

    run.kill_mid_stream(worker, first, more)  # `more` waits for a consumer that is gone

    lag = run_cli(
        run.settings, "lag", "--group", run.settings.app_id, "--json",
        "--window", "3", "--interval", "0.5", "--fail-on", "STALL",
    )  # fmt: skip
    assert lag.returncode == 1, (lag.stdout, lag.stderr)
    [group] = json.loads(lag.stdout)["groups"]
    assert group["status"] in ("STALL", "STOP"), group
    assert group["lag"] >= 100  # at least the 100 SUBMITs sent after the kill
    topics = {p["topic"] for p in group["partitions"]}
    assert {"report", "report-routed", "form-submission", "alert"} <= topics

    code, entry = _worker_entry(run, pid)
    assert code == 1
    assert entry["state"] == "dead" and entry["healthy"] is False, entry
    text = run_cli(run.settings, "stack", "status")
    assert text.returncode == 1 and "dead" in text.stdout

    # a new worker of the same group replaces the dead one in the registry
    again = run.worker()
    again.start().wait_ready()
    assert pid not in {e["pid"] for e in workers.read_entries(run.settings)}
