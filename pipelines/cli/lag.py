"""`govstream lag`: committed offset, log end, lag, time lag and a Burrow-style status.

Statuses (see :mod:`pipelines.lag`) rank ``OK < WARN < STALL = STOP = REWIND < ERR``;
``--fail-on S`` exits 1 when a group's worst partition is at least as severe as ``S``.
"""

from __future__ import annotations

import json
import math
import time

import typer
from rich.console import Group
from rich.live import Live
from rich.table import Table

from pipelines import kafka_admin, probes
from pipelines import lag as lagmod
from pipelines.errors import ConfigError
from pipelines.output import console, print_json
from pipelines.settings import Settings, get_settings

COLUMNS = ["topic", "partition", "committed", "log end", "lag", "time lag", "status"]
STYLE = {"OK": "green", "WARN": "yellow", "ERR": "bold red"}


def _fmt_time(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    if math.isinf(seconds):
        return "∞"
    if seconds < 120:
        return f"{seconds:.1f}s"
    if seconds < 7200:
        return f"{seconds / 60:.1f}m"
    return f"{seconds / 3600:.1f}h"


def render(reports: list[lagmod.GroupReport]) -> Group:
    tables = []
    for report in reports:
        status = report.status.value
        title = (
            f"{report.group}: [{STYLE.get(status, 'red')}]{status}[/] "
            f"(lag {report.lag}, members {report.members if report.members is not None else '?'})"
        )
        table = Table(title=title, title_justify="left")
        for col in COLUMNS:
            table.add_column(col, justify="left" if col == "topic" else "right")
        for p in report.partitions:
            table.add_row(
                p.topic, str(p.partition),
                "-" if p.committed is None else str(p.committed),
                "?" if p.log_end is None else str(p.log_end),
                "?" if p.lag is None else str(p.lag),
                _fmt_time(p.time_lag_s),
                f"[{STYLE.get(p.status.value, 'red')}]{p.status.value}[/]",
            )  # fmt: skip
        tables.append(table)
    if not tables:
        tables.append(Table(title="no consumer groups"))
    return Group(*tables)


def _groups(settings: Settings, wanted: list[str], timeout: float) -> list[str]:
    """The groups to show: ``wanted`` (each must exist), else every group the cluster lists
    plus the pipeline's own (``GOVSTREAM_APP_ID``) once its input topics exist, so a pipeline
    whose worker never committed still shows its lag."""
    known = kafka_admin.list_groups(settings, timeout)
    if not wanted:
        app_id = settings.app_id
        if app_id not in known and kafka_admin.partitions_of(
            settings, kafka_admin.PIPELINE_INPUTS, timeout
        ):
            return sorted([*known, app_id])
        return known
    unknown = []
    for group in wanted:
        if group in known:
            continue
        if group == settings.app_id:  # the pipeline's group is known before its first commit
            continue
        if not kafka_admin.committed_offsets(settings, group, timeout):  # Tansu lists groups late
            unknown.append(group)
    if unknown:
        hint = f" (known: {', '.join(known[:10])})" if known else " (the cluster has none)"
        raise ConfigError(f"unknown consumer group {', '.join(map(repr, unknown))}{hint}")
    return wanted


def _sample(
    tracker: lagmod.LagTracker, settings: Settings, groups: list[str], timeout: float
) -> None:
    observed, members = kafka_admin.observe_groups(settings, groups, timeout)
    for group in groups:
        tracker.observe(group, observed.get(group, {}), members.get(group))


def lag(
    group: list[str] = typer.Option(  # noqa: B008 - typer's declaration style
        [], "--group", "-g", help="Consumer group (repeatable; default: every group)."
    ),
    watch: bool = typer.Option(False, "--watch", "-w", help="Refresh in place until Ctrl-C."),
    interval: float = typer.Option(1.0, "--interval", help="Seconds between observations."),
    window: int = typer.Option(3, "--window", help="Observations per partition in the window."),
    json_: bool = typer.Option(
        False, "--json", help="Print JSON (with --watch: one line per interval)."
    ),
    timeout: float = typer.Option(
        5.0, "--timeout", help="Seconds to wait for each answer from Kafka."
    ),
    fail_on: str | None = typer.Option(
        None,
        "--fail-on",
        help="Exit 1 when the worst status reaches this one "
        "(order OK < WARN < STALL = STOP = REWIND < ERR).",
    ),
) -> None:
    """Consumer lag per group, topic and partition, with a status over a sliding window."""
    if interval <= 0:
        raise typer.BadParameter("must be > 0", param_hint="--interval")
    if window < 1:
        raise typer.BadParameter("must be ≥ 1", param_hint="--window")
    threshold = None
    if fail_on is not None:
        try:
            threshold = lagmod.Status.parse(fail_on)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--fail-on") from exc
    if timeout <= 0:
        raise typer.BadParameter("must be > 0", param_hint="--timeout")
    settings = get_settings()
    probes.require(["kafka"], settings, timeout=min(timeout, 3.0))
    groups = _groups(settings, group, timeout)
    tracker = lagmod.LagTracker(window)

    def reports() -> list[lagmod.GroupReport]:
        return [tracker.report(g) for g in groups]

    def document() -> dict[str, object]:
        result = reports()
        worst = lagmod.worst(r.status for r in result)
        return {"status": worst.value, "groups": [r.as_dict() for r in result]}

    if watch and json_:  # JSON Lines: one document per interval, flushed as it is written
        try:
            while True:
                _sample(tracker, settings, groups, timeout)
                print(json.dumps({"at": time.time(), **document()}, ensure_ascii=False), flush=True)
                time.sleep(interval)
        except KeyboardInterrupt:
            pass
    elif watch:
        try:
            with Live(render([]), console=console, auto_refresh=False) as live:
                while True:
                    _sample(tracker, settings, groups, timeout)
                    live.update(render(reports()), refresh=True)
                    time.sleep(interval)
        except KeyboardInterrupt:
            pass
    else:
        for i in range(window):
            if i:
                time.sleep(interval)
            _sample(tracker, settings, groups, timeout)
    result = reports()
    worst = lagmod.worst(r.status for r in result)
    if json_ and not watch:
        print_json(document())
    elif not watch:
        console.print(render(result))
    if threshold is not None and worst.severity >= threshold.severity:
        raise typer.Exit(1)
