"""The operators' dashboard: a rolling history of the worker's metrics and the work-order summary.

The worker samples its own Prometheus registry every ``SAMPLE_INTERVAL_S`` seconds into a
``History`` (a ring buffer); ``/dashboard/history.json`` turns it into time series (events in
and out per second, dead letters per reason, mean sink insert latency, lag per partition) and the
page (``pipelines/data/dashboard/``) draws them as SVG, polling every 2 s. Opening the page shows
the last ``capacity`` samples at once, not only what happens after it was opened.
``/dashboard/summary.json`` reads the work-order summary from ClickHouse as the analyst user,
and with it the analyst page's figures (:func:`analyst_figures`, at most every
``ANALYST_REFRESH_S`` seconds): the 三率 per department and the current hotspots (issue 19).

**The analyst page** is the same page opened as ``/dashboard#analyst`` (``dashboard.js`` shows
the analyst view for that fragment, or for a path ending in ``/analyst``): a table of the 三率
per department over every order so far (gov.kpi_by_department) and one of the hotspots of the
window ending today (gov.hotspots), refreshed with the summary.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from importlib import resources
from typing import Any

from pipelines import closedloop
from pipelines.clickhouse import check_identifier, get_client
from pipelines.settings import Settings

SAMPLE_INTERVAL_S = 2.0
CAPACITY = 300  # 10 minutes at 2 s

#: the page's files: name → content type
ASSETS = {
    "index.html": "text/html",
    "dashboard.js": "text/javascript",
    "dashboard.css": "text/css",
}


def asset(name: str) -> bytes:
    """One file of the page (package data under ``pipelines/data/dashboard/``)."""
    if name not in ASSETS:
        raise KeyError(name)
    return (resources.files("pipelines") / "data" / "dashboard" / name).read_bytes()


@dataclass(frozen=True)
class Sample:
    """Cumulative totals read off the registry at one moment."""

    at: float
    events_in: float = 0.0
    events_out: float = 0.0
    dead_letters: Mapping[str, float] = field(default_factory=dict)
    insert_seconds_sum: float = 0.0
    insert_count: float = 0.0
    lag: Mapping[str, float] = field(default_factory=dict)


def _samples(snapshot: Mapping[str, Any], family: str) -> list[dict[str, Any]]:
    return list(snapshot.get(family, []))


def sample_of(snapshot: Mapping[str, Any], at: float) -> Sample:
    """Totals of a ``metrics.snapshot()`` (family → samples with name, labels, value)."""

    def total(family: str, suffix: str) -> float:
        return float(
            sum(s["value"] for s in _samples(snapshot, family) if s["name"] == family + suffix)
        )

    dead: dict[str, float] = {}
    for s in _samples(snapshot, "govstream_dead_letters"):
        if s["name"] == "govstream_dead_letters_total":
            reason = str(s["labels"].get("reason", ""))
            dead[reason] = dead.get(reason, 0.0) + float(s["value"])
    lag: dict[str, float] = {}
    for s in _samples(snapshot, "govstream_consumer_lag"):
        labels = s["labels"]
        lag[f"{labels.get('topic')}[{labels.get('partition')}]"] = float(s["value"])
    return Sample(
        at=at,
        events_in=total("govstream_events_in", "_total"),
        events_out=total("govstream_events_out", "_total"),
        dead_letters=dead,
        insert_seconds_sum=total("govstream_sink_insert_seconds", "_sum"),
        insert_count=total("govstream_sink_insert_seconds", "_count"),
        lag=lag,
    )


Point = tuple[float, float]


class History:
    """The last ``capacity`` samples, and the series the page draws from them."""

    def __init__(self, capacity: int = CAPACITY) -> None:
        self._samples: deque[Sample] = deque(maxlen=capacity)

    def __len__(self) -> int:
        return len(self._samples)

    def add(self, sample: Sample) -> None:
        if self._samples and sample.at <= self._samples[-1].at:
            return  # clocks do not go back; a repeated sample adds nothing
        self._samples.append(sample)

    def series(self) -> dict[str, Any]:
        """{"throughput": {"in": [[t, /s]], "out": …}, "dead_letters": {reason: [[t, n]]},
        "insert_latency_ms": {"mean": [[t, ms]]}, "lag": {"topic[p]": [[t, records]]}}.

        Rates and the mean latency are per interval between two samples (a counter reset, when
        the worker restarts, counts from zero); dead letters and lag are the values at each
        sample. Times are Unix seconds.
        """
        samples = list(self._samples)
        rate_in: list[Point] = []
        rate_out: list[Point] = []
        latency: list[Point] = []
        for prev, cur in zip(samples, samples[1:], strict=False):
            dt = cur.at - prev.at
            rate_in.append((cur.at, _delta(cur.events_in, prev.events_in) / dt))
            rate_out.append((cur.at, _delta(cur.events_out, prev.events_out) / dt))
            inserts = _delta(cur.insert_count, prev.insert_count)
            if inserts > 0:
                seconds = _delta(cur.insert_seconds_sum, prev.insert_seconds_sum)
                latency.append((cur.at, 1000.0 * seconds / inserts))
        reasons = sorted({r for s in samples for r in s.dead_letters})
        partitions = sorted({p for s in samples for p in s.lag}, key=_partition_order)
        return {
            "interval_s": SAMPLE_INTERVAL_S,
            "throughput": {"in": rate_in, "out": rate_out},
            "dead_letters": {
                r: [(s.at, s.dead_letters.get(r, 0.0)) for s in samples] for r in reasons
            },
            "insert_latency_ms": {"mean": latency},
            "lag": {p: [(s.at, s.lag[p]) for s in samples if p in s.lag] for p in partitions},
            "totals": _totals(samples[-1]) if samples else {},
        }


def _delta(cur: float, prev: float) -> float:
    return cur - prev if cur >= prev else cur


def _partition_order(key: str) -> tuple[str, int]:
    topic, _, rest = key.partition("[")
    try:
        return topic, int(rest.rstrip("]"))
    except ValueError:
        return topic, -1


def _totals(s: Sample) -> dict[str, float]:
    return {
        "events_in": s.events_in,
        "events_out": s.events_out,
        "dead_letters": sum(s.dead_letters.values()),
        "inserts": s.insert_count,
    }


SUMMARY_SQL = (
    "SELECT count() AS total, countIf(is_open) AS open, countIf(is_overdue) AS overdue, "
    "countIf(state = 'closed') AS closed, countIf(state = 'cancelled') AS cancelled "
    "FROM {db:Identifier}.work_orders_now"
)


def work_order_summary(settings: Settings) -> dict[str, Any]:
    """Work orders now: total, open, overdue, closed, cancelled (the analyst user reads them),
    and under ``analyst`` the analyst page's figures (:func:`cached_analyst_figures`; an
    ``error`` there when they cannot be read, the counts still answer)."""
    database = check_identifier(settings.clickhouse_database)
    client = get_client(settings, analyst=True)
    try:
        result = client.query(SUMMARY_SQL, parameters={"db": database})
        names = result.column_names
        row = result.result_rows[0]
    finally:
        client.close()
    summary: dict[str, Any] = {name: int(value) for name, value in zip(names, row, strict=True)}
    try:
        summary["analyst"] = cached_analyst_figures(settings)
    except Exception as exc:  # a database migrated before 0013, ClickHouse busy: say so
        summary["analyst"] = {"error": str(exc)[:300]}
    return summary


#: the analyst figures are read again at most this often (the page polls every 2 s)
ANALYST_REFRESH_S = 10.0
_analyst_cache: dict[tuple[str, str], tuple[float, dict[str, Any]]] = {}
_analyst_lock = threading.Lock()


def cached_analyst_figures(settings: Settings, *, now: float | None = None) -> dict[str, Any]:
    """:func:`analyst_figures`, read again only when the last read of the same ClickHouse and
    database is older than :data:`ANALYST_REFRESH_S`."""
    key = (settings.clickhouse_url, settings.clickhouse_database)
    at = time.monotonic() if now is None else now
    with _analyst_lock:
        cached = _analyst_cache.get(key)
        if cached is not None and at - cached[0] < ANALYST_REFRESH_S:
            return cached[1]
    figures = analyst_figures(settings)
    with _analyst_lock:
        _analyst_cache[key] = (at, figures)
    return figures


def analyst_figures(settings: Settings) -> dict[str, Any]:
    """The analyst page's figures, read as the analyst user (:mod:`pipelines.closedloop`):
    ``departments`` (department, the counts behind the 三率 and the three rates, most orders
    first), ``totals`` (the same over every department), ``hotspots`` (gov.hotspots of the
    window ending ``today``, the server's date) — JSON-ready."""
    database = check_identifier(settings.clickhouse_database)
    client = get_client(settings, analyst=True)
    try:
        departments = closedloop.department_rates(client, database)
        today = closedloop.today(client)
        hotspots = closedloop.hotspots(client, database, today)
    finally:
        client.close()
    total = {c: sum(int(k[c]) for k in departments.values()) for c in closedloop.KPI_COUNTS}
    return {
        "today": today.isoformat(),
        "departments": [{"department": d, **k} for d, k in departments.items()],
        "totals": {**total, **closedloop.rates(total)},
        "hotspots": [{k: _jsonable(v) for k, v in h.items()} for h in hotspots],
    }


def _jsonable(value: Any) -> Any:
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and value != value:  # NaN
        return None
    return value
