"""Reconciling a simulated run: what ClickHouse holds against what the manifest says was sent.

Counts are taken as differences from a baseline read before the run, so a stack that already
holds earlier runs reconciles too. Rows are counted with ``FINAL`` (ReplacingMergeTree): a
retried insert collapses to one row, which is what analysts see.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from clickhouse_connect.driver.client import Client

from pipelines import closedloop, contracts, simulator
from pipelines.clickhouse import check_identifier


@dataclass(frozen=True)
class Counts:
    """What the report pipeline wrote, for one topic's dead letters."""

    work_orders: int = 0
    duplicates: int = 0
    steps: int = 0
    dead_letters: Mapping[str, int] = field(default_factory=dict)

    def minus(self, base: Counts) -> Counts:
        reasons = set(self.dead_letters) | set(base.dead_letters)
        return Counts(
            self.work_orders - base.work_orders,
            self.duplicates - base.duplicates,
            self.steps - base.steps,
            {
                r: self.dead_letters.get(r, 0) - base.dead_letters.get(r, 0)
                for r in sorted(reasons)
                if self.dead_letters.get(r, 0) != base.dead_letters.get(r, 0)
            },
        )

    @property
    def events(self) -> int:
        """Report-topic events accounted for: one per work order, step or dead letter."""
        return self.work_orders + self.steps + sum(self.dead_letters.values())


def observe(client: Client, database: str) -> Counts:
    """Current counts of the report pipeline's tables (zero when they do not exist yet)."""
    db = check_identifier(database)
    if client.query(f"EXISTS TABLE {db}.reports").result_rows[0][0] != 1:
        return Counts()
    orders, dups = client.query(
        f"SELECT count(), countIf(duplicate_of != '') FROM {db}.reports FINAL"
    ).result_rows[0]
    steps = client.query(f"SELECT count() FROM {db}.work_order_events FINAL").result_rows[0][0]
    letters = client.query(
        f"SELECT reason, count() FROM {db}.dead_letters FINAL "
        "WHERE source_topic = {t:String} GROUP BY reason",
        {"t": contracts.REPORT},
    ).result_rows
    return Counts(int(orders), int(dups), int(steps), {str(r): int(n) for r, n in letters})


def expected_from(manifest: Mapping[str, Any]) -> Counts:
    """What the manifest says the report pipeline must write."""
    rep = manifest["reports"]
    return Counts(
        int(rep["work_orders"]),
        int(rep["duplicates"]),
        sum(int(n) for n in rep["steps"].values()),
        dict(manifest["dead_letters"].get(contracts.REPORT, {})),
    )


def differences(seen: Counts, expected: Counts) -> list[str]:
    """Each way ``seen`` differs from ``expected``, for people (empty when reconciled)."""
    out = []
    for name in ("work_orders", "duplicates", "steps"):
        got, want = getattr(seen, name), getattr(expected, name)
        if got != want:
            out.append(f"{name}: {got} in ClickHouse, {want} expected")
    for reason in sorted(set(seen.dead_letters) | set(expected.dead_letters)):
        got, want = seen.dead_letters.get(reason, 0), expected.dead_letters.get(reason, 0)
        if got != want:
            out.append(f"dead letters {reason}: {got} in ClickHouse, {want} expected")
    return out


def wait_reconciled(
    client: Client,
    database: str,
    baseline: Counts,
    expected: Counts,
    *,
    timeout: float,
    progress: Callable[[Counts], None] | None = None,
    interval: float = 1.0,
) -> tuple[Counts, list[str]]:
    """Poll until the run's counts equal ``expected`` or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while True:
        seen = observe(client, database).minus(baseline)
        problems = differences(seen, expected)
        if progress is not None:
            progress(seen)
        if not problems or time.monotonic() >= deadline:
            return seen, problems
        time.sleep(interval)


def send_history_first(
    events: list[Any],
    config: Any,
    producer: Any,
    client: Client,
    database: str,
    baseline: Counts,
    *,
    now: Any,
    timeout: float,
) -> tuple[list[Any], list[str]]:
    """Send the simulated events before the window (the history's SUBMITs,
    ``simulator.split_history``) and wait until ClickHouse holds their work orders, so the
    pipeline has taken them before any later report (a repeat complaint is found only when
    the report it repeats arrived first). Returns the events still to send and what did not
    reconcile (empty when the history is in)."""
    history, rest = simulator.split_history(events, config, now=now)
    if not history:
        return rest, []
    assert all(e.meta.get("kind") == "submit" for e in history), "history holds SUBMITs only"
    simulator.send(history, producer)
    producer.flush()
    want = Counts(
        work_orders=len(history), duplicates=len(set(simulator.duplicates_of(history, config)))
    )
    _, problems = wait_reconciled(client, database, baseline, want, timeout=timeout)
    return rest, [f"history: {p}" for p in problems]


def view_problems(client: Any, db: str, manifest: dict[str, Any], events: list[Any]) -> list[str]:
    """Forms, active weather warnings and on-time rates in the views against the manifest and
    the events sent: each difference as a line for people (empty when they agree)."""
    problems = []
    totals = {
        r[0]: r[1:]
        for r in client.query(
            f"SELECT form_id, submissions, respondents, abnormal FROM {db}.form_totals"
        ).result_rows
    }
    for form_id, want in manifest["forms"].items():
        got = totals.get(form_id, (0, 0, 0))
        expect = (want["submissions"], want["respondents"], want["abnormal_respondents"])
        if tuple(got) != expect:
            problems.append(
                f"form {form_id}: (submissions, respondents, abnormal) {got} != {expect}"
            )
    active = dict(
        client.query(
            f"SELECT level, warnings FROM {db}.alerts_active_by_level WHERE source = 'weather'"
        ).result_rows
    )
    for level, want in manifest["alerts"]["active_by_level"].items():
        if active.get(level, 0) != want:
            problems.append(f"active {level} warnings: {active.get(level, 0)} != {want}")
    got_on_time = on_time(client, db)
    for department, want in simulator.expected_on_time(events).items():
        got = got_on_time.get(department, (0, 0))
        if got != (want["resolved"], want["on_time"]):
            problems.append(
                f"{department}: resolved/on time {got} != {want['resolved']}/{want['on_time']}"
            )
    return problems


def closed_loop_problems(analyst: Any, db: str, manifest: dict[str, Any]) -> list[str]:
    """The closed loop (issue 19) as the analyst user reads it against the manifest's
    ``closed_loop``: per department the counts behind the 三率 and the 问题工单
    (gov.kpi_by_department), the 督办 warnings per condition (gov.work_orders), every repeat
    complaint, the hotspots of the manifest's day (gov.hotspots) and the hotspot alerts the
    worker's leader sent for them (gov.alerts, source hotspot: exactly those ids, no other);
    each difference as a line for people (empty when they agree)."""
    loop = manifest["closed_loop"]
    problems = []
    got = closedloop.department_rates(analyst, db)
    for department in sorted(set(got) | set(loop["kpi_by_department"])):
        want = loop["kpi_by_department"].get(department, {})
        have = got.get(department, {})
        for name in closedloop.KPI_COUNTS:
            if int(have.get(name, 0)) != int(want.get(name, 0)):
                problems.append(
                    f"{department} {name}: {have.get(name, 0)} in kpi_by_department, "
                    f"{want.get(name, 0)} expected"
                )
    warned = closedloop.supervision(analyst, db)
    for condition, want in loop["supervision"].items():
        if warned.get(condition, 0) != want:
            problems.append(f"督办 {condition}: {warned.get(condition, 0)} orders, {want} expected")
    repeats = closedloop.repeats(analyst, db)
    if repeats != loop["repeat_of"]:
        missing = len(set(loop["repeat_of"].items()) - set(repeats.items()))
        extra = len(set(repeats.items()) - set(loop["repeat_of"].items()))
        problems.append(f"repeat complaints: {missing} expected not found, {extra} unexpected")
    day = date.fromisoformat(loop["today"])
    hot = [
        {k: h[k] for k in ("grid_id", "category_code", "reports", "baseline_reports")}
        for h in closedloop.hotspots(analyst, db, day)
    ]
    if sorted(hot, key=_hotspot_key) != sorted(loop["hotspots"], key=_hotspot_key):
        problems.append(f"hotspots of {day}: {hot} != {loop['hotspots']}")
    warned_hot = closedloop.hotspot_alerts(analyst, db)
    if "hotspot_alerts" in loop and warned_hot != loop["hotspot_alerts"]:
        problems.append(
            f"hotspot alerts: {warned_hot} in gov.alerts, {loop['hotspot_alerts']} expected"
        )
    return problems


def _hotspot_key(h: dict[str, Any]) -> tuple[str, str]:
    return str(h["grid_id"]), str(h["category_code"])


def on_time(client: Any, db: str) -> dict[str, tuple[int, int]]:
    """routed department → (work orders resolved, of which on time)."""
    rows = client.query(
        f"SELECT routed_department, countIf(resolved_at IS NOT NULL), countIf(on_time = true) "
        f"FROM {db}.work_orders FINAL GROUP BY routed_department"
    ).result_rows
    return {d: (int(r), int(o)) for d, r, o in rows}


def wait_views(
    client: Any,
    db: str,
    manifest: dict[str, Any],
    events: list[Any],
    timeout: float,
    *,
    analyst: Any = None,
) -> list[str]:
    """Poll :func:`view_problems` (and with an ``analyst`` client :func:`closed_loop_problems`,
    when the manifest has the closed loop) until none is left or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while True:
        problems = view_problems(client, db, manifest, events)
        if analyst is not None and "closed_loop" in manifest:
            problems += closed_loop_problems(analyst, db, manifest)
        if not problems or time.monotonic() >= deadline:
            return problems
        time.sleep(1.0)
