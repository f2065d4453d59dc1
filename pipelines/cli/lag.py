"""`govstream lag`: committed offset, log end, lag, time lag and a Burrow-style status.

Statuses (see :mod:`pipelines.lag`) rank ``OK < WARN < STALL = STOP = REWIND < ERR``;
``--fail-on S`` exits 1 when a group's worst partition is at least as severe as ``S``.
"""

from __future__ import annotations

import math
import time

import typer
from rich.console import Group
from rich.live import Live
from rich.table import Table

from pipelines import lag as lagmod
from pipelines.cli.output import console, print_json
from pipelines.errors import ConfigError
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


def _groups(settings: Settings, wanted: list[str]) -> list[str]:
    known = lagmod.list_groups(settings)
    if not wanted:
        return known
    unknown = []
    for group in wanted:
        if group in known:
            continue
        if not lagmod.committed_offsets(settings, group):  # Tansu may list groups late
            unknown.append(group)
    if unknown:
        hint = f" (known: {', '.join(known[:10])})" if known else " (the cluster has none)"
        raise ConfigError(f"unknown consumer group {', '.join(map(repr, unknown))}{hint}")
    return wanted


def _sample(tracker: lagmod.LagTracker, settings: Settings, groups: list[str]) -> None:
    observed, members = lagmod.observe_groups(settings, groups)
    for group in groups:
        tracker.observe(group, observed.get(group, {}), members.get(group))


def lag(
    group: list[str] = typer.Option(  # noqa: B008 - typer's declaration style
        [], "--group", "-g", help="Consumer group (repeatable; default: every group)."
    ),
    watch: bool = typer.Option(False, "--watch", "-w", help="Refresh in place until Ctrl-C."),
    interval: float = typer.Option(1.0, "--interval", help="Seconds between observations."),
    window: int = typer.Option(3, "--window", help="Observations per partition in the window."),
    json_: bool = typer.Option(False, "--json", help="Print JSON."),
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
    settings = get_settings()
    groups = _groups(settings, group)
    tracker = lagmod.LagTracker(window)

    def reports() -> list[lagmod.GroupReport]:
        return [tracker.report(g) for g in groups]

    if watch:
        try:
            with Live(render([]), console=console, auto_refresh=False) as live:
                while True:
                    _sample(tracker, settings, groups)
                    live.update(render(reports()), refresh=True)
                    time.sleep(interval)
        except KeyboardInterrupt:
            pass
    else:
        for i in range(window):
            if i:
                time.sleep(interval)
            _sample(tracker, settings, groups)
    result = reports()
    worst = lagmod.worst(r.status for r in result)
    if json_:
        print_json({"status": worst.value, "groups": [r.as_dict() for r in result]})
    elif not watch:
        console.print(render(result))
    if threshold is not None and worst.severity >= threshold.severity:
        raise typer.Exit(1)
