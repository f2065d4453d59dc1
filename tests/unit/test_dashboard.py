"""The dashboard's history: totals read off the metrics registry, series for the charts."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from pipelines import dashboard, metrics

pytestmark = pytest.mark.unit


def _registry_snapshot(events: int, dead: dict[str, int], inserts: list[float], lag: int):
    registry = CollectorRegistry()
    events_in = Counter("govstream_events_in", "", ["agent", "topic"], registry=registry)
    events_out = Counter("govstream_events_out", "", ["agent", "table"], registry=registry)
    letters = Counter("govstream_dead_letters", "", ["agent", "reason"], registry=registry)
    seconds = Histogram("govstream_sink_insert_seconds", "", registry=registry)
    gauge = Gauge("govstream_consumer_lag", "", ["group", "topic", "partition"], registry=registry)
    events_in.labels("reports", "report").inc(events)
    events_out.labels("reports", "reports").inc(events // 2)
    events_out.labels("reports", "work_order_events").inc(events // 2)
    for reason, n in dead.items():
        letters.labels("reports", reason).inc(n)
    for s in inserts:
        seconds.observe(s)
    gauge.labels("g", "report", "10").set(lag)
    gauge.labels("g", "report", "2").set(lag + 1)
    return {
        f.name: [{"name": s.name, "labels": dict(s.labels), "value": s.value} for s in f.samples]
        for f in registry.collect()
    }


def test_series_are_rates_latency_and_values_per_sample() -> None:
    history = dashboard.History()
    history.add(dashboard.sample_of(_registry_snapshot(0, {}, [], 50), at=100.0))
    history.add(dashboard.sample_of(_registry_snapshot(400, {"bad": 3}, [0.1, 0.3], 20), at=102.0))
    history.add(dashboard.sample_of(_registry_snapshot(400, {"bad": 3}, [0.1, 0.3], 0), at=104.0))
    history.add(dashboard.sample_of(_registry_snapshot(400, {"bad": 3}, [0.1, 0.3], 0), at=104.0))
    assert len(history) == 3  # a sample at the same time adds nothing
    s = history.series()
    assert s["throughput"]["in"] == [(102.0, 200.0), (104.0, 0.0)]
    assert s["throughput"]["out"] == [(102.0, 200.0), (104.0, 0.0)]
    assert s["insert_latency_ms"]["mean"] == [(102.0, pytest.approx(200.0))]  # no insert later
    assert s["dead_letters"] == {"bad": [(100.0, 0.0), (102.0, 3.0), (104.0, 3.0)]}
    assert list(s["lag"]) == ["report[2]", "report[10]"]  # partitions in numeric order
    assert s["lag"]["report[10]"] == [(100.0, 50.0), (102.0, 20.0), (104.0, 0.0)]
    assert s["totals"] == {
        "events_in": 400.0,
        "events_out": 400.0,
        "dead_letters": 3.0,
        "inserts": 2.0,
    }


def test_a_restarted_counter_counts_from_zero_and_the_buffer_is_bounded() -> None:
    history = dashboard.History(capacity=2)
    history.add(dashboard.Sample(at=1.0, events_in=1000.0))
    history.add(dashboard.Sample(at=2.0, events_in=10.0))  # the worker restarted
    assert history.series()["throughput"]["in"] == [(2.0, 10.0)]
    history.add(dashboard.Sample(at=3.0, events_in=30.0))
    assert len(history) == 2
    assert history.series()["throughput"]["in"] == [(3.0, 20.0)]


def test_the_real_registry_snapshot_is_understood() -> None:
    before = dashboard.sample_of(metrics.snapshot(), at=1.0)
    metrics.EVENTS_IN.labels("test-dashboard", "report").inc(5)
    metrics.DEAD_LETTERS.labels("test-dashboard", "test_reason").inc(2)
    after = dashboard.sample_of(metrics.snapshot(), at=2.0)
    assert after.events_in - before.events_in == 5
    assert after.dead_letters["test_reason"] - before.dead_letters.get("test_reason", 0) == 2


def test_page_assets_are_packaged_and_load_nothing_from_outside() -> None:
    page = dashboard.asset("index.html").decode()
    assert '<script src="/dashboard/dashboard.js">' in page
    for name in dashboard.ASSETS:
        text = dashboard.asset(name).decode()
        assert "http://" not in text.replace("http://www.w3.org/2000/svg", "")
        assert "https://" not in text
    with pytest.raises(KeyError):
        dashboard.asset("../settings.py")
