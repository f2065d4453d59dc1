"""The analysts' page (issue 19, item 6) in headless Chromium, on a real worker.

A worker of its own (the dashboard test's ``run``: own group, database and web port)
processes a simulated closed-loop day (回访, 转派, repeats, a seeded hotspot over 30 days of
history); once ClickHouse holds what the manifest says (the 三率 per department, 督办, repeats
and hotspots included, read as the analyst user), Debian's ``chromium`` opens
``/dashboard#analyst`` and dumps the DOM: every department's received orders and 三率 and the
current hotspots must be the manifest's. A screenshot is kept in
``tests/artifacts/analyst.png``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from pipelines import clickhouse, reconcile, simulator
from pipelines.demo import DAY_MINUTES
from pipelines.producer import EventProducer
from pipelines.settings import Settings
from pipelines.workerproc import WorkerProcess
from tests.e2e.test_dashboard import _get, _json, dump_dom, screenshot
from tests.e2e.test_dashboard import run as run  # noqa: F401 - the fixture, reused

pytestmark = [pytest.mark.e2e, pytest.mark.integration]


class _Page(HTMLParser):
    """The departments' rows, the hotspots' rows and the cards' values of the analyst view."""

    def __init__(self) -> None:
        super().__init__()
        self.view = ""
        self.departments: dict[str, dict[str, str]] = {}
        self.hotspots: dict[tuple[str, str], dict[str, str]] = {}
        self.values: dict[str, str] = {}
        self._row: dict[str, str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "body":
            self.view = a.get("data-view", "")
        if tag == "tr" and "data-department" in a:
            self._row = self.departments.setdefault(a["data-department"], {})
        elif tag == "tr" and "data-grid" in a:
            self._row = self.hotspots.setdefault((a["data-grid"], a["data-category"]), {})
        elif tag == "tr":
            self._row = None
        if tag == "td" and self._row is not None:
            self._row.update({k: v for k, v in a.items() if k.startswith("data-")})
        if "data-value" in a and "id" in a:
            self.values[a["id"]] = a["data-value"]


def _rate(text: str) -> float | None:
    return None if text == "" else float(text)


def test_analyst_page_shows_the_manifests_three_rates_and_hotspots(
    run: Settings,  # noqa: F811 - the fixture imported above
    tmp_path: Path,
) -> None:
    # 督办 of the history, and the hotspot alert of the seeded hotspot (the manifest's)
    settings = run.model_copy(update={"sla_check_interval_s": 5.0, "hotspot_check_interval_s": 5.0})
    config = simulator.SimConfig.closed_loop(
        seed=3, reports=300, forms=0, warnings=0, region="43", minutes=DAY_MINUTES
    )
    now = datetime.now(UTC)
    events = simulator.generate(config, now=now)
    manifest = simulator.manifest(events, config, now=now, analysis=simulator.Analysis.of(settings))
    loop = manifest["closed_loop"]
    assert loop["hotspots"] and loop["repeats"] and loop["kpi_totals"]["rated_orders"]

    base = f"http://127.0.0.1:{settings.worker_web_port}"
    worker = WorkerProcess(settings, tmp_path / "worker.log")
    worker.start().wait_ready()
    try:
        client = clickhouse.get_client(settings)
        db = settings.clickhouse_database
        with EventProducer(settings) as producer:
            rest, problems = reconcile.send_history_first(
                events, config, producer, client, db, reconcile.Counts(), now=now, timeout=120
            )
            assert not problems, problems
            simulator.send(rest, producer)
        _, problems = reconcile.wait_reconciled(
            client, db, reconcile.Counts(), reconcile.expected_from(manifest), timeout=180
        )
        assert not problems, problems
        analyst = clickhouse.get_client(settings, analyst=True)
        problems = reconcile.wait_views(client, db, manifest, events, 90, analyst=analyst)
        assert not problems, problems

        figures = _json(f"{base}/dashboard/summary.json")["analyst"]
        assert "error" not in figures, figures
        assert figures["today"] == loop["today"]
        status, page, _ = _get(f"{base}/dashboard")
        assert status == 200 and b'id="departments"' in page and b'id="hotspots"' in page

        url = base + "/dashboard#analyst"
        dom = dump_dom(url, tmp_path / "chrome-dom", budget_ms=5000)
        shot = screenshot(url, "analyst.png", tmp_path / "chrome-shot", "1280,1100", 5000)
    finally:
        worker.stop()

    parsed = _Page()
    parsed.feed(dom)
    assert parsed.view == "analyst"
    want: dict[str, Any] = loop["kpi_by_department"]
    assert set(parsed.departments) == {*want, ""}  # "" is the total row
    for department, k in {**want, "": loop["kpi_totals"]}.items():
        row = parsed.departments[department]
        assert int(row["data-received"]) == k["received"], department
        assert int(row["data-rated"]) == k["rated_orders"], department
        assert int(row["data-problem"]) == k["problem_orders"], department
        for name in ("response_rate", "resolution_rate", "satisfaction_rate"):
            got = _rate(row["data-" + name.replace("_", "-")])
            if k[name] is None:
                assert got is None, (department, name)
            else:
                assert got == pytest.approx(k[name]), (department, name)
    assert {
        key: (int(r["data-reports"]), int(r["data-baseline"])) for key, r in parsed.hotspots.items()
    } == {
        (h["grid_id"], h["category_code"]): (h["reports"], h["baseline_reports"])
        for h in loop["hotspots"]
    }
    assert int(parsed.values["kpi-received"]) == loop["kpi_totals"]["received"]
    assert int(parsed.values["kpi-hotspots"]) == len(loop["hotspots"])
    assert "Traceback" not in worker.log_text()
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
