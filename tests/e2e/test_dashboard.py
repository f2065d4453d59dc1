"""The operators' dashboard in headless Chromium, and ``/metrics``, on a real worker.

A worker of its own (own group positioned at the end of the topics, own database) processes a
simulated province's reports; then Debian's ``chromium`` (installed by ``make system-deps``,
which ``make test`` runs) opens ``/dashboard``, lets its 2 s polling run for 8 s of virtual
time, and dumps the DOM: every chart must have drawn points and the work-order summary must
show ClickHouse's numbers. A screenshot is kept in ``tests/artifacts/dashboard.png``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from pipelines import clickhouse, contracts, reconcile, simulator
from pipelines.producer import EventProducer
from pipelines.settings import Settings
from pipelines.workerproc import WorkerProcess
from tests.conftest import wait_for
from tests.e2e.conftest import positioned_run

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, "Debian's chromium is not installed: run `make system-deps` (make test does)"
    return found


def dump_dom(url: str, profile: Path, budget_ms: int = 8000) -> str:
    """The DOM of ``url`` after ``budget_ms`` of virtual time in headless Chromium."""
    browser = [chromium(), *CHROMIUM_FLAGS, f"--virtual-time-budget={budget_ms}"]
    return subprocess.run(
        [*browser, f"--user-data-dir={profile}", "--dump-dom", url],
        capture_output=True,
        timeout=120,
        check=True,
    ).stdout.decode("utf-8", "replace")


def screenshot(url: str, name: str, profile: Path, size: str, budget_ms: int = 8000) -> Path:
    """A PNG of ``url`` (window ``size``, "w,h") kept as tests/artifacts/``name``."""
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / name
    shot.unlink(missing_ok=True)
    browser = [chromium(), *CHROMIUM_FLAGS, f"--virtual-time-budget={budget_ms}"]
    subprocess.run(
        [
            *browser,
            f"--user-data-dir={profile}",
            f"--screenshot={shot}",
            f"--window-size={size}",
            url,
        ],
        capture_output=True,
        timeout=120,
        check=True,
    )
    return shot


def _get(url: str) -> tuple[int, bytes, str]:
    with urllib.request.urlopen(url, timeout=10) as answer:  # noqa: S310 - loopback only
        return answer.status, answer.read(), answer.headers.get("Content-Type", "")


def _json(url: str) -> Any:
    return json.loads(_get(url)[1])


@pytest.fixture
def run(stack: Settings, unique: str) -> Iterator[Settings]:
    """A worker's settings: own group (at the end of every topic), database and web port."""
    settings, _ = positioned_run(stack, "dash", unique)
    yield settings
    clickhouse.get_client(stack).command(f"DROP DATABASE IF EXISTS {settings.clickhouse_database}")


class _Dom(HTMLParser):
    """Chart points (polyline coordinate pairs per chart) and the summary's values."""

    def __init__(self) -> None:
        super().__init__()
        self.chart: str | None = None
        self.points: dict[str, int] = {}
        self.maxima: dict[str, float] = {}
        self.values: dict[str, str] = {}
        self.refreshes = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "body":
            self.refreshes = int(a.get("data-refreshes") or 0)
        if tag == "svg" and "data-chart" in a:
            self.chart = a["data-chart"]
            self.points[self.chart] = 0
            self.maxima[self.chart] = float(a.get("data-max") or 0)
        elif tag == "polyline" and self.chart is not None:
            self.points[self.chart] += len(a.get("points", "").split())
        if "data-value" in a and "id" in a:
            self.values[a["id"]] = a["data-value"]

    def handle_endtag(self, tag: str) -> None:
        if tag == "svg":
            self.chart = None


def test_dashboard_renders_live_charts_and_metrics_count_events(
    run: Settings, tmp_path: Path
) -> None:
    config = simulator.SimConfig(
        seed=7, reports=400, forms=0, warnings=0, region="43", minutes=24 * 60
    )
    now = datetime.now(UTC)
    events = simulator.generate(config, now=now)
    manifest = simulator.manifest(events, config, now=now)
    expected = reconcile.expected_from(manifest)
    report_events = sum(1 for e in events if e.topic == contracts.REPORT)
    assert expected.work_orders > 0 and expected.dead_letters

    base = f"http://127.0.0.1:{run.worker_web_port}"
    worker = WorkerProcess(run, tmp_path / "worker.log")
    worker.start().wait_ready()
    try:
        with EventProducer(run) as producer:
            simulator.send(events, producer)
        _, problems = reconcile.wait_reconciled(
            clickhouse.get_client(run),
            run.clickhouse_database,
            reconcile.Counts(),
            expected,
            timeout=180,
        )
        assert not problems, problems

        # the lag timer and the dashboard's sampler run on their own clocks: wait for both
        def history_has_everything() -> bool:
            h = _json(f"{base}/dashboard/history.json")
            return bool(h["lag"]) and bool(h["insert_latency_ms"]["mean"])

        wait_for(history_has_everything, 60, "lag and latency samples in the dashboard history")

        # /metrics: Prometheus text that counted every report-topic event
        status, body, content_type = _get(f"{base}/metrics")
        assert status == 200 and content_type.startswith("text/plain")
        families = {f.name: f for f in text_string_to_metric_families(body.decode())}
        counted = sum(
            s.value
            for s in families["govstream_events_in"].samples
            if s.name == "govstream_events_in_total" and s.labels["topic"] == contracts.REPORT
        )
        assert counted == report_events
        dead = {
            s.labels["reason"]: s.value
            for s in families["govstream_dead_letters"].samples
            if s.name == "govstream_dead_letters_total"
        }
        assert dead == expected.dead_letters
        inserts = [
            s.value
            for s in families["govstream_sink_insert_seconds"].samples
            if s.name == "govstream_sink_insert_seconds_count"
        ]
        assert sum(inserts) > 0

        summary = _json(f"{base}/dashboard/summary.json")
        total = clickhouse.get_client(run).query(
            "SELECT count() FROM {db:Identifier}.work_orders_now",
            parameters={"db": run.clickhouse_database},
        )
        assert summary["total"] == total.result_rows[0][0] > 0
        assert summary["open"] + summary["closed"] + summary["cancelled"] == summary["total"]
        assert summary["open"] > 0 and summary["closed"] > 0

        status, page, content_type = _get(f"{base}/dashboard")
        assert status == 200 and content_type.startswith("text/html")
        assert b'<script src="/dashboard/dashboard.js">' in page
        assert b"http://" not in page and b"https://" not in page  # nothing from outside

        dom = dump_dom(base + "/dashboard", tmp_path / "chrome-dom")
        shot = screenshot(
            base + "/dashboard", "dashboard.png", tmp_path / "chrome-shot", "1280,900"
        )
    finally:
        worker.stop()

    parsed = _Dom()
    parsed.feed(dom)
    assert parsed.refreshes >= 2, "the page did not poll"
    assert set(parsed.points) == {"lag", "throughput", "dead_letters", "insert_latency"}
    assert all(n > 0 for n in parsed.points.values()), parsed.points
    assert parsed.maxima["throughput"] > 0  # the events went through while it sampled
    assert parsed.maxima["dead_letters"] == max(expected.dead_letters.values())
    assert parsed.maxima["insert_latency"] > 0
    assert int(parsed.values["wo-total"]) == summary["total"]
    assert int(parsed.values["wo-closed"]) == summary["closed"]
    assert int(parsed.values["wo-open"]) > 0
    assert float(parsed.values["tot-in"]) >= report_events
    assert "Traceback" not in worker.log_text()
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
