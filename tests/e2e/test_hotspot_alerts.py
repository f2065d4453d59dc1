"""热点预警 end to end (real worker process, its group positioned by ``positioned_run``): five
reports of one grid and category today make a hotspot (no baseline: the minimum of 5 decides),
the worker's leader sends one alert for it through the alert topic, the alert agent writes it
to gov.alerts; after a restart (a new leader with nothing in memory) a second grid's hotspot is
warned of and the first is not sent again: one message per hotspot on the topic, ever. (It also
keeps the worker to its own Faust producer: with a confluent-kafka idempotent producer opened
inside the worker for the alerts, the embedded broker lost report events sent after the
restart.)"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pipelines import contracts, divisions, hotspots, kafka_admin, topicread
from pipelines.clickhouse import get_client
from pipelines.producer import EventProducer
from pipelines.settings import Settings
from pipelines.workerproc import WorkerProcess
from tests.conftest import wait_for
from tests.e2e.test_report_pipeline import _report, run  # noqa: F401 (fixture)

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

CST_OFFSET = timedelta(hours=8)


def _hot_reports(prefix: str, village: divisions.Division, grid: str) -> list[dict[str, Any]]:
    """Five reports of one grid and category within the last hour (the category is the
    classifier's: the same text each time)."""
    now = datetime.now(UTC)
    return [
        _report(
            prefix,
            n,
            village,
            grid_id=grid,
            occurred_at=(now - timedelta(minutes=50 - 5 * n)).isoformat(),
        )
        for n in range(5)
    ]


def _rows(settings: Settings, sql: str) -> list[tuple[Any, ...]]:
    try:
        result = get_client(settings).query(sql.replace("{db}", settings.clickhouse_database))
    except Exception:  # the worker creates the database when it migrates
        return []
    return [tuple(r) for r in result.result_rows]


def _hotspot_alerts(settings: Settings) -> list[str]:
    rows = _rows(settings, "SELECT root_id FROM {db}.alerts FINAL WHERE source = 'hotspot'")
    return sorted(str(r[0]) for r in rows)


def _expected_id(settings: Settings, prefix: str, grid: str) -> str:
    [(code,)] = _rows(
        settings,
        f"SELECT DISTINCT category_code FROM {{db}}.reports FINAL "
        f"WHERE startsWith(report_id, '{prefix}')",
    )
    today = (datetime.now(UTC) + CST_OFFSET).date()  # Asia/Shanghai, the view's today
    return hotspots.hotspot_root(grid, str(code), today)


def _messages_by_key(settings: Settings, start: dict[Any, int]) -> dict[str, int]:
    """Keys of the alert topic's records since ``start`` (partition → offset), counted."""
    counts: dict[str, int] = {}
    for (topic, partition), offset in start.items():
        for record in topicread.read(
            settings, topic, partition=partition, from_offset=offset, limit=10_000, raw=True
        ):
            counts[str(record.key)] = counts.get(str(record.key), 0) + 1
    return counts


def _send(settings: Settings, events: list[dict[str, Any]]) -> None:
    with EventProducer(settings) as producer:
        for event in events:
            producer.send(contracts.REPORT, event)


def test_one_hotspot_alert_per_hotspot_across_a_restart(
    run: Settings,  # noqa: F811
    tmp_path: Path,
) -> None:
    settings = run.model_copy(update={"hotspot_check_interval_s": 2.0})
    start = kafka_admin.log_end_offsets(
        settings, kafka_admin.partitions_of(settings, [contracts.ALERT])
    )
    first_village, second_village = divisions.villages_under("430602")[40:42]
    tag = uuid.uuid4().hex[:6]
    first_grid, second_grid = f"{first_village.code}-{tag}", f"{second_village.code}-{tag}"
    first_prefix, second_prefix = f"HA{tag}", f"HB{tag}"
    worker = WorkerProcess(settings, tmp_path / "worker.log")

    _send(settings, _hot_reports(first_prefix, first_village, first_grid))
    worker.start().wait_ready()
    try:
        wait_for(lambda: len(_hotspot_alerts(settings)) == 1, 90, "the first hotspot alert")
    finally:
        worker.stop()
    first_id = _expected_id(settings, first_prefix, first_grid)
    assert _hotspot_alerts(settings) == [first_id]

    # a restarted worker: a new leader, nothing in memory; a second grid turns hot
    _send(settings, _hot_reports(second_prefix, second_village, second_grid))
    worker.start().wait_ready()
    try:
        wait_for(lambda: len(_hotspot_alerts(settings)) == 2, 90, "the second hotspot alert")
        deadline = datetime.now(UTC) + timedelta(seconds=5)  # two more checks (every 2 s)
        wait_for(lambda: datetime.now(UTC) >= deadline, 10, "two more checks")
    finally:
        worker.stop()
    second_id = _expected_id(settings, second_prefix, second_grid)
    assert _hotspot_alerts(settings) == sorted([first_id, second_id])
    sent = _messages_by_key(settings, start)
    assert (sent.get(first_id), sent.get(second_id)) == (1, 1)
    township = first_village.code[:9]
    [(region_codes, villages)] = _rows(
        settings,
        f"SELECT region_codes, villages FROM {{db}}.alerts FINAL WHERE root_id = '{first_id}'",
    )
    assert list(region_codes) == [township]
    assert villages == len(divisions.villages_under(township))
