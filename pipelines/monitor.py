"""`govstream monitor`: the operator's view that outlives a worker (issue 17, item 2).

The worker's own pages (``/health``, ``/metrics``, the dashboard; ``agents/web.py``) vanish with
it. The monitor is a separate small web server that looks from outside: every ``interval``
seconds a background thread takes one :class:`Observation` of

* the pipeline's consumer group (``GOVSTREAM_APP_ID``): committed offset, log end and lag of
  each of its input partitions, counted as ``govstream lag`` counts them (a partition with
  records and no commit has its whole content as lag: ``kafka_admin.observe_groups``), with
  the Burrow-style status of :mod:`pipelines.lag`;
* each worker registered in this home (``<home>/workers/*.json``), in the states ``govstream
  stack status`` gives (healthy, unhealthy, not answering, dead; :mod:`pipelines.workers`);
* the three services, by their protocols (:func:`pipelines.probes.probe`);

and the HTTP handlers only read the last observation, so they answer at once whether Kafka,
ClickHouse or every worker is down.

A partition is *stalled* when it has lag and its committed offset has not moved for
``stall_after_s`` seconds (counted from the monitor's first look at it), the rule the worker's
own ``/health`` applies to its agents (:func:`pipelines.metrics.stalled_agents`).
:func:`assess` turns an observation into a verdict: healthy only when Kafka answers, at least
one worker of the group is healthy and no partition is stalled. ``/health`` is 200 then and 503
with the reasons otherwise; an observation older than :func:`stale_after` seconds (the sampler
itself is stuck) is not healthy either.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import html
import json
import logging
import signal
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from pipelines import kafka_admin, lag, metrics, probes, workers
from pipelines.errors import ConfigError, GovstreamError, StackError
from pipelines.settings import Settings

log = logging.getLogger("govstream.monitor")

DEFAULT_PORT = 6067


@dataclass(frozen=True)
class PartitionView:
    """One input partition of the group as the monitor last saw it."""

    topic: str
    partition: int
    committed: int | None
    log_end: int | None
    lag: int | None
    status: str  # Burrow-style, pipelines.lag.Status
    reason: str
    since_progress_s: float  # seconds since the committed offset last moved (or lag was 0)
    stalled: bool


@dataclass(frozen=True)
class Verdict:
    healthy: bool
    verdict: str  # one line for people
    reasons: tuple[str, ...]


class ProgressClock:
    """When each partition last made progress: its committed offset moved or its lag was 0.

    Pure bookkeeping (the caller gives the time), so the stall rule is testable."""

    def __init__(self) -> None:
        self._seen: dict[lag.TopicPart, tuple[int | None, float]] = {}

    def update(
        self, tp: lag.TopicPart, committed: int | None, lag_: int | None, now: float
    ) -> float:
        """Record one look at ``tp``; the seconds since it last made progress (0 on the first
        look: the clock starts when the monitor does, as the worker's does)."""
        before = self._seen.get(tp)
        if before is None or lag_ == 0 or committed != before[0]:
            self._seen[tp] = (committed, now)
            return 0.0
        return max(0.0, now - before[1])


def partition_views(
    report: lag.GroupReport, clock: ProgressClock, now: float, stall_after_s: float
) -> list[PartitionView]:
    """The group's partitions with their progress clock read at ``now``."""
    views = []
    for p in report.partitions:
        idle = clock.update((p.topic, p.partition), p.committed, p.lag, now)
        stalled = (p.lag or 0) > 0 and idle >= stall_after_s
        views.append(
            PartitionView(
                p.topic,
                p.partition,
                p.committed,
                p.log_end,
                p.lag,
                p.status.value,
                p.reason,
                round(idle, 1),
                stalled,
            )  # fmt: skip
        )
    return views


def _where(p: PartitionView) -> str:
    return f"{p.topic}[{p.partition}]"


def assess(
    *,
    app_id: str,
    kafka: tuple[bool, str],
    lag_error: str | None,
    partitions: Sequence[PartitionView],
    workers_: Sequence[workers.WorkerStatus],
) -> Verdict:
    """Healthy only when Kafka answers, the lag could be read, at least one worker of
    ``app_id`` is healthy and no partition is stalled; the verdict says why not, in one line."""
    reasons: list[str] = []
    kafka_ok, kafka_detail = kafka
    if not kafka_ok:
        reasons.append(f"Kafka does not answer ({' '.join(kafka_detail.split())[:120]})")
    elif lag_error:
        reasons.append(f"lag unknown ({' '.join(lag_error.split())[:160]})")
    mine = [w for w in workers_ if w.app_id == app_id]
    healthy = [w for w in mine if w.healthy]
    if not mine:
        reasons.append(f"no worker of {app_id} registered")
    elif not healthy:
        states = ", ".join(f"pid {w.pid} {w.state}" for w in mine[:4])
        reasons.append(f"no healthy worker ({states})")
    stalled = [p for p in partitions if p.stalled]
    if stalled:
        shown = ", ".join(
            f"{_where(p)} lag {p.lag} for {p.since_progress_s:.0f} s" for p in stalled[:3]
        )
        more = f" and {len(stalled) - 3} more" if len(stalled) > 3 else ""
        reasons.append(f"{len(stalled)} partition(s) stalled: {shown}{more}")
    total = sum(p.lag or 0 for p in partitions)
    if reasons:
        known = "lag unknown" if not partitions else f"lag {total}"
        if partitions and (lag_error or not kafka_ok):
            known = f"lag {total} as last seen"
        return Verdict(False, f"PROBLEM: {'; '.join(reasons)} ({known})", tuple(reasons))
    notes = [f"{len(healthy)} healthy worker(s)", f"lag {total} over {len(partitions)} partitions"]
    others = [w for w in mine if not w.healthy]
    if others:
        notes.append(f"{len(others)} other worker(s) not healthy")
    return Verdict(True, "OK: " + ", ".join(notes), ())


def stale_after(interval: float, timeout: float) -> float:
    """Seconds after which the last observation is too old to vouch for anything: the sampler
    takes at most a few Kafka timeouts, and one interval more."""
    return max(30.0, 3 * interval + 8 * timeout)


@dataclass
class Observation:
    """Everything the pages show, taken at ``at`` (Unix time)."""

    at: float
    app_id: str
    home: str
    stall_after_s: float
    verdict: Verdict
    services: dict[str, dict[str, Any]]
    partitions: list[PartitionView]
    workers: list[workers.WorkerStatus]
    lag_error: str | None = None
    lag_observed_at: float | None = None
    members: int | None = None

    def document(self, now: float, stale_s: float) -> tuple[bool, dict[str, Any]]:
        """(healthy, the JSON document, snake_case keys) read at ``now``."""
        age = max(0.0, now - self.at)
        reasons = list(self.verdict.reasons)
        verdict = self.verdict.verdict
        healthy = self.verdict.healthy
        if age > stale_s:
            problem = f"the monitor's last observation is {age:.0f} s old"
            reasons.append(problem)
            verdict = f"PROBLEM: {problem}; before that: {verdict}"
            healthy = False
        return healthy, {
            "healthy": healthy,
            "verdict": verdict,
            "reasons": reasons,
            "observed_at": self.at,
            "age_s": round(age, 1),
            "app_id": self.app_id,
            "home": self.home,
            "stall_after_s": self.stall_after_s,
            "services": self.services,
            "lag": {
                "total": sum(p.lag or 0 for p in self.partitions),
                "members": self.members,
                "observed_at": self.lag_observed_at,
                "error": self.lag_error,
            },
            "partitions": [asdict(p) for p in self.partitions],
            "workers": [
                {**w.as_dict(), "stalled_agents": list(w.stalled_agents)} for w in self.workers
            ],
        }


class Monitor:
    """Takes observations in a background thread; the pages read the last one."""

    def __init__(
        self, settings: Settings, *, interval: float, stall_after_s: float, timeout: float
    ) -> None:
        self.settings = settings
        self.interval = interval
        self.stall_after_s = stall_after_s
        self.timeout = timeout
        self._tracker = lag.LagTracker(window=3)
        self._clock = ProgressClock()
        self._partitions: list[PartitionView] = []
        self._lag_at: float | None = None
        self._members: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        now = time.time()
        self.last = Observation(
            now, settings.app_id, str(settings.home), stall_after_s,
            Verdict(False, "starting: the first observation is not taken yet", ("starting",)),
            {}, [], [],
        )  # fmt: skip

    def observe(self) -> Observation:
        """One look at the services, the group's lag and the workers. Never raises: what
        cannot be read is reported as down."""
        settings, group = self.settings, self.settings.app_id
        services: dict[str, dict[str, Any]] = {}
        for name in ("kafka", "registry", "clickhouse"):
            ok, detail = probes.probe(name, settings, min(self.timeout, 3.0))
            services[name] = {"healthy": ok, "detail": " ".join(detail.split())[:200]}
        lag_error: str | None = None
        if services["kafka"]["healthy"]:
            try:
                observed, members = kafka_admin.observe_groups(settings, [group], self.timeout)
                now = time.time()
                self._tracker.observe(group, observed.get(group, {}), members.get(group))
                report = self._tracker.report(group)
                self._partitions = partition_views(report, self._clock, now, self.stall_after_s)
                self._lag_at, self._members = now, members.get(group)
            except Exception as exc:  # LagError, or a client surprise: report, never crash
                lag_error = str(exc) if isinstance(exc, GovstreamError) else repr(exc)
        else:
            lag_error = "Kafka does not answer; lag as last seen"
        try:
            found = workers.statuses(settings, timeout=min(self.timeout, 3.0))
        except Exception as exc:  # an unreadable registry is reported, not fatal
            found = []
            lag_error = (lag_error + "; " if lag_error else "") + f"worker registry: {exc}"
        verdict = assess(
            app_id=group,
            kafka=(bool(services["kafka"]["healthy"]), str(services["kafka"]["detail"])),
            lag_error=lag_error,
            partitions=self._partitions,
            workers_=found,
        )
        return Observation(
            time.time(), group, str(settings.home), self.stall_after_s, verdict, services,
            list(self._partitions), found, lag_error, self._lag_at, self._members,
        )  # fmt: skip

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.last = self.observe()
            except Exception as exc:  # pragma: no cover - observe() does not raise
                log.warning("observation failed: %s", exc)
            self._stop.wait(self.interval)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="govstream-monitor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def document(self) -> tuple[bool, dict[str, Any]]:
        return self.last.document(time.time(), stale_after(self.interval, self.timeout))


# -- the pages ---------------------------------------------------------------------------------


def _cell(value: object) -> str:
    return "" if value is None else html.escape(str(value))


def _table(
    rows: Sequence[Mapping[str, Any]], columns: Sequence[str], bad: Callable[..., bool]
) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        f'<tr class="{"bad" if bad(r) else ""}">'
        + "".join(f"<td>{_cell(r.get(c))}</td>" for c in columns)
        + "</tr>"
        for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def render_html(doc: Mapping[str, Any], refresh_s: int) -> str:
    """The page: the verdict, the workers, the input partitions and the services."""
    ok = bool(doc["healthy"])
    at = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(doc["observed_at"])))
    workers_ = doc["workers"]
    partitions = doc["partitions"]
    services = [{"name": k, **v} for k, v in doc["services"].items()]
    lag_ = doc["lag"]
    parts = [
        '<!doctype html><html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="refresh" content="{refresh_s}">',
        "<title>govstream monitor</title><style>"
        "body{font-family:sans-serif;margin:1.5em;color:#222}"
        "table{border-collapse:collapse;margin-bottom:1em}"
        "td,th{border:1px solid #ccc;padding:2px 8px;text-align:left}"
        ".bad{color:#b00000}.ok{color:#006400}h1{font-size:1.3em}"
        "</style></head><body>",
        f'<h1 class="{"ok" if ok else "bad"}">{html.escape(str(doc["verdict"]))}</h1>',
        f"<p>group {_cell(doc['app_id'])} · home {_cell(doc['home'])} · observed {at} "
        f"({doc['age_s']} s ago) · this page refreshes every {refresh_s} s · "
        f'<a href="status.json">status.json</a> · <a href="health">health</a></p>',
        f"<h2>Workers ({len(workers_)})</h2>",
        _table(
            workers_, ["pid", "app_id", "address", "state", "detail"], lambda r: not r["healthy"]
        )
        if workers_
        else '<p class="bad">no worker registered in this home</p>',
        f"<h2>Input partitions (lag {lag_['total']}, members {_cell(lag_['members'])})</h2>",
    ]
    if lag_["error"]:
        parts.append(f'<p class="bad">{_cell(lag_["error"])}</p>')
    parts.append(
        _table(
            partitions,
            [
                "topic",
                "partition",
                "committed",
                "log_end",
                "lag",
                "status",
                "since_progress_s",
                "stalled",
            ],
            lambda r: bool(r["stalled"]),
        )  # fmt: skip
        if partitions
        else "<p>no partition observed yet</p>"
    )
    parts.append("<h2>Services</h2>")
    parts.append(_table(services, ["name", "healthy", "detail"], lambda r: not r["healthy"]))
    parts.append("</body></html>")
    return "".join(parts)


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening socket on host:port. A taken port is a :class:`StackError` (exit 1, one line);
    an address this machine does not have, or a port it may not use, a :class:`ConfigError`."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise StackError(
                f"the monitor's port {port} on {host} is taken ({exc.strerror}): another "
                "monitor runs here? Choose another with --port"
            ) from None
        raise ConfigError(
            f"cannot listen on {host}:{port} ({exc.strerror}); check --bind and --port"
        ) from None
    sock.setblocking(False)
    return sock


async def serve(
    monitor: Monitor, sock: socket.socket, token: str, ready: Callable[[str], None]
) -> None:
    """Serve the pages on ``sock`` until SIGINT or SIGTERM."""
    from aiohttp import web

    refresh_s = max(2, round(monitor.interval))

    @web.middleware
    async def guard(request: web.Request, handler: Any) -> web.StreamResponse:
        if not metrics.token_ok(request.headers.get("Authorization"), token):
            return web.json_response({"error": "unauthorized"}, status=401)
        response: web.StreamResponse = await handler(request)
        return response

    async def index(request: web.Request) -> web.Response:
        _, doc = monitor.document()
        return web.Response(text=render_html(doc, refresh_s), content_type="text/html")

    async def status_json(request: web.Request) -> web.Response:
        _, doc = monitor.document()
        return web.json_response(doc, dumps=lambda d: json.dumps(d, ensure_ascii=False))

    async def health(request: web.Request) -> web.Response:
        healthy, doc = monitor.document()
        body = {"healthy": healthy, "verdict": doc["verdict"], "reasons": doc["reasons"]}
        return web.json_response(
            body, status=200 if healthy else 503, dumps=lambda d: json.dumps(d, ensure_ascii=False)
        )

    app = web.Application(middlewares=[guard])
    app.router.add_get("/", index)
    app.router.add_get("/status.json", status_json)
    app.router.add_get("/health", health)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    monitor.start()
    ready(f"http://{shown}:{port}/")
    try:
        await stop.wait()
    finally:
        monitor.stop()
        await runner.cleanup()
