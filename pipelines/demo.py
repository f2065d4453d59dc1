"""`make demo` / `govstream demo`: the whole pipeline on the embedded stack, reconciled.

The command is :mod:`pipelines.cli.demo`; this module is the run (:func:`run`).

The demo never touches a user's data (issue 17, item 8): it runs in its own home,
``<GOVSTREAM_HOME>/demo`` (default ``.govstream/demo``: its own embedded ClickHouse data,
broker and logs), on database ``<GOVSTREAM_CLICKHOUSE_DATABASE>_demo`` (default ``gov_demo``),
and an embedded service or the worker's web port whose configured port is taken (say by the
user's own stack and worker) moves to a free loopback port (:func:`demo_settings`). Only that
database is dropped, and only when the demo started that stack itself.

1. bring the demo's embedded stack up (one that already runs in the demo home is reused and
   left running);
2. apply the ClickHouse migrations and start a real Faust worker (``govstream worker``);
3. simulate a province (seeded): reports with handling steps, 并单 duplicates and bad events,
   health-form submissions and weather warnings, and send them through the producer API;
4. wait until ClickHouse holds exactly what the simulator's manifest says (work orders, steps,
   duplicates, dead letters by reason), then print the summary;
5. stop the worker, and the stack if the demo started it.

Exit code 0 only when every report event is accounted for.
"""

from __future__ import annotations

import socket
import time
from datetime import UTC, datetime
from typing import Any

from pipelines import clickhouse, probes, reconcile, simulator
from pipelines.output import console, print_table
from pipelines.producer import EventProducer
from pipelines.settings import Settings, get_settings
from pipelines.stack import control
from pipelines.topics import ensure_topics
from pipelines.workerproc import WorkerProcess


def run(reports: int, seed: int, timeout: float) -> bool:
    """Run the pipeline on simulated data and show the result; True when every report event is
    accounted for (``govstream demo``, :mod:`pipelines.cli.demo`)."""
    settings = demo_settings(get_settings())
    console.rule("govstream demo")
    console.print(
        f"embedded stack in {settings.home}, database {settings.clickhouse_database} "
        "(your own home and database are not touched) …"
    )
    started, statuses = control.up(settings)
    try:
        print_table(
            [s.as_dict() for s in statuses],
            ["name", "state", "pid", "address", "healthy"],
            title="stack",
        )
        if not all(s.healthy for s in statuses):
            return False
        return _run(settings, reports=reports, seed=seed, timeout=timeout, fresh=started)
    finally:
        if started:
            control.down(settings)
            console.print("stack stopped")


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def demo_settings(settings: Settings) -> Settings:
    """The demo's settings: home ``<home>/demo``, database ``<database>_demo``, and each
    embedded service's port and the worker's web port moved to a free loopback port when
    something already listens on it (unless the demo's own stack runs in its home: then it
    holds those ports). Raises ConfigError for a database name that is not a plain
    identifier."""
    home = settings.home / "demo"
    database = clickhouse.check_identifier(f"{settings.clickhouse_database}_demo")
    update: dict[str, object] = {"home": home, "clickhouse_database": database}
    own = settings.model_copy(update={"home": home})
    if control.supervisor_pid(own) is not None:
        return settings.model_copy(update=update)
    for svc in probes.services(settings):
        if svc.name not in settings.embedded or not probes.port_in_use(*svc.address):
            continue
        host, port = svc.address[0], _free_port(svc.address[0])
        if svc.name == "kafka":
            update["kafka_bootstrap"] = f"{host}:{port}"
        elif svc.name == "registry":
            update["schema_registry_url"] = f"http://{host}:{port}"
        else:
            update["clickhouse_url"] = f"http://{host}:{port}"
    if probes.port_in_use(settings.worker_web_bind, settings.worker_web_port):
        update["worker_web_port"] = _free_port(settings.worker_web_bind)
    return settings.model_copy(update=update)


def _run(settings: Settings, *, reports: int, seed: int, timeout: float, fresh: bool) -> bool:
    client = clickhouse.get_client(settings)
    db = settings.clickhouse_database
    if fresh:  # a new embedded Kafka starts empty: rebuild the demo's own database from scratch
        assert db.endswith("_demo"), db  # never a user's database (demo_settings)
        client.command(f"DROP DATABASE IF EXISTS {clickhouse.check_identifier(db)}")
    clickhouse.migrate(client, db)
    ensure_topics(settings, extra=["report-routed"])
    baseline = reconcile.observe(client, db)
    # the SLA timer checks often so that overdue orders of the simulated day escalate on screen
    worker_settings = settings.model_copy(update={"sla_check_interval_s": 5.0})
    worker = WorkerProcess(worker_settings, settings.log_dir / "worker.log")
    console.print(f"starting a worker (log: {worker.log_path}) …")
    with worker:
        worker.wait_ready()
        config = simulator.SimConfig(seed=seed, reports=reports, minutes=24 * 60)  # a day
        now = datetime.now(UTC)
        events = simulator.generate(config, now=now)
        manifest = simulator.manifest(events, config, now=now)
        expected = reconcile.expected_from(manifest)
        console.print(
            f"sending {len(events):,} simulated events "
            f"({', '.join(f'{t} {n:,}' for t, n in manifest['topics'].items())}) …"
        )
        run_start = datetime.now(UTC)
        t0 = time.monotonic()
        with EventProducer(settings) as producer:
            simulator.send(events, producer)
        sent_s = time.monotonic() - t0
        seen, problems = reconcile.wait_reconciled(
            client, db, baseline, expected, timeout=timeout, progress=_progress(expected)
        )
        done_s = time.monotonic() - t0
        if fresh and not problems:  # whole-database figures only mean something on a new stack
            problems = reconcile.wait_views(client, db, manifest, events, timeout=60)
    _summary(client, db, run_start, manifest, expected, seen, sent_s, done_s)
    if fresh:
        _views_summary(client, db, manifest, events)
    else:
        console.print("(a stack that already ran: forms, warnings and on-time rates not checked)")
    if problems:
        console.print("[red]not reconciled:[/red] " + "; ".join(problems))
        console.print(f"see the worker log: {worker.log_path}")
        return False
    return True


def _views_summary(client: Any, db: str, manifest: dict[str, Any], events: list[Any]) -> None:
    rows = client.query(
        f"SELECT form_id, name, respondents, registered, round(completion_rate * 100, 2), "
        f"abnormal FROM {db}.form_completion_by_community ORDER BY form_id, code"
    ).result_rows
    columns = ["form", "community", "respondents", "registered", "completion %", "abnormal"]
    print_table(
        [dict(zip(columns, r, strict=True)) for r in rows],
        columns,
        title="collection forms (收集表): completion by community",
    )
    rows = client.query(
        f"SELECT source, level, severity, warnings, villages, population "
        f"FROM {db}.alerts_active_by_level"
    ).result_rows
    columns = ["source", "level", "severity", "active", "villages", "population"]
    print_table(
        [dict(zip(columns, r, strict=True)) for r in rows],
        columns,
        title="active warnings (expected weather: "
        + ", ".join(f"{k} {v}" for k, v in manifest["alerts"]["active_by_level"].items())
        + ")",
    )
    expected = simulator.expected_on_time(events)
    got = reconcile.on_time(client, db)
    print_table(
        [
            {
                "department": d,
                "resolved": got.get(d, (0, 0))[0],
                "on time": got.get(d, (0, 0))[1],
                "on-time %": f"{100 * got.get(d, (0, 1))[1] / max(got.get(d, (0, 1))[0], 1):.1f}",
                "expected": f"{want['on_time']}/{want['resolved']}",
            }
            for d, want in expected.items()
        ],
        ["department", "resolved", "on time", "on-time %", "expected"],
        title="work orders: on time per department (按时办结率)",
    )
    (opened, overdue, closed, escalated) = client.query(
        f"SELECT countIf(is_open), countIf(is_overdue), countIf(state = 'closed'), "
        f"countIf(escalations > 0) FROM {db}.work_orders_now"
    ).result_rows[0]
    console.print(
        f"work orders now: {opened} open, {overdue} overdue, {closed} closed, "
        f"{escalated} escalated (SLA alerts in gov.alerts, source 'sla')"
    )


def _progress(expected: reconcile.Counts) -> Any:
    last = [-1]

    def show(seen: reconcile.Counts) -> None:
        if seen.events != last[0]:
            last[0] = seen.events
            console.print(f"  {seen.events:,} / {expected.events:,} report events in ClickHouse")

    return show


def _summary(
    client: Any,
    db: str,
    run_start: datetime,
    manifest: dict[str, Any],
    expected: reconcile.Counts,
    seen: reconcile.Counts,
    sent_s: float,
    done_s: float,
) -> None:
    since = {"t": run_start.replace(tzinfo=None)}
    where = "produced_at >= {t:DateTime64(3, 'UTC')}"
    rows = client.query(
        f"SELECT category_code, any(category_minor), any(department), count() AS n "
        f"FROM {db}.reports FINAL WHERE {where} GROUP BY category_code ORDER BY n DESC LIMIT 10",
        since,
    ).result_rows
    print_table(
        [{"code": c, "category": m, "department": d, "work orders": n} for c, m, d, n in rows],
        ["code", "category", "department", "work orders"],
        title="work orders by category (top 10)",
    )
    levels = ("community", "street", "county")
    rows = client.query(
        f"SELECT city, countIf(handling_level = 'community'), countIf(handling_level = 'street'), "
        f"countIf(handling_level = 'county'), countIf(emergency), countIf(duplicate_of != '') "
        f"FROM {db}.reports FINAL WHERE {where} GROUP BY city ORDER BY count() DESC",
        since,
    ).result_rows
    columns = ["city", *levels, "P1", "并单 duplicates"]
    print_table(
        [dict(zip(columns, row, strict=True)) for row in rows],
        columns,
        title="work orders by city and handling level (社区 / 街道 / 区县)",
    )
    reasons = sorted(set(expected.dead_letters) | set(seen.dead_letters))
    print_table(
        [
            {
                "reason": r,
                "expected": expected.dead_letters.get(r, 0),
                "in gov.dead_letters": seen.dead_letters.get(r, 0),
            }
            for r in reasons
        ],
        ["reason", "expected", "in gov.dead_letters"],
        title="dead letters (report topic)",
    )
    p50, p99 = client.query(
        f"SELECT quantiles(0.5, 0.99)(dateDiff('millisecond', produced_at, inserted_at)) "
        f"FROM {db}.reports WHERE {where}",
        since,
    ).result_rows[0][0] or [0.0, 0.0]
    sent = manifest["topics"]["report"]
    print_table(
        [
            {"figure": "report events sent", "value": f"{sent:,}"},
            {"figure": "work orders (rows)", "value": f"{seen.work_orders:,}"},
            {"figure": "handling steps (rows)", "value": f"{seen.steps:,}"},
            {"figure": "dead letters", "value": f"{sum(seen.dead_letters.values()):,}"},
            {"figure": "unexplained", "value": f"{sent - seen.events:,}"},
            {"figure": "send time", "value": f"{sent_s:.1f} s"},
            {"figure": "events/s (send → reconciled)", "value": f"{sent / done_s:,.0f}"},
            {"figure": "end-to-end latency p50 (burst)", "value": f"{p50:,.0f} ms"},
            {"figure": "end-to-end latency p99 (burst)", "value": f"{p99:,.0f} ms"},
        ],
        ["figure", "value"],
        title="reconciliation",
    )
    console.print(
        f"The whole simulated day was sent in {sent_s:.1f} s, so the latency above is how long "
        "that burst queued; `make bench` measures latency under a steady 50 % load."
    )
