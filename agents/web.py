"""Worker web pages: ``/metrics`` (Prometheus text), ``/metrics.json``, ``/health`` and the
operators' ``/dashboard`` (its history and work-order summary as JSON).

``/health`` answers 200 only when the broker, the schema registry and ClickHouse answer
their protocols and no agent is stalled (records waiting on its input topic and no batch
acknowledged for ``GOVSTREAM_STALL_AFTER_S``), 503 otherwise (with the detail of each). A
timer refreshes the consumer-lag gauges of the app's own group every ``LAG_INTERVAL_S``
seconds.

With ``GOVSTREAM_WORKER_WEB_TOKEN`` set, every page answers 401 unless the request carries
``Authorization: Bearer <token>`` (compared in constant time); Faust's own pages (tables,
router, graph, stats) are off (agents/app.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from faust import web

from agents.app import app, settings
from pipelines import dashboard, kafka_admin, lag, metrics

log = logging.getLogger("govstream.agents.web")

LAG_INTERVAL_S = 10.0
_tracker = lag.LagTracker(window=6)
_history = dashboard.History()

Handler = Callable[[web.View, web.Request], Awaitable[web.Response]]


def page(path: str) -> Callable[[Handler], Handler]:
    """``app.page(path)`` behind the web token (see the module doc)."""

    def register(handler: Handler) -> Handler:
        async def guarded(self: web.View, request: web.Request) -> web.Response:
            if not metrics.token_ok(
                request.headers.get("Authorization"), settings.worker_web_token
            ):
                return self.json({"error": "unauthorized"}, status=401)
            return await handler(self, request)

        guarded.__name__ = guarded.__qualname__ = handler.__name__
        app.page(path)(guarded)
        return handler

    return register


@page("/metrics")
async def metrics_page(self: web.View, request: web.Request) -> web.Response:
    return self.bytes(metrics.exposition(), headers={"Content-Type": metrics.CONTENT_TYPE})


@page("/metrics.json")
async def metrics_json_page(self: web.View, request: web.Request) -> web.Response:
    return self.json(metrics.snapshot())


@page("/health")
async def health_page(self: web.View, request: web.Request) -> web.Response:
    stalled = metrics.stalled_now(_lag_by_topic(), settings.stall_after_s)
    healthy, report = await asyncio.to_thread(metrics.health_report, settings, stalled=stalled)
    return self.json(report, status=200 if healthy else 503)


def _lag_by_topic() -> dict[str, int]:
    """Records waiting per input topic of this app's group, as last observed."""
    out: dict[str, int] = {}
    for p in _tracker.report(settings.app_id).partitions:
        out[p.topic] = out.get(p.topic, 0) + max(0, p.lag or 0)
    return out


def _observe_lag() -> None:
    group = settings.app_id
    observed, members = kafka_admin.observe_groups(settings, [group])
    _tracker.observe(group, observed.get(group, {}), members.get(group))
    metrics.record_lag([_tracker.report(group)])


@app.timer(interval=LAG_INTERVAL_S)
async def refresh_lag() -> None:
    try:
        await asyncio.to_thread(_observe_lag)
    except Exception as exc:  # a monitoring hiccup never stops the worker
        log.warning("consumer lag not refreshed: %s", exc)


@page("/dashboard")
async def dashboard_page(self: web.View, request: web.Request) -> web.Response:
    return self.bytes(dashboard.asset("index.html"), content_type=dashboard.ASSETS["index.html"])


@page("/dashboard/dashboard.js")
async def dashboard_js(self: web.View, request: web.Request) -> web.Response:
    return self.bytes(
        dashboard.asset("dashboard.js"), content_type=dashboard.ASSETS["dashboard.js"]
    )


@page("/dashboard/dashboard.css")
async def dashboard_css(self: web.View, request: web.Request) -> web.Response:
    return self.bytes(
        dashboard.asset("dashboard.css"), content_type=dashboard.ASSETS["dashboard.css"]
    )


@page("/dashboard/history.json")
async def dashboard_history(self: web.View, request: web.Request) -> web.Response:
    return self.json(_history.series())


@page("/dashboard/summary.json")
async def dashboard_summary(self: web.View, request: web.Request) -> web.Response:
    try:
        summary = await asyncio.to_thread(dashboard.work_order_summary, settings)
    except Exception as exc:  # ClickHouse away: the page shows the error, the worker goes on
        return self.json({"error": str(exc)[:300]}, status=503)
    return self.json(summary)


@app.timer(interval=dashboard.SAMPLE_INTERVAL_S)
async def sample_metrics() -> None:
    _history.add(dashboard.sample_of(metrics.snapshot(), time.time()))
