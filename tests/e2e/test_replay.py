"""``govstream replay`` on a real worker's group adds no rows.

A worker processes a simulated province's reports to completion (reconciled against the
manifest) and stops. On Tansu its aiokafka member stays listed after the shutdown, so a plain
replay is refused; ``--remove-members`` makes the stopped member leave, then the group's report
offsets go back to where this run started and a second worker processes every event again.
ClickHouse must hold exactly what the manifest says, once (``FINAL`` counts = distinct keys).
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from pipelines import clickhouse, contracts, kafka_admin, lag, reconcile, simulator
from pipelines.producer import EventProducer
from pipelines.settings import Settings
from pipelines.workerproc import WorkerProcess
from tests.conftest import wait_for
from tests.e2e.conftest import positioned_run
from tests.integration.test_stack import run_cli

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

KEYS = {
    "reports": "report_id",
    "work_order_events": "event_id",
    "dead_letters": "(source_topic, source_partition, source_offset)",
}


@pytest.fixture
def run(stack: Settings, unique: str) -> Iterator[tuple[Settings, dict[lag.TopicPart, int]]]:
    """A worker's settings (own group at the end of every topic), and where it starts."""
    settings, start = positioned_run(stack, "replay", unique)
    yield settings, start
    clickhouse.get_client(stack).command(f"DROP DATABASE IF EXISTS {settings.clickhouse_database}")


def _tables(settings: Settings) -> dict[str, tuple[int, int, int]]:
    """{table: (count() FINAL, distinct keys, raw count())}."""
    client = clickhouse.get_client(settings)
    db = settings.clickhouse_database
    out = {}
    for table, key in KEYS.items():
        final, distinct = client.query(
            f"SELECT count(), uniqExact({key}) FROM {db}.{table} FINAL"
        ).result_rows[0]
        raw = client.query(f"SELECT count() FROM {db}.{table}").result_rows[0][0]
        out[table] = (int(final), int(distinct), int(raw))
    return out


def _report_events_in(settings: Settings) -> float:
    url = f"http://127.0.0.1:{settings.worker_web_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as answer:  # noqa: S310 - loopback only
        text = answer.read().decode()
    return sum(
        s.value
        for f in text_string_to_metric_families(text)
        if f.name == "govstream_events_in"
        for s in f.samples
        if s.name == "govstream_events_in_total" and s.labels["topic"] == contracts.REPORT
    )


def test_replay_of_a_stopped_worker_group_adds_no_rows(
    run: tuple[Settings, dict[lag.TopicPart, int]], tmp_path: Path
) -> None:
    settings, start = run
    config = simulator.SimConfig(
        seed=11, reports=250, forms=0, warnings=0, region="43", minutes=24 * 60
    )
    now = datetime.now(UTC)
    events = simulator.generate(config, now=now)
    expected = reconcile.expected_from(simulator.manifest(events, config, now=now))
    report_events = sum(1 for e in events if e.topic == contracts.REPORT)
    client = clickhouse.get_client(settings)
    db = settings.clickhouse_database

    worker = WorkerProcess(settings, tmp_path / "worker.log")
    worker.start().wait_ready()
    try:
        with EventProducer(settings) as producer:
            simulator.send(events, producer)
        _, problems = reconcile.wait_reconciled(
            client, db, reconcile.Counts(), expected, timeout=180
        )
        assert not problems, problems
        report_parts = [(t, p) for (t, p) in start if t == contracts.REPORT]
        end = kafka_admin.log_end_offsets(settings, report_parts)
        wait_for(
            lambda: all(kafka_admin.committed_offsets(settings, settings.app_id).get(tp) == end[tp]
                        for tp in report_parts),
            60,
            "the first run's commits",
        )  # fmt: skip
    finally:
        worker.stop()
    first = _tables(settings)
    assert all(final == distinct for final, distinct, _ in first.values()), first

    group, args = settings.app_id, ["--topic", contracts.REPORT, "--yes"]
    to_start = [f"--to-offset={p}:{start[(t, p)]}" for (t, p) in report_parts]
    refused = run_cli(settings, "replay", "--group", group, *args, *to_start)
    if refused.returncode != 0:  # Tansu: the stopped worker is still listed as a member
        assert refused.returncode == 1 and "--remove-members" in refused.stderr, refused.stderr
    done = run_cli(settings, "replay", "--group", group, *args, *to_start, "--remove-members")
    assert done.returncode == 0, done.stderr
    assert kafka_admin.live_members(settings, [group]) == {group: 0}
    committed = kafka_admin.committed_offsets(settings, group)
    assert {tp: committed[tp] for tp in report_parts} == {tp: start[tp] for tp in report_parts}

    again = WorkerProcess(settings, tmp_path / "worker-again.log")
    again.start().wait_ready()
    try:
        wait_for(lambda: _report_events_in(settings) >= report_events, 180, "the replayed events")
        wait_for(
            lambda: all(kafka_admin.committed_offsets(settings, group).get(tp) == end[tp]
                        for tp in report_parts),
            60,
            "the replay's commits",
        )  # fmt: skip
        replayed = _report_events_in(settings)
    finally:
        again.stop()
    # every event went through the pipeline again; a rebalance while the worker starts may
    # hand it some of them twice, which the idempotent sink absorbs (checked below)
    assert replayed >= report_events
    _, problems = reconcile.wait_reconciled(client, db, reconcile.Counts(), expected, timeout=5)
    assert not problems, problems
    second = _tables(settings)
    for table, (final, distinct, raw) in second.items():
        assert final == distinct == first[table][0], (table, first[table], second[table])
        assert raw >= final
    print(json.dumps({"first": first, "after_replay": second}))
    assert "Traceback" not in again.log_text()
