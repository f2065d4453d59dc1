"""Work-order supervision end to end (real worker process): lifecycle in gov.work_orders, invalid
steps dead-lettered, and an SLA breach escalated exactly once across a worker restart."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pipelines import contracts, divisions, workorders
from pipelines.clickhouse import get_client
from pipelines.producer import EventProducer
from pipelines.settings import Settings
from pipelines.workerproc import WorkerProcess
from tests.conftest import wait_for
from tests.e2e.test_report_pipeline import _report, run  # noqa: F401 (fixture)

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

OPERATOR = {"id": "op-7", "name": "王强", "department": "岳阳楼街道综治中心", "role": "处置员"}


def _step(submit: dict[str, Any], action: str, hours_after: float, **extra: Any) -> dict:
    at = datetime.fromisoformat(submit["occurred_at"]) + timedelta(hours=hours_after)
    return {
        "event_id": str(uuid.uuid4()),
        "report_id": submit["report_id"],
        "action": action,
        "occurred_at": at.isoformat(),
        "channel": submit["channel"],
        "region_code": submit["region_code"],
        "operator": OPERATOR,
        **extra,
    }


def _query(settings: Settings, sql: str, prefix: str) -> list[tuple[Any, ...]]:
    try:
        sql = sql.replace("{db}", settings.clickhouse_database)
        result = get_client(settings).query(sql, {"p": prefix})
    except Exception:  # the database is created by the worker's migration
        return []
    return [tuple(r) for r in result.result_rows]


def _orders(settings: Settings, prefix: str) -> dict[str, tuple[Any, ...]]:
    rows = _query(
        settings,
        "SELECT report_id, state, escalations, level, on_time FROM {db}.work_orders FINAL "
        "WHERE startsWith(report_id, {p:String})",
        prefix,
    )
    return {str(r[0]): r[1:] for r in rows}


def _send_and_run(
    settings: Settings,
    worker: WorkerProcess,
    events: list[dict[str, Any]],
    done: Callable[[], bool],
    what: str,
) -> None:
    """Send report events, run the worker until ``done()`` holds, then stop it (the next
    call starts it again: a restart, the tables come back from their changelogs)."""
    with EventProducer(settings) as producer:
        for event in events:
            producer.send(contracts.REPORT, event)
    worker.start().wait_ready()
    try:
        wait_for(done, 90, what)
    finally:
        worker.stop()


def test_lifecycle_invalid_steps_and_one_escalation_across_a_restart(
    run: Settings,  # noqa: F811
    tmp_path: Path,
) -> None:
    settings = run.model_copy(update={"sla_check_interval_s": 0.5})
    prefix = f"WO{uuid.uuid4().hex[:8]}"
    villages = divisions.villages_under("430602")
    now = datetime.now(UTC)
    # late: the 井盖 report (SLA 4 h) came in 6 h ago, dispatched, never resolved
    late = _report(prefix, 1, villages[0], occurred_at=(now - timedelta(hours=6)).isoformat())
    # handled within its SLA; RESOLVE sent before its DISPATCH (out of order)
    done = _report(prefix, 2, villages[1], occurred_at=(now - timedelta(hours=1)).isoformat())
    bad = _report(prefix, 3, villages[2])
    dispatch = {"assigned_department": "岳阳楼区市政设施管理处"}
    events = [
        late, _step(late, "ACCEPT", 0.1), _step(late, "DISPATCH", 0.2, **dispatch),
        done, _step(done, "ACCEPT", 0.1), _step(done, "RESOLVE", 0.5, note="已更换井盖"),
        _step(done, "DISPATCH", 0.2, **dispatch), _step(done, "VERIFY", 0.6, note="已核查"),
        _step(done, "CLOSE", 0.7),
        bad, _step(bad, "ACCEPT", 0.1), _step(bad, "CLOSE", 0.2),  # CLOSE before DISPATCH
        _step(dict(bad, report_id=f"{prefix}-nobody"), "ACCEPT", 0.1),  # never submitted
    ]  # fmt: skip
    late_id, done_id = late["report_id"], done["report_id"]
    worker = WorkerProcess(settings, tmp_path / "worker.log")
    _send_and_run(
        settings, worker, events,
        lambda: (
            _orders(settings, prefix).get(late_id, (None, 0))[1] == 1
            and _orders(settings, prefix).get(done_id, ("",))[0] == "closed"
        ),
        "the escalation and the closed order",
    )  # fmt: skip
    # after the restart, a second overdue report proves the timer ran again
    again = _report(prefix, 4, villages[3], occurred_at=(now - timedelta(hours=5)).isoformat())
    _send_and_run(
        settings, worker, [again],
        lambda: _orders(settings, prefix).get(again["report_id"], (None, 0))[1] == 1,
        "the escalation after the restart",
    )  # fmt: skip
    orders = _orders(settings, prefix)
    assert orders[late_id] == ("dispatched", 1, "county", None)  # street → county, once
    assert orders[done_id] == ("closed", 0, "street", True)
    assert set(orders) == {late_id, done_id, bad["report_id"], again["report_id"]}
    assert orders[bad["report_id"]][0] == "accepted"
    # every stored version of the late order has at most one escalation, with one deadline
    history = _query(
        settings,
        "SELECT max(escalations), uniqExactIf(deadline, escalations = 1) FROM {db}.work_orders "
        "WHERE report_id = {p:String}",
        late_id,
    )
    assert history == [(1, 1)]
    root = workorders.alert_root(late_id)
    alerts = _query(
        settings,
        "SELECT msg_type, status, level, messages FROM {db}.alerts FINAL "
        "WHERE root_id = {p:String} AND source = 'sla'",
        root,
    )
    assert alerts == [("Alert", "active", "yellow", [root])]
    raw = _query(
        settings,
        "SELECT uniqExact(received_at), max(length(messages)) FROM {db}.alerts "
        "WHERE root_id = {p:String}",
        root,
    )
    assert raw == [(1, 1)]  # one escalation time, never a second message
    letters = _query(
        settings,
        "SELECT reason, count() FROM {db}.dead_letters FINAL "
        "WHERE positionUTF8(value, {p:String}) > 0 "
        "GROUP BY reason ORDER BY reason",
        prefix,
    )
    assert letters == [(workorders.INVALID_TRANSITION, 1), (workorders.UNKNOWN_REPORT, 1)]
    assert "Traceback" not in worker.log_text()


def _repeats(settings: Settings, prefix: str) -> dict[str, str]:
    rows = _query(
        settings,
        "SELECT report_id, repeat_of FROM {db}.work_orders FINAL "
        "WHERE startsWith(report_id, {p:String})",
        prefix,
    )
    return {str(r[0]): str(r[1]) for r in rows}


def test_repeat_complaints_across_channels_and_a_restart(
    run: Settings,  # noqa: F811
    tmp_path: Path,
) -> None:
    """重复诉求: the example's reporter (李秀兰) raises the same 井盖 problem again by another
    channel within 30 days: the later order names the first; another person, another
    category, a report more than 30 days before and a report after a worker restart (the
    index comes back from its changelog) are told apart."""
    prefix = f"RP{uuid.uuid4().hex[:8]}"
    villages = divisions.villages_under("430602")
    now = datetime.now(UTC)

    def report(n: int, days_ago: float, channel: str, **changes: Any) -> dict[str, Any]:
        at = (now - timedelta(days=days_ago)).isoformat()
        return _report(prefix, n, villages[n], occurred_at=at, channel=channel, **changes)

    other_person = {"id": "wx-someone-else", "name": "赵六", "phone": "13800001111"}
    old = report(1, 40, "app")  # more than 30 days before `first`: not what it repeats
    first = report(2, 3, "group_message")
    again = report(3, 1, "hotline")  # same person and category, by phone: repeats `first`
    other = report(4, 1, "app", reporter=other_person)  # another person
    lamp = report(5, 1, "app", category_hint="P0102", description="小区门口路灯不亮，晚上很黑")
    worker = WorkerProcess(run, tmp_path / "worker.log")
    # a repeat is found when the report it repeats arrived first (workorders.find_repeat): the
    # earlier reports go first, as they would days before; sent together, the report
    # partitions may deliver `again` before `first`
    _send_and_run(
        run, worker, [old, first], lambda: len(_repeats(run, prefix)) == 2, "the earlier orders"
    )
    _send_and_run(
        run, worker, [again, other, lamp],
        lambda: (
            len(_repeats(run, prefix)) == 5
            and _repeats(run, prefix)[again["report_id"]] == first["report_id"]
        ),
        "every order, the repeat marked on its order",
    )  # fmt: skip
    latest = report(6, 0.01, "one_click")  # after a restart: the index from its changelog
    _send_and_run(
        run, worker, [latest],
        lambda: _repeats(run, prefix).get(latest["report_id"]) == first["report_id"],
        "the repeat after the restart",
    )  # fmt: skip
    repeats = _repeats(run, prefix)
    assert repeats == {
        old["report_id"]: "",
        first["report_id"]: "",
        again["report_id"]: first["report_id"],
        other["report_id"]: "",
        lamp["report_id"]: "",
        latest["report_id"]: first["report_id"],
    }
    categories = _query(
        run,
        "SELECT category_code FROM {db}.work_orders FINAL WHERE report_id = {p:String}",
        lamp["report_id"],
    )
    assert categories == [("P0102",)]
    assert "Traceback" not in worker.log_text()
