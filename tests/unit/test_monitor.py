"""`govstream monitor` (issue 17, item 2): the pure stall clock and verdict, the document's
staleness, and the command's promises without any service (one-line errors, exit 2 for bad
arguments, exit 1 for a taken port; with Kafka down it answers and reports it)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from pipelines import lag, monitor
from pipelines.workers import WorkerStatus
from tests.conftest import free_port
from tests.unit.test_cli_errors import govstream, one_line

pytestmark = pytest.mark.unit


def worker(pid: int, state: str, app_id: str = "app") -> WorkerStatus:
    return WorkerStatus(pid, app_id, "127.0.0.1:1", state, state == "healthy", "")


def part(
    partition: int = 0, lag_: int | None = 0, stalled: bool = False, idle: float = 0.0
) -> monitor.PartitionView:
    return monitor.PartitionView(
        "report", partition, 10, None if lag_ is None else 10 + lag_, lag_, "OK", "", idle, stalled
    )


def test_progress_clock_counts_from_the_last_move_or_zero_lag() -> None:
    clock = monitor.ProgressClock()
    tp = ("report", 0)
    assert clock.update(tp, 5, 3, now=100.0) == 0.0  # first look starts the clock
    assert clock.update(tp, 5, 4, now=130.0) == 30.0  # lag grows, offset stands still
    assert clock.update(tp, 7, 2, now=140.0) == 0.0  # it moved
    assert clock.update(tp, 7, 2, now=150.0) == 10.0
    assert clock.update(tp, 7, 0, now=160.0) == 0.0  # caught up: nothing to do is no stall
    assert clock.update(tp, 7, 0, now=500.0) == 0.0


def test_partition_views_mark_a_partition_stalled_after_the_threshold() -> None:
    clock = monitor.ProgressClock()

    def report(committed: int, log_end: int) -> lag.GroupReport:
        tracker = lag.LagTracker(window=3)
        tracker.observe("app", {("report", 0): lag.Observation(0.0, committed, log_end)}, 1)
        return tracker.report("app")

    [first] = monitor.partition_views(report(10, 50), clock, now=0.0, stall_after_s=60.0)
    assert first.lag == 40 and not first.stalled
    [young] = monitor.partition_views(report(10, 60), clock, now=59.0, stall_after_s=60.0)
    assert young.since_progress_s == 59.0 and not young.stalled
    [old] = monitor.partition_views(report(10, 60), clock, now=61.0, stall_after_s=60.0)
    assert old.stalled and old.lag == 50


def test_verdict_is_ok_with_a_healthy_worker_and_nothing_stalled() -> None:
    v = monitor.assess(
        app_id="app",
        kafka=(True, "1 broker(s)"),
        lag_error=None,
        partitions=[part(0, 3), part(1, 0)],
        workers_=[worker(1, "healthy"), worker(2, "dead"), worker(3, "dead", app_id="other")],
    )
    assert v.healthy and v.reasons == ()
    assert v.verdict == (
        "OK: 1 healthy worker(s), lag 3 over 2 partitions, 1 other worker(s) not healthy"
    )


def test_verdict_names_a_dead_worker_and_the_stalled_partitions() -> None:
    v = monitor.assess(
        app_id="app",
        kafka=(True, ""),
        lag_error=None,
        partitions=[part(0, 40, stalled=True, idle=95.0), part(1, 0)],
        workers_=[worker(7, "dead"), worker(8, "healthy", app_id="other")],  # not our group's
    )
    assert not v.healthy
    assert v.reasons == (
        "no healthy worker (pid 7 dead)",
        "1 partition(s) stalled: report[0] lag 40 for 95 s",
    )
    assert v.verdict.startswith("PROBLEM: no healthy worker") and v.verdict.endswith("(lag 40)")
    assert "\n" not in v.verdict


def test_a_healthy_worker_does_not_hide_a_stalled_partition() -> None:
    v = monitor.assess(
        app_id="app",
        kafka=(True, ""),
        lag_error=None,
        partitions=[part(p, 5, stalled=True, idle=200) for p in range(5)],
        workers_=[worker(1, "healthy")],
    )
    assert not v.healthy and v.reasons[0].startswith("5 partition(s) stalled")
    assert v.reasons[0].endswith("and 2 more")


def test_verdict_with_kafka_down_or_no_worker() -> None:
    down = monitor.assess(
        app_id="app",
        kafka=(False, "nothing listens on 127.0.0.1:9092"),
        lag_error="Kafka does not answer",
        partitions=[],
        workers_=[],
    )
    assert not down.healthy
    assert down.reasons == (
        "Kafka does not answer (nothing listens on 127.0.0.1:9092)",
        "no worker of app registered",
    )
    assert down.verdict.endswith("(lag unknown)")
    stale = monitor.assess(
        app_id="app", kafka=(True, ""), lag_error="cannot list offsets: boom",
        partitions=[part(0, 9)], workers_=[worker(1, "healthy")],
    )  # fmt: skip
    assert not stale.healthy and stale.reasons == ("lag unknown (cannot list offsets: boom)",)
    assert stale.verdict.endswith("(lag 9 as last seen)")


def test_an_old_observation_is_not_healthy() -> None:
    ok = monitor.Verdict(True, "OK: fine", ())
    obs = monitor.Observation(
        1000.0, "app", "/h", 60.0, ok, {}, [part(0, 2)], [worker(1, "healthy")]
    )
    healthy, doc = obs.document(now=1010.0, stale_s=30.0)
    assert healthy and doc["age_s"] == 10.0 and doc["lag"]["total"] == 2
    assert doc["workers"][0]["state"] == "healthy" and doc["workers"][0]["stalled_agents"] == []
    json.dumps(doc)  # serialisable as it is
    healthy, doc = obs.document(now=1100.0, stale_s=30.0)
    assert not healthy and doc["reasons"] == ["the monitor's last observation is 100 s old"]


def test_page_escapes_and_shows_the_verdict() -> None:
    obs = monitor.Observation(
        time.time(), "app", "/h", 60.0, monitor.Verdict(False, "PROBLEM: <x>", ("<x>",)),
        {"kafka": {"healthy": False, "detail": "down"}}, [part(0, 4, stalled=True)],
        [worker(1, "dead")],
    )  # fmt: skip
    _, doc = obs.document(time.time(), 30.0)
    page = monitor.render_html(doc, 5)
    assert '<meta http-equiv="refresh" content="5">' in page
    assert "PROBLEM: &lt;x&gt;" in page and "<x>" not in page
    assert "dead" in page and "report" in page


# -- the command, no service running ----------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "hint"),
    [
        (["--port", "70000"], "--port"),
        (["--bind", "not-an-address"], "--bind"),
        (["--interval", "0"], "--interval"),
        (["--stall-after", "-1"], "--stall-after"),
    ],
)
def test_bad_arguments_exit_2(tmp_path: Path, args: list[str], hint: str) -> None:
    assert hint in one_line(govstream(tmp_path, "monitor", *args), 2)


def test_an_address_this_machine_does_not_have_exits_2(tmp_path: Path) -> None:
    line = one_line(govstream(tmp_path, "monitor", "--bind", "192.0.2.1", "--port", "0"), 2)
    assert "192.0.2.1" in line


def test_a_taken_port_exits_1(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        line = one_line(govstream(tmp_path, "monitor", "--port", str(port)), 1)
    assert f"port {port}" in line and "taken" in line and "--port" in line


def _get(url: str, token: str = "") -> tuple[int, bytes]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_with_everything_down_it_answers_and_says_so(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "GOVSTREAM_HOME": str(tmp_path / "home"),
        "GOVSTREAM_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}",
        "GOVSTREAM_SCHEMA_REGISTRY_URL": f"http://127.0.0.1:{free_port()}",
        "GOVSTREAM_CLICKHOUSE_URL": f"http://127.0.0.1:{free_port()}",
        "GOVSTREAM_WORKER_WEB_TOKEN": "s3cret",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipelines", "monitor", "--port", str(port), "--interval", "0.5"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert f"http://127.0.0.1:{port}/" in proc.stdout.readline()
        deadline = time.monotonic() + 20
        while True:
            code, body = _get(f"http://127.0.0.1:{port}/status.json", "s3cret")
            doc = json.loads(body)
            if doc["services"] or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert code == 200 and doc["healthy"] is False
        assert doc["services"]["kafka"]["healthy"] is False and doc["workers"] == []
        assert doc["verdict"].startswith("PROBLEM: Kafka does not answer")
        code, body = _get(f"http://127.0.0.1:{port}/health", "s3cret")
        assert code == 503 and "Kafka does not answer" in json.loads(body)["verdict"]
        assert _get(f"http://127.0.0.1:{port}/health")[0] == 401  # the token is required
        code, page = _get(f"http://127.0.0.1:{port}/", "s3cret")
        assert code == 200 and b"Kafka does not answer" in page
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0 and err == "", err


def test_a_workers_health_answer_gives_its_stalled_agents_and_a_token_hint() -> None:
    from pipelines import workers

    body = {"healthy": False, "services": {}, "stalled_agents": ["process_reports"]}
    state, detail, stalled = workers._health_state(503, json.dumps(body).encode())
    assert (state, stalled) == ("unhealthy", ("process_reports",))
    assert detail == "/health 503: stalled: process_reports"
    state, detail, stalled = workers._health_state(401, b'{"error": "unauthorized"}')
    assert state == "unhealthy" and "GOVSTREAM_WORKER_WEB_TOKEN" in detail and stalled == ()
