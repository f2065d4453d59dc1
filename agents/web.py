"""Worker web pages: ``/metrics`` (Prometheus text), ``/metrics.json`` and ``/health``.

``/health`` answers 200 only when the broker, the schema registry and ClickHouse answer
their protocols, 503 otherwise (with the detail of each). A timer refreshes the consumer-lag
gauges of the app's own group every ``LAG_INTERVAL_S`` seconds.
"""

from __future__ import annotations

import asyncio
import logging

from faust import web

from agents.app import app, settings
from pipelines import lag, metrics

log = logging.getLogger("govstream.agents.web")

LAG_INTERVAL_S = 10.0
_tracker = lag.LagTracker(window=6)


@app.page("/metrics")
async def metrics_page(self: web.View, request: web.Request) -> web.Response:
    return self.bytes(metrics.exposition(), headers={"Content-Type": metrics.CONTENT_TYPE})


@app.page("/metrics.json")
async def metrics_json_page(self: web.View, request: web.Request) -> web.Response:
    return self.json(metrics.snapshot())


@app.page("/health")
async def health_page(self: web.View, request: web.Request) -> web.Response:
    healthy, report = await asyncio.to_thread(metrics.health_report, settings)
    return self.json(report, status=200 if healthy else 503)


def _observe_lag() -> None:
    group = settings.app_id
    observed, members = lag.observe_groups(settings, [group])
    _tracker.observe(group, observed.get(group, {}), members.get(group))
    metrics.record_lag([_tracker.report(group)])


@app.timer(interval=LAG_INTERVAL_S)
async def refresh_lag() -> None:
    try:
        await asyncio.to_thread(_observe_lag)
    except Exception as exc:  # a monitoring hiccup never stops the worker
        log.warning("consumer lag not refreshed: %s", exc)
