"""The report pipeline end to end: producer → Tansu → Faust worker (a real process) → chDB.

Every test runs its own worker (own consumer group, own ClickHouse database) against the
session's embedded stack and identifies its events by a unique report-id prefix.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pipelines import contracts, divisions
from pipelines.clickhouse import get_client
from pipelines.producer import EventProducer
from pipelines.settings import Settings
from pipelines.workerproc import WorkerProcess
from tests.conftest import wait_for
from tests.e2e.conftest import positioned_run

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

EXAMPLE = json.loads(
    (contracts.SCHEMA_DIR / "examples" / "report.jsonl").read_text("utf-8").splitlines()[0]
)
RAW_PHONE, RAW_ID = "13907301234", "430602198503124024"


@pytest.fixture
def run(stack: Settings, unique: str, tmp_path: Path) -> Iterator[Settings]:
    """Settings of one test's pipeline: its own group, database and web port. The group starts
    at the topics' current ends (``positioned_run``): its worker reads what the test sends,
    not every earlier test's events on the shared stack (thousands by the last e2e test, whose
    orders would also 并单 with this test's)."""
    settings, _start = positioned_run(stack, "test", unique, migrate=False)
    yield settings
    get_client(stack).command(f"DROP DATABASE IF EXISTS {settings.clickhouse_database}")


def _report(prefix: str, n: int, village: divisions.Division, **changes: Any) -> dict[str, Any]:
    at = datetime.now(UTC) - timedelta(minutes=30)
    event = dict(
        EXAMPLE,
        event_id=str(uuid.uuid4()),
        report_id=f"{prefix}-{n:05d}",
        occurred_at=at.isoformat(),
        region_code=village.code,
        grid_id=f"{village.code}-01",
        address=f"{village.name}{n}号楼前",
        description=f"楼前的井盖不见了，很危险，联系我{RAW_PHONE}",
    )
    event.pop("lat"), event.pop("lon")
    event.update(changes)
    return event


def _batch(prefix: str) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """300 distinct reports, 10 duplicates of some of them, 30 invalid ones."""
    villages = divisions.villages_under("4306")[:300]
    events = [_report(prefix, i, v) for i, v in enumerate(villages)]
    for i in range(10):  # same category, same village and address, 20 minutes later
        first = events[i]
        later = datetime.fromisoformat(first["occurred_at"]) + timedelta(minutes=20)
        events.append(
            dict(first, event_id=str(uuid.uuid4()), report_id=f"{prefix}-D{i:04d}",
                 occurred_at=later.isoformat())
        )  # fmt: skip
    for i in range(20):
        events.append(_report(prefix, 1000 + i, villages[i], region_code="439999999999"))
    for i in range(10):
        events.append(_report(prefix, 2000 + i, villages[i], description="   "))
    expected = {"rows": 310, "duplicates": 10, "unknown_region": 20, "empty_description": 10}
    return events, expected


def _counts(settings: Settings, prefix: str) -> dict[str, int]:
    client = get_client(settings)
    db = settings.clickhouse_database
    try:
        rows, uniq, dups, raw = client.query(
            f"SELECT count(), uniqExact(report_id), countIf(duplicate_of != ''), "
            f"(SELECT count() FROM {db}.reports WHERE startsWith(report_id, {{p:String}})) "
            f"FROM {db}.reports FINAL WHERE startsWith(report_id, {{p:String}})",
            {"p": prefix},
        ).result_rows[0]
        letters = dict(
            client.query(
                f"SELECT reason, count() FROM {db}.dead_letters FINAL "
                f"WHERE positionUTF8(value, {{p:String}}) > 0 GROUP BY reason",
                {"p": prefix},
            ).result_rows
        )
    except Exception:  # the database is created by the worker's migration
        return {}
    return {"rows": rows, "unique": uniq, "duplicates": dups, "raw_rows": raw, **letters}


def test_reports_become_work_orders_exactly_once_across_a_crash(
    run: Settings, unique: str, tmp_path: Path
) -> None:
    prefix = f"E2E{unique}"
    events, expected = _batch(prefix)
    half = len(events) // 2
    worker = WorkerProcess(run, tmp_path / "worker.log")
    with EventProducer(run) as producer:
        for event in events[:half]:
            producer.send(contracts.REPORT, event)
        producer.produce_raw(contracts.REPORT, b"not avro at all", key=f"{prefix}-junk".encode())
    worker.start().wait_ready()
    wait_for(lambda: _counts(run, prefix).get("rows", 0) > 0, 60, "the first rows")
    worker.kill()  # mid-stream: some batches inserted, offsets maybe not committed
    with EventProducer(run) as producer:
        for event in events[half:]:
            producer.send(contracts.REPORT, event)
    worker.start().wait_ready()
    try:
        wait_for(
            lambda: (
                _counts(run, prefix).get("rows") == expected["rows"]
                and _counts(run, prefix).get("empty_description") == expected["empty_description"]
            ),
            120,
            "every report in ClickHouse",
        )
    finally:
        worker.stop()
    counts = _counts(run, prefix)
    assert counts["rows"] == counts["unique"] == expected["rows"]
    assert counts["duplicates"] == expected["duplicates"]
    assert counts["unknown_region"] == expected["unknown_region"]
    assert counts["empty_description"] == expected["empty_description"]
    assert "Traceback" not in worker.log_text()


def test_no_raw_personal_data_reaches_clickhouse_or_logs(
    run: Settings, unique: str, tmp_path: Path
) -> None:
    prefix = f"PII{unique}"
    villages = divisions.villages_under("430602")
    events = [_report(prefix, i, villages[i]) for i in range(20)]
    events.append(_report(prefix, 99, villages[0], region_code="439999999999"))
    worker = WorkerProcess(run, tmp_path / "worker.log", loglevel="debug")
    with worker:
        worker.wait_ready()
        with EventProducer(run) as producer:
            for event in events:
                producer.send(contracts.REPORT, event)
        wait_for(lambda: _counts(run, prefix).get("rows") == 20, 90, "20 rows")
        wait_for(lambda: _counts(run, prefix).get("unknown_region") == 1, 30, "the dead letter")
    client = get_client(run)
    db = run.clickhouse_database
    for table in ("reports", "dead_letters", "work_order_events"):
        columns = [r[0] for r in client.query(f"DESCRIBE TABLE {db}.{table}").result_rows]
        text = " || ".join(f"toString({c})" for c in columns)
        hits = client.command(
            f"SELECT count() FROM {db}.{table} WHERE positionUTF8({text}, {{a:String}}) > 0 "
            f"OR positionUTF8({text}, {{b:String}}) > 0",
            parameters={"a": RAW_PHONE, "b": RAW_ID},
        )
        assert hits == 0, f"raw personal data in {db}.{table}"
    log = worker.log_text()
    assert RAW_PHONE not in log and RAW_ID not in log
    assert "139****1234" in client.command(
        f"SELECT any(description) FROM {db}.reports WHERE startsWith(report_id, {{p:String}})",
        parameters={"p": prefix},
    )
