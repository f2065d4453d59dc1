"""`govstream monitor` outlives the worker (issue 17, item 2): a worker killed mid-stream shows
as dead on the monitor's /status.json, the records sent after the kill as lag on stalled
partitions, and the monitor's /health turns 503 naming both, while it keeps answering."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from pipelines.settings import settings_env
from tests.conftest import free_port
from tests.reliability.conftest import Run

pytestmark = [pytest.mark.reliability, pytest.mark.integration]

STALL_AFTER_S = 4


def _get(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310 (our monitor)
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.fixture
def monitor_url(run: Run) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipelines", "monitor", "--port", str(port), "--interval", "1",
         "--stall-after", str(STALL_AFTER_S)],
        env={**os.environ, **settings_env(run.settings)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert f"127.0.0.1:{port}" in line, (line, proc.stderr and proc.stderr.read())
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0 and err == "", err


def _until(
    url: str, check: Callable[[dict[str, Any]], bool], timeout: float, what: str
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    doc: dict[str, Any] = {}
    while time.monotonic() < deadline:
        code, doc = _get(f"{url}/status.json")
        assert code == 200, doc
        if check(doc):
            return doc
        time.sleep(0.5)
    raise AssertionError(f"monitor did not show {what} within {timeout:.0f} s: {doc}")


def test_monitor_shows_a_killed_worker_and_its_lag(run: Run, monitor_url: str) -> None:
    first, _ = run.simulate(seed=27, reports=300)
    more, _ = run.simulate(seed=28, reports=100)
    worker = run.worker()
    worker.start().wait_ready()
    assert worker.proc is not None
    pid = worker.proc.pid

    def ours(doc: dict[str, Any]) -> dict[str, Any]:
        return next((w for w in doc["workers"] if w["pid"] == pid), {})

    doc = _until(monitor_url, lambda d: d["healthy"], 60, "a healthy worker")
    assert ours(doc)["state"] == "healthy" and doc["app_id"] == run.settings.app_id
    assert doc["verdict"].startswith("OK: ")
    topics = {p["topic"] for p in doc["partitions"]}
    assert {"report", "report-routed", "form-submission", "alert"} <= topics
    assert _get(f"{monitor_url}/health")[0] == 200

    run.kill_mid_stream(worker, first, more)  # `more` waits for a consumer that is gone

    doc = _until(
        monitor_url,
        lambda d: (
            ours(d).get("state") == "dead"
            and d["lag"]["total"] >= 100
            and any(p["stalled"] for p in d["partitions"])
        ),
        60,
        "the dead worker and stalled partitions",
    )
    assert ours(doc)["healthy"] is False and doc["healthy"] is False
    assert doc["services"]["kafka"]["healthy"] is True
    stalled = [p for p in doc["partitions"] if p["stalled"]]
    assert all(p["lag"] > 0 and p["since_progress_s"] >= STALL_AFTER_S for p in stalled)
    assert sum(p["lag"] for p in doc["partitions"] if p["topic"] == "report") >= 100

    code, health = _get(f"{monitor_url}/health")
    assert code == 503 and health["healthy"] is False
    assert any(r.startswith("no healthy worker") and f"pid {pid} dead" in r
               for r in health["reasons"]), health  # fmt: skip
    assert any("partition(s) stalled" in r for r in health["reasons"]), health
    assert "\n" not in health["verdict"]
    with urllib.request.urlopen(f"{monitor_url}/", timeout=10) as resp:  # noqa: S310
        page = resp.read().decode()
    assert "dead" in page and "PROBLEM" in page
