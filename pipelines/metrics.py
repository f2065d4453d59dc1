"""Prometheus metrics of the worker (served at ``/metrics`` by ``agents/web.py``).

One registry of our own (not the process-global default), so tests and other libraries do
not mix in. The names follow Prometheus conventions: ``_total`` counters, ``_seconds``
histograms, base units.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Iterable, Mapping, Sized
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from pipelines import topics
from pipelines.lag import GroupReport
from pipelines.settings import Settings

REGISTRY = CollectorRegistry(auto_describe=True)
CONTENT_TYPE = CONTENT_TYPE_LATEST

EVENTS_IN = Counter(
    "govstream_events_in",
    "Events an agent read from its source topic.",
    ["agent", "topic"],
    registry=REGISTRY,
)
EVENTS_OUT = Counter(
    "govstream_events_out",
    "Rows an agent handed to the sink, per table.",
    ["agent", "table"],
    registry=REGISTRY,
)
DEAD_LETTERS = Counter(
    "govstream_dead_letters",
    "Events sent to the dead-letter topic, per agent and reason code.",
    ["agent", "reason"],
    registry=REGISTRY,
)
CLASSIFIED = Counter(
    "govstream_classified",
    "Reports classified, per taxonomy category code.",
    ["category"],
    registry=REGISTRY,
)
SINK_BATCH_ROWS = Histogram(
    "govstream_sink_batch_rows",
    "Rows per ClickHouse insert, per table.",
    ["table"],
    buckets=(1, 10, 50, 100, 250, 500, 1000, 2000, 5000, 10000, 50000),
    registry=REGISTRY,
)
SINK_INSERT_SECONDS = Histogram(
    "govstream_sink_insert_seconds",
    "Duration of a successful ClickHouse batch insert (all tables of a batch).",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)
SINK_RETRIES = Counter(
    "govstream_sink_insert_retries",
    "ClickHouse inserts that failed and were retried.",
    registry=REGISTRY,
)
SINK_REFUSED_ROWS = Counter(
    "govstream_sink_refused_rows",
    "Rows ClickHouse refused for good (found by splitting the batch), per table: dead-lettered "
    "as rejected_by_clickhouse (pipelines/sink.py).",
    ["table"],
    registry=REGISTRY,
)
CONSUMER_JUMPS = Counter(
    "govstream_consumer_offset_jumps",
    "Records that arrived past the partition's next offset: re-fetched from it (refetched) "
    "or, when fresh fetches agreed, the missing offsets taken as a real gap (gap).",
    ["topic", "outcome"],
    registry=REGISTRY,
)
END_TO_END_SECONDS = Histogram(
    "govstream_end_to_end_latency_seconds",
    "From the event's own timestamp to its rows being in ClickHouse.",
    ["agent"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 1800, 3600),
    registry=REGISTRY,
)
CONSUMER_LAG = Gauge(
    "govstream_consumer_lag",
    "Records between the group's committed offset and the log end.",
    ["group", "topic", "partition"],
    registry=REGISTRY,
)
CONSUMER_LAG_SEVERITY = Gauge(
    "govstream_consumer_lag_severity",
    "Lag status severity per partition: 0 OK, 1 WARN, 2 STALL/STOP/REWIND, 3 ERR.",
    ["group", "topic", "partition"],
    registry=REGISTRY,
)
AGENT_PROGRESS = Gauge(
    "govstream_agent_last_progress_timestamp_seconds",
    "Unix time an agent last acknowledged a batch (its rows in ClickHouse).",
    ["agent"],
    registry=REGISTRY,
)

#: input topic (or the end of its name) → the agent that consumes it (for /health: is the agent
#: of a lagging topic moving?)
AGENT_OF_TOPIC = {
    "report": "process_reports",
    "report-routed": "link_work_orders",
    "form-submission": "process_forms",
    "alert": "process_alerts",
    # the repeat-complaint hops (agents/reports.py), named <app id>-<suffix>
    f"-{topics.PERSON_COMPLAINTS}": "find_repeats",
    f"-{topics.REPEAT_OF}": "mark_repeats",
}
_started = time.monotonic()
_progress: dict[str, float] = {}  # agent → time.monotonic() of its last acknowledged batch


def progressed(agent: str) -> None:
    """An agent acknowledged a batch: it is consuming."""
    _progress[agent] = time.monotonic()
    AGENT_PROGRESS.labels(agent).set(time.time())


def stalled_agents(
    lag_by_topic: Mapping[str, int],
    progress: Mapping[str, float],
    *,
    now: float,
    started: float,
    stall_after_s: float,
) -> list[str]:
    """Agents that have records waiting (lag > 0 on their input topic) and have not
    acknowledged a batch for ``stall_after_s`` seconds (counting from ``started`` when they
    never did). Times are ``time.monotonic()`` seconds. Sorted."""
    stalled = set()
    for topic, lag in lag_by_topic.items():
        agent = next((a for t, a in AGENT_OF_TOPIC.items() if topic.endswith(t)), None)
        if agent is None or lag <= 0:
            continue
        if now - progress.get(agent, started) > stall_after_s:
            stalled.add(agent)
    return sorted(stalled)


def stalled_now(lag_by_topic: Mapping[str, int], stall_after_s: float) -> list[str]:
    """:func:`stalled_agents` of this process's agents, now."""
    return stalled_agents(
        lag_by_topic, _progress, now=time.monotonic(), started=_started,
        stall_after_s=stall_after_s,
    )  # fmt: skip


def token_ok(authorization: str | None, token: str) -> bool:
    """Whether an ``Authorization`` header value carries the worker's web token (always true
    when no token is set). Constant-time comparison (hmac.compare_digest)."""
    if not token:
        return True
    scheme, _, given = (authorization or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip(), token)


def exposition() -> bytes:
    """The registry in the Prometheus text format."""
    return bytes(generate_latest(REGISTRY))


def record_lag(reports: Iterable[GroupReport]) -> None:
    """Set the lag gauges from evaluated groups."""
    for report in reports:
        for p in report.partitions:
            labels = (p.group, p.topic, str(p.partition))
            if p.lag is not None:
                CONSUMER_LAG.labels(*labels).set(p.lag)
            CONSUMER_LAG_SEVERITY.labels(*labels).set(p.status.severity)


def snapshot() -> dict[str, Any]:
    """Every sample as JSON: {metric family: [{"name", "labels", "value"}]} (for the page)."""
    out: dict[str, Any] = {}
    for family in REGISTRY.collect():
        out[family.name] = [
            {"name": s.name, "labels": dict(s.labels), "value": s.value} for s in family.samples
        ]
    return out


def health_report(
    settings: Settings, timeout: float = 2.0, stalled: Iterable[str] = ()
) -> tuple[bool, dict[str, Any]]:
    """Whether the broker, the registry and ClickHouse all answer (their real protocols) and
    no agent of this worker is stalled (``stalled``: see :func:`stalled_now`)."""
    from pipelines.probes import probe

    services: dict[str, Any] = {}
    for name in ("kafka", "registry", "clickhouse"):
        ok, detail = probe(name, settings, timeout)
        services[name] = {"healthy": ok, "detail": detail[:200]}
    stalled = sorted(stalled)
    healthy = all(s["healthy"] for s in services.values()) and not stalled
    return healthy, {"healthy": healthy, "services": services, "stalled_agents": stalled}


def record_written(agent: str, rows: Mapping[str, Sized], timestamps: Iterable[float]) -> None:
    """After a sink write: rows out per table, and end-to-end latency of each source event
    (from its Kafka record timestamp, in seconds, to now)."""
    for table, table_rows in rows.items():
        EVENTS_OUT.labels(agent, table).inc(len(table_rows))
    now = time.time()
    histogram = END_TO_END_SECONDS.labels(agent)
    for ts in timestamps:
        if ts:
            histogram.observe(max(0.0, now - ts))
