"""The worker's /metrics exposition parses as Prometheus text and carries what was counted."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any, cast

import pytest
from prometheus_client.parser import text_string_to_metric_families

from pipelines import metrics, topicread, topics
from pipelines.lag import LagTracker, Observation
from pipelines.settings import Settings
from pipelines.sink import Batch, ClickHouseSink, TableSpec, record_identity
from tests.conftest import free_port

pytestmark = pytest.mark.unit


def samples() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = metrics.exposition().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(name: str, **labels: str) -> float:
    return samples().get((name, tuple(sorted(labels.items()))), 0.0)


def test_exposition_parses_and_counts() -> None:
    before_in = value("govstream_events_in_total", agent="t_agent", topic="report")
    before_dead = value("govstream_dead_letters_total", agent="t_agent", reason="bad_avro")
    metrics.EVENTS_IN.labels("t_agent", "report").inc(3)
    metrics.EVENTS_OUT.labels("t_agent", "reports").inc(2)
    metrics.DEAD_LETTERS.labels("t_agent", "bad_avro").inc()
    metrics.CLASSIFIED.labels("T_CAT").inc()
    metrics.SINK_BATCH_ROWS.labels("t_table").observe(120)
    metrics.SINK_INSERT_SECONDS.observe(0.2)
    metrics.SINK_RETRIES.inc()
    metrics.END_TO_END_SECONDS.labels("t_agent").observe(1.5)

    assert value("govstream_events_in_total", agent="t_agent", topic="report") == before_in + 3
    assert (
        value("govstream_dead_letters_total", agent="t_agent", reason="bad_avro") == before_dead + 1
    )
    assert value("govstream_classified_total", category="T_CAT") >= 1
    assert value("govstream_sink_batch_rows_count", table="t_table") >= 1
    assert value("govstream_sink_batch_rows_bucket", table="t_table", le="250.0") >= 1
    assert value("govstream_end_to_end_latency_seconds_count", agent="t_agent") >= 1
    names = {
        family.name for family in text_string_to_metric_families(metrics.exposition().decode())
    }
    assert {
        "govstream_events_in",
        "govstream_events_out",
        "govstream_dead_letters",
        "govstream_classified",
        "govstream_sink_batch_rows",
        "govstream_sink_insert_seconds",
        "govstream_sink_insert_retries",
        "govstream_end_to_end_latency_seconds",
        "govstream_consumer_lag",
        "govstream_consumer_lag_severity",
    } <= names


def test_lag_gauges_follow_the_evaluated_report() -> None:
    tracker = LagTracker(window=2)
    for at in (0.0, 1.0):
        tracker.observe("t_group", {("t_topic", 3): Observation(at, 10, 50)}, members=0)
    metrics.record_lag([tracker.report("t_group")])
    labels = {"group": "t_group", "topic": "t_topic", "partition": "3"}
    assert value("govstream_consumer_lag", **labels) == 40
    assert value("govstream_consumer_lag_severity", **labels) == 2  # STOP


def test_snapshot_is_json_of_the_same_samples() -> None:
    metrics.EVENTS_IN.labels("t_snap", "alert").inc()
    snap = metrics.snapshot()
    rows = snap["govstream_events_in"]
    assert any(r["labels"] == {"agent": "t_snap", "topic": "alert"} for r in rows)


def test_health_is_false_when_nothing_answers() -> None:
    dead = Settings(
        kafka_bootstrap=f"127.0.0.1:{free_port()}",
        schema_registry_url=f"http://127.0.0.1:{free_port()}",
        clickhouse_url=f"http://127.0.0.1:{free_port()}",
    )
    healthy, report = metrics.health_report(dead, timeout=0.5)
    assert healthy is False
    assert set(report["services"]) == {"kafka", "registry", "clickhouse"}
    assert not any(s["healthy"] for s in report["services"].values())


class FlakyClient:
    """Fails the first insert, then accepts."""

    def __init__(self, failures: list[int]) -> None:
        self.failures = failures
        self.inserted: list[tuple[str, int]] = []

    def create_insert_context(self, table: str, columns: list[str]) -> Any:
        return SimpleNamespace(column_types=[f"type of {c}" for c in columns])

    def insert(self, table: str, rows: list[Any], **_: Any) -> None:
        if self.failures[0] > 0:
            self.failures[0] -= 1
            raise ConnectionError("clickhouse away")
        self.inserted.append((table, len(rows)))


def test_sink_records_retries_latency_and_batch_size() -> None:
    failures = [1]
    sink = ClickHouseSink(
        lambda: cast(Any, FlakyClient(failures)),
        "db",
        [TableSpec("t_sink_table", ("a",))],
        backoff_initial_s=0.001,
    )
    retries = value("govstream_sink_insert_retries_total")
    inserts = value("govstream_sink_insert_seconds_count")
    sized = value("govstream_sink_batch_rows_count", table="t_sink_table")
    batch = Batch()
    for i in range(7):
        batch.add("t_sink_table", (i,))
    sink.write_blocking(batch)
    assert value("govstream_sink_insert_retries_total") == retries + 1
    assert value("govstream_sink_insert_seconds_count") == inserts + 1
    assert value("govstream_sink_batch_rows_count", table="t_sink_table") == sized + 1
    assert value("govstream_sink_batch_rows_sum", table="t_sink_table") >= 7


def test_record_written_counts_rows_and_latency() -> None:
    out = value("govstream_events_out_total", agent="t_written", table="t_rows")
    seen = value("govstream_end_to_end_latency_seconds_count", agent="t_written")
    now = time.time()
    metrics.record_written("t_written", {"t_rows": [(1,), (2,), (3,)]}, [now - 2.0, now - 0.5])
    assert value("govstream_events_out_total", agent="t_written", table="t_rows") == out + 3
    assert value("govstream_end_to_end_latency_seconds_count", agent="t_written") == seen + 2
    assert value("govstream_end_to_end_latency_seconds_sum", agent="t_written") >= 2.5


def test_an_agent_with_records_waiting_and_no_progress_is_stalled() -> None:
    lags = {"report": 3, "govstream-report-routed": 0, "form-submission": 5, "alert": 0}
    progress = {"process_reports": 100.0, "process_forms": 10.0}
    stalled = metrics.stalled_agents(lags, progress, now=150.0, started=0.0, stall_after_s=60.0)
    assert stalled == ["process_forms"]  # reports moved 50 s ago; alerts have nothing waiting
    never = metrics.stalled_agents({"alert": 1}, {}, now=150.0, started=0.0, stall_after_s=60.0)
    assert never == ["process_alerts"]  # never acknowledged a batch since the start
    young = metrics.stalled_agents({"alert": 1}, {}, now=30.0, started=0.0, stall_after_s=60.0)
    assert young == []


def test_the_repeat_hops_have_their_agents() -> None:
    settings = Settings(app_id="govstream-x")
    hops = {topics.app_topic(settings, hop): 1 for hop in topics.APP_HOPS}
    assert set(hops) == {"govstream-x-person-complaints", "govstream-x-repeat-of"}
    stalled = metrics.stalled_agents(hops, {}, now=150.0, started=0.0, stall_after_s=60.0)
    assert stalled == ["find_repeats", "mark_repeats"]
    assert {topicread.kind_of(topic, settings) for topic in hops} == {"json"}


def test_the_deduplication_token_follows_the_records_not_only_their_offsets() -> None:
    def batch_of(*values: bytes) -> Batch:
        batch = Batch()
        for offset, value in enumerate(values):
            batch.saw("report", 0, offset, record_identity(b"k", value, 1.5))
        return batch

    assert batch_of(b"a", b"b").token("t") == batch_of(b"a", b"b").token("t")  # a retry
    assert batch_of(b"a", b"b").token("t") != batch_of(b"a", b"c").token("t")  # offsets reused
    assert batch_of(b"a", b"b").token("t") != batch_of(b"a", b"b").token("u")
    assert record_identity(b"k", b"v", 1.0) != record_identity(b"k", b"v", 2.0)
    assert record_identity(b"kv", b"", None) != record_identity(b"k", b"v", None)


def test_the_web_token_is_a_bearer_token_when_set() -> None:
    assert metrics.token_ok(None, "")  # no token set: open
    assert metrics.token_ok("Bearer abc", "abc")
    assert metrics.token_ok("bearer abc ", "abc")
    assert not metrics.token_ok(None, "abc")
    assert not metrics.token_ok("Bearer abd", "abc")
    assert not metrics.token_ok("Basic abc", "abc")
    assert not metrics.token_ok("abc", "abc")
