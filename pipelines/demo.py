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
   the closed loop (回访 with ratings, 转派, rework, repeat complaints, a seeded hotspot over
   30 days of history), health-form submissions and weather warnings, and send them through
   the producer API;
4. wait until ClickHouse holds exactly what the simulator's manifest says (work orders, steps,
   duplicates, dead letters by reason; on a new stack also forms, warnings, on-time rates and,
   read as the analyst user, the 三率 per department, 督办 warnings, 问题工单, repeats, the
   current hotspots and the hotspot alerts the worker's leader sent for them), then print the
   summary;
5. stop the worker, and the stack if the demo started it.

Exit code 0 only when every report event is accounted for.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from pipelines import clickhouse, closedloop, forms, probes, reasons, reconcile, simulator
from pipelines.output import console, print_table
from pipelines.producer import EventProducer
from pipelines.settings import Settings, get_settings
from pipelines.stack import control
from pipelines.topics import ensure_topics
from pipelines.workerproc import WorkerProcess


def run(reports: int, seed: int, timeout: float) -> bool:
    """Run the pipeline on simulated data and show the result; True when every report event is
    accounted for (``govstream demo``, :mod:`pipelines.cli.demo`)."""
    user = get_settings()
    settings = demo_settings(user)
    console.rule("govstream demo · 模拟数据演示 (simulated data)")
    _say(
        "模拟一个省一天的网格上报、收集表和气象预警（模拟数据，非真实诉求），经 Kafka → Faust → "
        "ClickHouse 处理后逐条核对。"
    )
    _say(
        f"embedded stack in {settings.home}, database {settings.clickhouse_database} "
        "(your own home and database are not touched) …"
    )
    started, statuses = control.up(settings)
    ok = False
    try:
        if not all(s.healthy for s in statuses):
            print_table(
                [s.as_dict() for s in statuses],
                ["name", "state", "pid", "address", "healthy"],
                title="stack",
            )
            return False
        _say("stack up: " + ", ".join(f"{s.name} {s.address}" for s in statuses))
        ok = _run(settings, reports=reports, seed=seed, timeout=timeout, fresh=started)
        return ok
    finally:
        if started:
            control.down(settings)
            _say("demo stack stopped (演示环境已停止)")
        if ok:
            _keep_running_hint(user)


def _keep_running_hint(user: Settings) -> None:
    """How to keep a stack and a worker running with the dashboard open, in the user's home."""
    url = f"http://{user.worker_web_bind}:{user.worker_web_port}/dashboard"
    _say(
        "\n想让系统继续运行并打开看板？(keep a stack and a worker running, in your own home and "
        f"database {user.clickhouse_database}):\n"
        "  govstream stack up                     # 启动内嵌 Kafka、schema registry、ClickHouse\n"
        f"  govstream worker                       # 另开一个终端; 看板 dashboard: {url}\n"
        "  govstream simulate --reports 2000      # 再开一个终端, 发送模拟数据 (simulated data)\n"
        "  govstream stack down                   # 用完后停止"
    )


def _say(text: str) -> None:
    """One line of prose, not wrapped by rich (a terminal wraps it; a command stays whole)."""
    console.print(text, soft_wrap=True)


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
    # the SLA timer checks often so that overdue orders of the simulated day escalate on screen,
    # the hotspot check so that the seeded hotspot is warned of while the demo waits
    worker_settings = settings.model_copy(
        update={"sla_check_interval_s": 5.0, "hotspot_check_interval_s": 5.0}
    )
    worker = WorkerProcess(worker_settings, settings.log_dir / "worker.log")
    _say(f"starting a worker (log: {worker.log_path}) …")
    with worker:
        worker.wait_ready()
        # a day, less 15 minutes: no order of the window turns 24 h old (督办 no_response,
        # the response rate) while the demo runs; the closed loop reaches 30 days back
        config = simulator.SimConfig.closed_loop(seed=seed, reports=reports, minutes=DAY_MINUTES)
        now = datetime.now(UTC)
        events = simulator.generate(config, now=now)
        manifest = simulator.manifest(
            events, config, now=now, analysis=simulator.Analysis.of(settings)
        )
        expected = reconcile.expected_from(manifest)
        _say(
            f"sending {len(events):,} simulated events "
            f"({', '.join(f'{t} {n:,}' for t, n in manifest['topics'].items())}) …"
        )
        run_start = datetime.now(UTC)
        t0 = time.monotonic()
        with EventProducer(settings) as producer:
            # the 30 days before first: a repeat is found only when its first report came first
            rest, early = reconcile.send_history_first(
                events, config, producer, client, db, baseline, now=now, timeout=timeout
            )
            simulator.send(rest, producer)
        sent_s = time.monotonic() - t0
        seen, problems = reconcile.wait_reconciled(
            client, db, baseline, expected, timeout=timeout, progress=_progress(expected)
        )
        problems = early + problems
        done_s = time.monotonic() - t0
        analyst = clickhouse.get_client(settings, analyst=True)
        if fresh and not problems:  # whole-database figures only mean something on a new stack
            problems = reconcile.wait_views(
                client, db, manifest, events, timeout=60, analyst=analyst
            )
    run = _Run(client, db, run_start, manifest, expected, seen, sent_s, done_s, analyst)
    _verdict(run, problems, fresh)
    _official(run, fresh)
    _engineering(run, fresh)
    if problems:
        _say("[red]not reconciled (核对未通过):[/red] " + "; ".join(problems))
        _say(f"see the worker log: {worker.log_path}")
        return False
    return True


DAY_MINUTES = 24 * 60 - 15


@dataclass(frozen=True)
class _Run:
    """What one demo run sent and found: the figures every section reads."""

    client: Any
    db: str
    start: datetime  # when sending began (UTC): this run's rows were produced since
    manifest: dict[str, Any]
    expected: reconcile.Counts
    seen: reconcile.Counts
    sent_s: float
    done_s: float
    analyst: Any  # a client of the analyst user

    def query(self, sql: str) -> list[Any]:
        """Rows of ``sql``; ``{since}`` in it is this run's bound on ``produced_at``."""
        bound = "{t:DateTime64(3, 'UTC')}"
        return list(
            self.client.query(
                sql.replace("{since}", bound), {"t": self.start.replace(tzinfo=None)}
            ).result_rows
        )


def _progress(expected: reconcile.Counts) -> Any:
    """A progress callback that prints at each quarter of the report events reached."""
    shown = [-1]

    def show(seen: reconcile.Counts) -> None:
        quarter = 4 * seen.events // max(expected.events, 1)
        if quarter > shown[0]:
            shown[0] = quarter
            _say(f"  {seen.events:,} / {expected.events:,} report events in ClickHouse")

    return show


def _capped(rows: list[dict[str, Any]], columns: list[str], what: str, most: int = 10) -> Any:
    """The first ``most`` rows, then one row ``其余 N 个<what>`` summing the others' numbers."""
    if len(rows) <= most + 1:
        return rows
    rest = rows[most:]
    total: dict[str, Any] = {columns[0]: f"其余 {len(rest)} 个{what}"}
    for column in columns[1:]:
        total[column] = sum(int(r[column]) for r in rest)
    return [*rows[:most], total]


def _pct(part: float, whole: float) -> str:
    return f"{100 * part / whole:.1f} %" if whole else "–"


def _verdict(run: _Run, problems: list[str], fresh: bool) -> None:
    """The one line that says whether it worked, then that the data is simulated."""
    sent = run.manifest["topics"]["report"]
    dead = sum(run.seen.dead_letters.values())
    console.rule("结果 result")
    if problems:
        _say(
            f"[bold red]✗ 核对未通过 (not reconciled)[/bold red]: {run.seen.events:,} / {sent:,} "
            "条上报事件有着落, 差异见下 (differences below)."
        )
    else:
        checked = (
            "；收集表、预警、按时办结率、三率、督办、问题工单、重复诉求、热点和热点预警与模拟器一致"
            if fresh
            else ""
        )
        _say(
            f"[bold green]✓ 核对通过 (reconciled)[/bold green]: 模拟的一天 {sent:,} 条上报事件全部"
            f"有着落 — {run.seen.work_orders:,} 件工单、{run.seen.steps:,} 个处置步骤、"
            f"{dead:,} 条故意出错的事件进入死信{checked}。"
        )
    _say("以下均为模拟数据 (simulated data)：行政区划是真实的，诉求、人员和预警由模拟器生成。")


_LEVEL_NAMES = {"blue": "蓝色", "yellow": "黄色", "orange": "橙色", "red": "红色"}
_SOURCE_NAMES = {
    "weather": "气象预警",
    "form": "收集表异常",
    "sla": "工单超时督办",
    "supervision": "工单督办",
    "hotspot": "热点预警",
    "other": "其他",
}


def _official(run: _Run, fresh: bool) -> None:
    """What an official reads: work orders by city and department, on-time rates, overdue
    and escalated, warning reach, collection-form completion (Chinese labels)."""
    db = run.db
    console.rule("工作情况 (for officials)")
    rows = run.query(
        f"SELECT city, count(), countIf(handling_level = 'community'), "
        f"countIf(handling_level = 'street'), countIf(handling_level = 'county'), "
        f"countIf(emergency), countIf(duplicate_of != '') "
        f"FROM {db}.reports FINAL WHERE produced_at >= {{since}} GROUP BY city "
        f"ORDER BY count() DESC"
    )
    columns = ["市", "工单", "社区办理", "街道办理", "区县办理", "P1 紧急", "并单 (同一问题合并)"]
    print_table(
        _capped([dict(zip(columns, r, strict=True)) for r in rows], columns, "市"),
        columns,
        title="工单：按城市与办理层级 (工单最多的市)",
    )
    rows = run.query(
        f"SELECT category_minor, any(department), count() AS n FROM {db}.reports FINAL "
        f"WHERE produced_at >= {{since}} GROUP BY category_minor ORDER BY n DESC LIMIT 8"
    )
    columns = ["问题类别", "责任部门", "工单"]
    print_table(
        [dict(zip(columns, r, strict=True)) for r in rows], columns, title="工单：最多的问题类别"
    )
    if not fresh:
        _say("(演示环境已运行过：以下全库数字不核对 — a stack that already ran: not checked)")
        return
    got = reconcile.on_time(run.client, db)
    columns = ["责任部门", "办结", "按时办结", "按时办结率"]
    departments = _capped(
        [
            {"责任部门": d, "办结": r, "按时办结": o}
            for d, (r, o) in sorted(got.items(), key=lambda kv: -kv[1][0])
            if r
        ],
        columns[:3],
        "部门",
    )
    for row in departments:
        row["按时办结率"] = _pct(row["按时办结"], row["办结"])
    print_table(departments, columns, title="工单：各部门按时办结率 (办结最多的部门)")
    _closed_loop(run)
    opened, overdue, closed, escalated = run.query(
        f"SELECT countIf(is_open), countIf(is_overdue), countIf(state = 'closed'), "
        f"countIf(escalations > 0) FROM {db}.work_orders_now"
    )[0]
    _say(
        f"工单现状：在办 {opened:,} 件，逾期 {overdue:,} 件，已结案 {closed:,} 件，"
        f"督办 {escalated:,} 件。"
    )
    _say(
        "  逾期 = 此刻仍未办结且已过办理时限；督办 = 曾超过时限被升级督办的工单"
        "（之后办结的也计入），所以督办可以多于逾期。"
    )
    rows = run.query(
        f"SELECT source, level, warnings, villages, population FROM {db}.alerts_active_by_level"
    )
    print_table(
        [
            {
                "来源": _SOURCE_NAMES.get(src, src),
                "级别": _LEVEL_NAMES.get(level, level),
                "生效预警": n,
                "预警覆盖村(社区)数": f"{villages:,}",
                "覆盖人口": f"{population:,}",
            }
            for src, level, n, villages, population in rows
        ],
        ["来源", "级别", "生效预警", "预警覆盖村(社区)数", "覆盖人口"],
        title="预警覆盖：生效中的预警",
    )
    titles = {d.form_id: d.title for d in forms.definitions().values()}
    rows = run.query(
        f"SELECT form_id, count(), sum(registered), sum(respondents), countIf(abnormal > 0), "
        f"sum(abnormal) FROM {db}.form_completion_by_community GROUP BY form_id ORDER BY form_id"
    )
    print_table(
        [
            {
                "收集表": titles.get(f, f),
                "社区": c,
                "应填人数": f"{reg:,}",
                "已填人数": f"{resp:,}",
                "完成率": _pct(resp, reg),
                "异常人数": ab,
            }
            for f, c, reg, resp, _communities_abnormal, ab in rows
        ],
        ["收集表", "社区", "应填人数", "已填人数", "完成率", "异常人数"],
        title="收集表：完成情况",
    )


def _rate(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f} %"


def _rates_row(department: str, k: dict[str, Any]) -> dict[str, Any]:
    return {
        "责任部门": department,
        "受理": k["received"],
        "响应率": _rate(k["response_rate"]),
        "解决率": _rate(k["resolution_rate"]),
        "满意率": _rate(k["satisfaction_rate"]),
        "已评价": k["rated_orders"],
        "问题工单": k["problem_orders"],
    }


def _closed_loop(run: _Run) -> None:
    """The 三率 per department, 督办, 问题工单, repeats and the current hotspots, read as the
    analyst user (the figures reconcile.closed_loop_problems compared with the manifest)."""
    departments = closedloop.department_rates(run.analyst, run.db)
    columns = ["责任部门", "受理", "响应率", "解决率", "满意率", "已评价", "问题工单"]
    rows = [_rates_row(d, k) for d, k in departments.items()]
    total = {c: sum(int(k[c]) for k in departments.values()) for c in closedloop.KPI_COUNTS}
    shown = rows[:10]
    if len(rows) > 10:
        shown.append(
            {"责任部门": f"其余 {len(rows) - 10} 个部门", "受理": sum(r["受理"] for r in rows[10:])}
        )
    shown.append(_rates_row("合计", {**total, **closedloop.rates(total)}))
    print_table(shown, columns, title="接诉即办三率：各部门 (受理最多的部门，含 30 天历史工单)")
    _say(
        "  响应率 = 24 小时内有办理步骤的工单 / 已到 24 小时或已响应的工单；解决率、满意率 = "
        "回访中群众表示已解决、满意或基本满意的工单 / 有评价的工单（联系不上的不计）。"
    )
    loop = run.manifest["closed_loop"]
    warned = closedloop.supervision(run.analyst, run.db)
    names = {
        "no_response": "24小时未响应",
        "no_progress": "3日无进展",
        "dissatisfied_twice": "连续两次不满意",
        "problem_order": "问题工单提级",
    }
    _say(
        "督办预警："
        + "，".join(f"{names[c]} {warned.get(c, 0):,} 件" for c in names)
        + f"；重复诉求 {len(closedloop.repeats(run.analyst, run.db)):,} 件；"
        + f"热点预警 {len(closedloop.hotspot_alerts(run.analyst, run.db)):,} 条。"
    )
    day = date.fromisoformat(loop["today"])
    hot = closedloop.hotspots(run.analyst, run.db, day)
    days, windows = (
        loop["settings"]["hotspot_window_days"],
        loop["settings"]["hotspot_baseline_windows"],
    )
    now_col, base_col = f"近{days}天", f"此前{days * windows}天"
    print_table(
        [
            {
                "网格": h["grid_id"],
                "地点": f"{h['county']}{h['township']}{h['village']}",
                "问题类别": h["category_minor"],
                now_col: h["reports"],
                base_col: h["baseline_reports"],
                "倍数": "–" if h["ratio"] is None else f"{h['ratio']:.1f}",
            }
            for h in hot
        ],
        ["网格", "地点", "问题类别", now_col, base_col, "倍数"],
        title=f"当前热点 (window ending {day})",
    )


def _short(text: str, most: int = 36) -> str:
    """The first clause of a reason's meaning, at most ``most`` characters."""
    clause = text.split(" (")[0].split(": ")[0].split("; ")[0].rstrip(".")
    return clause if len(clause) <= most else clause[: most - 1] + "…"


def _engineering(run: _Run, fresh: bool) -> None:
    """The engineers' reconciliation: rows and dead letters against what was sent, speed."""
    console.rule("engineering reconciliation (工程核对)")
    sent = run.manifest["topics"]["report"]
    catalogue = reasons.catalogue()
    found = sorted(set(run.expected.dead_letters) | set(run.seen.dead_letters))
    print_table(
        [
            {
                "reason": r,
                "expected": run.expected.dead_letters.get(r, 0),
                "in dead_letters": run.seen.dead_letters.get(r, 0),
                "meaning": _short(catalogue[r].meaning) if r in catalogue else "",
            }
            for r in found
        ],
        ["reason", "expected", "in dead_letters", "meaning"],
        title="dead letters of the report topic: bad events the simulator mixed in on purpose",
    )
    (quantiles,) = run.query(
        f"SELECT quantiles(0.5, 0.99)(dateDiff('millisecond', produced_at, inserted_at)) "
        f"FROM {run.db}.reports WHERE produced_at >= {{since}}"
    )[0]
    p50, p99 = quantiles or [0.0, 0.0]
    dead = sum(run.seen.dead_letters.values())
    print_table(
        [
            {"figure": "report events sent", "value": f"{sent:,}"},
            {"figure": "work orders (rows)", "value": f"{run.seen.work_orders:,}"},
            {"figure": "handling steps (rows)", "value": f"{run.seen.steps:,}"},
            {"figure": "dead letters (rows)", "value": f"{dead:,}"},
            {
                "figure": "not accounted for (sent − rows − dead letters)",
                "value": f"{sent - run.seen.events:,}",
            },
            {"figure": "send time", "value": f"{run.sent_s:.1f} s"},
            {
                "figure": "throughput, sent → all in ClickHouse",
                "value": f"{sent / run.done_s:,.0f} events per second",
            },
            {"figure": "latency produced → inserted, p50 (one burst)", "value": f"{p50:,.0f} ms"},
            {"figure": "latency produced → inserted, p99 (one burst)", "value": f"{p99:,.0f} ms"},
        ],  # fmt: skip
        ["figure", "value"],
        title="reconciliation",
    )
    _say(
        f"The whole simulated day was sent in {run.sent_s:.1f} s, so the latency above is how "
        "long that burst queued; `make bench` measures latency under a steady 50 % load."
    )
    if fresh:
        _say(
            "Forms, active weather warnings and on-time counts per department were compared "
            "with the simulator's manifest (pipelines.reconcile.view_problems)."
        )
