"""Work-order state machine: every transition, invalid steps with reasons, out-of-order steps,
SLA escalation exactly once per breach, the on-time flag, rows."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pipelines import alerts, contracts, reports, workorders
from pipelines.errors import ValidationError
from pipelines.workorders import (
    ACCEPTED,
    CANCELLED,
    CLOSED,
    DISPATCHED,
    INVALID_TRANSITION,
    REOPENED,
    RESOLVED,
    SUBMITTED,
    UNKNOWN_REPORT,
    VERIFIED,
)

pytestmark = pytest.mark.unit

EXAMPLES = Path(contracts.SCHEMA_DIR) / "examples" / "report.jsonl"
T0 = datetime(2024, 6, 12, 0, 41, 27, tzinfo=UTC)  # the example SUBMIT (P0101: 4 h, street)
TOL = 3_600_000  # one hour
OPERATOR = {"id": "op-1", "name": "王强", "department": "综治中心", "role": "受理员"}


def _submit_record() -> dict[str, Any]:
    line = EXAMPLES.read_text(encoding="utf-8").splitlines()[0]
    return contracts.from_json("report", json.loads(line))


def _order() -> dict[str, Any]:
    order = reports.work_order(
        _submit_record(), salt="s", partition=2, offset=10, received_at=T0 + timedelta(seconds=1)
    )
    return workorders.open_order(order)


def _step(action: str, minutes: float, *, received: float | None = None, **extra: Any) -> dict:
    record = {
        "event_id": str(uuid.uuid4()),
        "report_id": "YY-20240612-000123",
        "action": action,
        "occurred_at": T0 + timedelta(minutes=minutes),
        "operator": OPERATOR,
        "assigned_department": extra.pop("assigned_department", None),
        "corrected_category": extra.pop("corrected_category", None),
    }
    arrived = T0 + timedelta(minutes=minutes if received is None else received)
    return workorders.step_of(
        record, partition=2, offset=11, received_at=arrived, key=b"k", value=b"v"
    )


def _run(state: dict[str, Any], *steps: dict[str, Any]) -> dict[str, Any]:
    for step in steps:
        state = workorders.apply(state, step, tolerance_ms=TOL).state
    return state


def _path(until: str) -> list[dict[str, Any]]:
    steps = [
        _step("ACCEPT", 5),
        _step("DISPATCH", 10, assigned_department="岳阳楼区市政设施管理处"),
        _step("RESOLVE", 120),
        _step("VERIFY", 150),
        _step("CLOSE", 160),
    ]
    names = [s["action"] for s in steps]
    return steps[: names.index(until) + 1]


def test_new_order_from_the_routed_submit() -> None:
    state = _order()
    assert state["state"] == SUBMITTED
    assert state["level"] == "street" and state["sla_hours"] == 4
    assert (
        state["deadline_ms"] == state["first_deadline_ms"] == reports.to_ms(T0 + timedelta(hours=4))
    )
    assert state["county"] == "岳阳楼区" and state["partition"] == 2
    json.dumps(state)  # JSON-friendly: it lives in a Faust table with a JSON changelog


@pytest.mark.parametrize(
    ("until", "expected"),
    [
        ("ACCEPT", ACCEPTED),
        ("DISPATCH", DISPATCHED),
        ("RESOLVE", RESOLVED),
        ("VERIFY", VERIFIED),
        ("CLOSE", CLOSED),
    ],
)
def test_the_normal_path(until: str, expected: str) -> None:
    state = _run(_order(), *_path(until))
    assert state["state"] == expected
    assert state["last_action"] == until
    assert len(state["events"]) == 1 + len(_path(until))


def test_dispatch_sets_the_assigned_department_and_resolve_the_on_time_flag() -> None:
    state = _run(_order(), *_path("DISPATCH"))
    assert state["department"] == "岳阳楼区市政设施管理处"
    assert state["routed_department"] != state["department"]
    assert state["on_time"] is None
    resolved = _run(state, _step("RESOLVE", 4 * 60))  # exactly at the deadline: on time
    assert resolved["on_time"] is True
    assert resolved["resolved_ms"] == reports.to_ms(T0 + timedelta(hours=4))
    late = _run(state, _step("RESOLVE", 4 * 60 + 1))
    assert late["on_time"] is False


@pytest.mark.parametrize("from_step", ["DISPATCH", "RESOLVE", "VERIFY"])
def test_reopen_goes_back_to_dispatch(from_step: str) -> None:
    state = _run(_order(), *_path(from_step), _step("REOPEN", 170))
    assert state["state"] == REOPENED
    assert state["reopens"] == 1
    assert state["resolved_ms"] is None and state["on_time"] is None
    again = _run(
        state,
        _step("DISPATCH", 175, assigned_department="市容环境卫生管理处"),
        _step("RESOLVE", 300),
    )
    assert again["state"] == RESOLVED and again["department"] == "市容环境卫生管理处"
    assert again["on_time"] is False  # judged against the first deadline


@pytest.mark.parametrize("until", [None, "ACCEPT", "DISPATCH", "RESOLVE", "VERIFY"])
def test_cancel_from_every_open_state(until: str | None) -> None:
    state = _run(_order(), *(_path(until) if until else []), _step("CANCEL", 200))
    assert state["state"] == CANCELLED
    assert state["cancelled_ms"] == reports.to_ms(T0 + timedelta(minutes=200))


@pytest.mark.parametrize(
    ("until", "action"),
    [
        (None, "REOPEN"),
        ("ACCEPT", "ACCEPT"),  # behind the state (another event id)
        ("ACCEPT", "REOPEN"),
        ("RESOLVE", "DISPATCH"),
        ("VERIFY", "RESOLVE"),
        ("DISPATCH", "UNKNOWN"),
        ("DISPATCH", "SUBMIT"),
    ],
)
def test_steps_the_state_does_not_allow(until: str | None, action: str) -> None:
    state = _run(_order(), *(_path(until) if until else []))
    with pytest.raises(ValidationError) as caught:
        workorders.apply(state, _step(action, 300), tolerance_ms=TOL)
    assert caught.value.reason == INVALID_TRANSITION


@pytest.mark.parametrize("end", ["CLOSE", "CANCEL"])
@pytest.mark.parametrize("action", ["ACCEPT", "RESOLVE", "REOPEN", "CANCEL", "CLOSE"])
def test_no_step_after_close_or_cancel(end: str, action: str) -> None:
    state = (
        _run(_order(), *_path("CLOSE")) if end == "CLOSE" else _run(_order(), _step("CANCEL", 3))
    )
    with pytest.raises(ValidationError) as caught:
        workorders.apply(state, _step(action, 500), tolerance_ms=TOL)
    assert caught.value.reason == INVALID_TRANSITION
    assert "already ended" in caught.value.message


def test_close_before_dispatch_is_invalid() -> None:
    state = _run(_order(), _step("ACCEPT", 5))
    with pytest.raises(ValidationError) as caught:
        workorders.apply(state, _step("CLOSE", 30), tolerance_ms=TOL)
    assert caught.value.reason == INVALID_TRANSITION
    assert "3 earlier steps are missing" in caught.value.message


def test_a_step_of_an_unknown_report() -> None:
    with pytest.raises(ValidationError) as caught:
        workorders.apply(None, _step("ACCEPT", 5), tolerance_ms=TOL)
    assert caught.value.reason == UNKNOWN_REPORT


def test_a_replayed_step_changes_nothing() -> None:
    accept = _step("ACCEPT", 5)
    state = _run(_order(), accept)
    outcome = workorders.apply(state, accept, tolerance_ms=TOL)
    assert outcome.duplicate and outcome.state == state and not outcome.applied


# --- out of order ----------------------------------------------------------------------------


def test_resolve_before_its_dispatch_waits_and_applies_when_dispatch_arrives() -> None:
    state = _run(_order(), _step("ACCEPT", 5))
    resolve = _step("RESOLVE", 60, received=61)
    early = workorders.apply(state, resolve, tolerance_ms=TOL)
    assert early.buffered and early.state["state"] == ACCEPTED
    assert [p["event_id"] for p in early.state["pending"]] == [resolve["event_id"]]
    dispatch = _step("DISPATCH", 10, received=70, assigned_department="市政")
    late = workorders.apply(early.state, dispatch, tolerance_ms=TOL)
    assert late.applied == [dispatch["event_id"], resolve["event_id"]]
    assert late.state["state"] == RESOLVED and late.state["pending"] == []
    assert late.state["on_time"] is True
    # the same buffered step sent again is a replay, not a second pending step
    assert workorders.apply(early.state, resolve, tolerance_ms=TOL).duplicate


def test_two_late_steps_and_the_rest_in_any_order() -> None:
    accept, dispatch, resolve, verify, close = _path("CLOSE")
    # ACCEPT and DISPATCH late: RESOLVE waits with two steps missing, then VERIFY and CLOSE
    # with the same two (buffered steps count as present)
    state = _run(_order(), resolve, verify, close)
    assert state["state"] == SUBMITTED and len(state["pending"]) == 3
    state = _run(state, dispatch)
    assert state["state"] == SUBMITTED and len(state["pending"]) == 4
    state = _run(state, accept)
    assert state["state"] == CLOSED and state["pending"] == []
    in_order = [accept, dispatch, resolve, verify, close]
    assert state["events"][1:] == [s["event_id"] for s in in_order]


def test_a_buffered_step_is_rejected_after_the_tolerance() -> None:
    state = _run(_order(), _step("ACCEPT", 5))
    state = workorders.apply(state, _step("RESOLVE", 60), tolerance_ms=TOL).state
    same, none = workorders.expire(state, T0 + timedelta(minutes=119), tolerance_ms=TOL)
    assert none == [] and same["pending"] == state["pending"]
    later, rejected = workorders.expire(state, T0 + timedelta(minutes=121), tolerance_ms=TOL)
    assert [(p["action"], e.reason) for p, e in rejected] == [("RESOLVE", INVALID_TRANSITION)]
    assert later["pending"] == [] and later["revision"] == state["revision"] + 1
    assert workorders.original_bytes(rejected[0][0]) == (b"k", b"v")


def test_a_buffered_step_is_rejected_when_the_order_is_cancelled() -> None:
    state = _run(_order(), _step("ACCEPT", 5))
    state = workorders.apply(state, _step("RESOLVE", 60), tolerance_ms=TOL).state
    outcome = workorders.apply(state, _step("CANCEL", 61), tolerance_ms=TOL)
    assert outcome.state["state"] == CANCELLED
    assert [p["action"] for p, _ in outcome.rejected] == ["RESOLVE"]
    assert outcome.rejected[0][1].reason == INVALID_TRANSITION


# --- SLA -------------------------------------------------------------------------------------


def test_escalation_exactly_once_per_breach() -> None:
    state = _run(_order(), _step("ACCEPT", 5))
    before = T0 + timedelta(hours=3, minutes=59)
    same, none, rows, _ = workorders.escalate(state, before)
    assert none is None and rows == [] and same == state
    at = T0 + timedelta(hours=4, minutes=1)
    first, esc, rows, targets = workorders.escalate(state, at)
    assert esc is not None and esc.breach == 1
    assert (esc.from_level, esc.to_level) == ("street", "county")
    assert first["level"] == "county" and first["escalations"] == 1
    assert first["deadline_ms"] == reports.to_ms(at + timedelta(hours=4))
    assert first["first_deadline_ms"] == state["first_deadline_ms"]
    # the timer runs again before the new deadline: nothing happens
    again, none, rows2, _ = workorders.escalate(first, at + timedelta(minutes=5))
    assert none is None and rows2 == [] and again["escalations"] == 1
    # the new deadline passes too: a second breach, level stays county (the top)
    second, esc2, _, _ = workorders.escalate(first, at + timedelta(hours=4, minutes=1))
    assert esc2 is not None and esc2.breach == 2 and second["level"] == "county"
    assert second["escalations"] == 2


def test_community_orders_go_to_street_first() -> None:
    state = dict(_order(), level="community", first_level="community")
    new, esc, _, _ = workorders.escalate(state, T0 + timedelta(hours=5))
    assert esc is not None and (esc.from_level, esc.to_level) == ("community", "street")


@pytest.mark.parametrize("until", ["RESOLVE", "VERIFY", "CLOSE"])
def test_resolved_orders_are_never_overdue(until: str) -> None:
    state = _run(_order(), *_path(until))
    assert not workorders.is_overdue(state, T0 + timedelta(days=3))
    assert workorders.escalate(state, T0 + timedelta(days=3))[1] is None


def test_cancelled_orders_are_never_overdue() -> None:
    state = _run(_order(), _step("CANCEL", 3))
    assert not workorders.is_overdue(state, T0 + timedelta(days=3))


def test_sla_alert_rows_alert_update_and_cancel_on_resolve() -> None:
    cols = alerts.ALERT_COLUMNS
    state = _run(_order(), *_path("DISPATCH"))
    first, _, rows, targets = workorders.escalate(state, T0 + timedelta(hours=5))
    row = dict(zip(cols, rows[0], strict=True))
    assert row["source"] == "sla" and row["msg_type"] == "Alert" and row["status"] == "active"
    assert row["root_id"] == "govstream-sla-YY-20240612-000123"
    assert row["level"] == "yellow" and row["hazard_name"] == workorders.SLA_HAZARD
    assert row["region_codes"] == ["430602001001"] and len(targets) == 1
    assert "YY-20240612-000123" in row["headline"] and "李秀兰" not in str(rows)
    second, _, rows, _ = workorders.escalate(first, T0 + timedelta(hours=9, minutes=5))
    row2 = dict(zip(cols, rows[0], strict=True))
    assert row2["msg_type"] == "Update" and row2["level"] == "orange"
    assert row2["root_id"] == row["root_id"] and row2["version"] > row["version"]
    done = workorders.apply(second, _step("RESOLVE", 600), tolerance_ms=TOL)
    row3 = dict(zip(cols, done.alert_rows[0], strict=True))
    assert row3["status"] == "cancelled" and row3["version"] > row2["version"]
    assert done.state["on_time"] is False and done.state["escalations"] == 2
    # nothing more to cancel on the next steps
    verified = workorders.apply(done.state, _step("VERIFY", 610), tolerance_ms=TOL)
    assert verified.alert_rows == []


# --- rows ------------------------------------------------------------------------------------


def test_order_row_follows_the_state() -> None:
    state = _run(_order(), *_path("RESOLVE"))
    row = dict(zip(workorders.ORDER_COLUMNS, workorders.order_row(state), strict=True))
    assert row["state"] == RESOLVED and row["on_time"] is True
    assert row["resolved_at"] == T0 + timedelta(minutes=120)
    assert row["verified_at"] is None and row["escalations"] == 0
    assert row["department"] == "岳阳楼区市政设施管理处"
    assert row["version"] == state["revision"] == 4
    assert row["county_code"] == "430602000000" and row["pending_steps"] == 0


# --- the simulator's day ---------------------------------------------------------------------


def replay_reports(events: Any) -> dict[str, Any]:
    """Every valid report event of a simulated run through workorders in sending order
    (arrival = emit time), asserting no step is rejected or left buffered; the orders' states
    by report id."""
    states: dict[str, Any] = {}
    for n, e in enumerate(events):
        if e.topic != contracts.REPORT or e.expected != "ok" or e.value is None:
            continue
        record = contracts.from_json(contracts.REPORT, e.value)
        arrived = reports.from_ms(e.emit_ms)
        if record["action"] == "SUBMIT":
            order = reports.work_order(record, salt="s", partition=0, offset=n, received_at=arrived)
            states[e.key] = workorders.open_order(order)
            continue
        step = workorders.step_of(record, partition=0, offset=n, received_at=arrived)
        outcome = workorders.apply(states[e.key], step, tolerance_ms=2 * TOL)
        assert outcome.rejected == []
        states[e.key] = outcome.state
    assert all(s["pending"] == [] for s in states.values())
    return states


def test_a_simulated_day_gives_the_manifest_on_time_rates_per_department() -> None:
    """Sending order, late steps included: no step is rejected and the on-time rates per
    department equal those the simulator computes from its own timestamps."""
    from pipelines import simulator

    config = simulator.SimConfig(seed=7, reports=600, forms=0, warnings=0, minutes=24 * 60)
    events = simulator.generate(config, now=T0)
    states = replay_reports(events)
    got: dict[str, dict[str, Any]] = {}
    for s in states.values():
        if s["resolved_ms"] is not None:
            stats = got.setdefault(s["department"], {"resolved": 0, "on_time": 0})
            stats["resolved"] += 1
            stats["on_time"] += int(s["on_time"])
    for stats in got.values():
        stats["rate"] = stats["on_time"] / stats["resolved"]
    expected = simulator.expected_on_time(events)
    assert got == expected
    assert sum(s["resolved"] for s in expected.values()) > 50
    assert (
        0
        < sum(s["on_time"] for s in expected.values())
        < sum(s["resolved"] for s in expected.values())
    )  # both on-time and late orders in the day


def test_the_sla_scan_precheck_never_skips_an_order_that_would_change() -> None:
    """needs_attention() False must mean expire() and escalate() are no-ops, for every kind of
    order and time (it lets the SLA scan skip most orders without copying them)."""
    accepted = _run(_order(), _step("ACCEPT", 5))
    pending = workorders.apply(accepted, _step("RESOLVE", 9), tolerance_ms=TOL).state
    states = [
        _order(), accepted, pending, _run(_order(), _step("CANCEL", 3)),
        *(_run(_order(), *_path(until)) for until in ("RESOLVE", "VERIFY", "CLOSE")),
    ]  # fmt: skip
    assert any(s["pending"] for s in states)
    for state in states:
        for minutes in (0, 30, 239, 241, 60 * 24, 60 * 24 * 30):
            now = T0 + timedelta(minutes=minutes)
            if workorders.needs_attention(state, reports.to_ms(now)):
                continue
            assert workorders.expire(state, now, tolerance_ms=TOL)[1] == []
            assert workorders.escalate(state, now)[1] is None
    overdue = T0 + timedelta(hours=5)
    assert workorders.needs_attention(accepted, reports.to_ms(overdue))
    assert not workorders.needs_attention(accepted, reports.to_ms(T0 + timedelta(hours=1)))


def test_a_step_of_another_report_is_refused_not_folded_in() -> None:
    step = _step("ACCEPT", 5)
    step["report_id"] = "YY-20240612-000999"  # mis-keyed onto this order's partition and key
    with pytest.raises(ValidationError) as caught:
        workorders.apply(_order(), step, tolerance_ms=TOL)
    assert caught.value.reason == "bad_key"


def test_a_state_rebuilt_from_its_row_goes_on_as_the_lost_one_would() -> None:
    state = _run(_order(), _step("ACCEPT", 5), _step("DISPATCH", 10))
    row = dict(zip(workorders.ORDER_COLUMNS, workorders.order_row(state), strict=True))
    rebuilt = workorders.state_from_row(row, state["events"], state["partition"])
    assert {k: v for k, v in rebuilt.items() if k not in ("alert", "pending")} == {
        k: v for k, v in state.items() if k not in ("alert", "pending")
    }
    # a replayed step is still a duplicate; the next step applies as it would have
    replay = dict(_step("DISPATCH", 10), event_id=state["events"][-1])
    assert workorders.apply(rebuilt, replay, tolerance_ms=TOL).duplicate
    after = _run(rebuilt, _step("RESOLVE", 30))
    assert after["state"] == _run(state, _step("RESOLVE", 30))["state"] == "resolved"


# --- the closed loop (issue 19): 签收, response, 转派, 回访, 督办, 问题工单 ---------------------


def _revisit(minutes: float, rating: str, solved: bool | None) -> dict[str, Any]:
    return dict(_step("REVISIT", minutes), satisfaction=rating, resident_solved=solved)


def _transfer(minutes: float, department: str) -> dict[str, Any]:
    return _step("TRANSFER", minutes, assigned_department=department)


def _closed() -> dict[str, Any]:
    return _run(_order(), *_path("CLOSE"))


def _kinds(rows: list[list[Any]]) -> list[tuple[str, str, str]]:
    cols = alerts.ALERT_COLUMNS
    named = [dict(zip(cols, r, strict=True)) for r in rows]
    return [(r["source"], r["hazard_name"], r["status"]) for r in named]


def test_every_priority_has_a_sign_for_deadline_with_its_source() -> None:
    from pipelines import taxonomy

    hours = workorders.sign_hours_by_priority()
    assert {c.priority for c in taxonomy.load().values()} <= hours.keys()
    assert hours["P1"] == 0.5 and hours["P4"] == 24
    with workorders.SIGN_DEADLINES.open(encoding="utf-8") as f:
        assert all(line.rstrip().split(",")[3] for line in list(f)[1:])


@pytest.mark.parametrize(("minutes", "on_time"), [(5, True), (30, True), (31, False)])
def test_sign_for_is_the_accept_judged_by_the_priority_deadline(
    minutes: int, on_time: bool
) -> None:
    state = _order()  # the example is P1: 30 minutes
    assert state["sign_deadline_ms"] == reports.to_ms(T0 + timedelta(minutes=30))
    assert state["signed_on_time"] is None and state["responded_ms"] is None
    accepted = _run(state, _step("ACCEPT", minutes))
    assert accepted["signed_on_time"] is on_time
    assert accepted["responded_ms"] == reports.to_ms(T0 + timedelta(minutes=minutes))
    later = _run(accepted, _step("DISPATCH", minutes + 5, assigned_department="市政"))
    assert later["responded_ms"] == accepted["responded_ms"]  # the first step only


def test_a_cancel_is_a_response_too() -> None:
    state = _run(_order(), _step("CANCEL", 3))
    assert state["responded_ms"] == reports.to_ms(T0 + timedelta(minutes=3))
    assert state["signed_on_time"] is None


def test_transfer_sends_a_dispatched_order_to_another_department() -> None:
    state = _run(_order(), *_path("DISPATCH"), _transfer(30, "市容环境卫生管理处"))
    assert state["state"] == DISPATCHED and state["transfers"] == 1
    assert state["department"] == "市容环境卫生管理处"
    assert state["dispatched_ms"] == reports.to_ms(T0 + timedelta(minutes=30))
    done = _run(state, _step("RESOLVE", 60))
    assert done["state"] == RESOLVED and done["on_time"] is True
    with pytest.raises(ValidationError) as caught:
        workorders.apply(done, _transfer(70, "别处"), tolerance_ms=TOL)
    assert caught.value.reason == INVALID_TRANSITION


def test_a_transfer_before_its_dispatch_waits_for_it() -> None:
    accepted = _run(_order(), _step("ACCEPT", 5))
    early = workorders.apply(accepted, _transfer(30, "乙"), tolerance_ms=TOL)
    assert early.buffered
    state = _run(early.state, _step("DISPATCH", 10, assigned_department="甲"))
    assert state["department"] == "乙" and state["transfers"] == 1 and state["pending"] == []


@pytest.mark.parametrize(
    ("rating", "solved", "reopens"),
    [
        ("satisfied", True, False),
        ("basically_satisfied", True, False),
        ("basically_satisfied", False, False),
        ("dissatisfied", True, False),  # the manner, not the result: no rework
        ("dissatisfied", False, True),  # 发回重办
        ("unreachable", None, False),
    ],
)
def test_revisit_after_close_and_the_rework_rule(
    rating: str, solved: bool | None, reopens: bool
) -> None:
    assert workorders.revisit_reopens(rating, solved) is reopens
    closed = _closed()
    state = _run(closed, _revisit(24 * 60, rating, solved))
    assert state["revisits"] == 1 and state["satisfaction"] == rating
    assert state["resident_solved"] is solved
    assert state["revisited_ms"] == reports.to_ms(T0 + timedelta(hours=24))
    if not reopens:
        assert state["state"] == CLOSED and state["closed_ms"] == closed["closed_ms"]
        assert state["reopens"] == 0
        return
    assert state["state"] == REOPENED and state["reopens"] == 1
    assert state["closed_ms"] is None and state["resolved_ms"] is None
    # the rework gets a new deadline from the callback; on time still means the first one
    assert state["deadline_ms"] == reports.to_ms(T0 + timedelta(hours=24 + 4))
    assert state["first_deadline_ms"] == closed["first_deadline_ms"]
    again = _run(
        state,
        _step("DISPATCH", 24 * 60 + 10, assigned_department="市政"),
        _step("RESOLVE", 24 * 60 + 60),
        _step("VERIFY", 24 * 60 + 70),
        _step("CLOSE", 24 * 60 + 80),
        _revisit(48 * 60, "satisfied", True),
    )
    assert again["state"] == CLOSED and again["on_time"] is False and again["revisits"] == 2
    assert again["satisfaction"] == "satisfied" and again["dissatisfied_streak"] == 0


def test_revisit_before_close_waits_and_never_on_an_open_or_cancelled_order() -> None:
    verified = _run(_order(), *_path("VERIFY"))
    revisit = _revisit(300, "satisfied", True)
    early = workorders.apply(verified, revisit, tolerance_ms=TOL)
    assert early.buffered and early.state["state"] == VERIFIED
    closed = workorders.apply(early.state, _step("CLOSE", 160), tolerance_ms=TOL)
    assert closed.applied[-1] == revisit["event_id"] and closed.state["revisits"] == 1
    for state in (_run(_order(), *_path("DISPATCH")), _run(_order(), _step("CANCEL", 3))):
        with pytest.raises(ValidationError) as caught:
            workorders.apply(state, _revisit(300, "satisfied", True), tolerance_ms=TOL)
        assert caught.value.reason == INVALID_TRANSITION


def test_no_response_within_24_hours_is_warned_once_and_cleared_by_a_step() -> None:
    state = _order()
    at = T0 + timedelta(hours=24, minutes=1)
    assert not workorders.supervision_due(state, reports.to_ms(at - timedelta(minutes=2)))
    assert workorders.needs_attention(state, reports.to_ms(at))
    # the SLA scan: the order is overdue (4 h) and unanswered (24 h) at once
    new, esc, rows, _ = workorders.escalate(state, at)
    assert esc is not None
    assert _kinds(rows) == [
        ("sla", workorders.SLA_HAZARD, "active"),
        ("supervision", "24小时未响应督办", "active"),
    ]
    assert new["warnings"] == ["no_response"]
    row = dict(zip(alerts.ALERT_COLUMNS, rows[1], strict=True))
    assert row["root_id"] == workorders.supervision_root(state["report_id"], "no_response")
    assert row["sent_at"] == T0 + timedelta(hours=24) and "李秀兰" not in str(rows)
    # next scan: the warning is not raised again
    assert "no_response" not in workorders.supervision_due(new, reports.to_ms(at) + 60_000)
    accepted = workorders.apply(new, _step("ACCEPT", 24 * 60 + 5), tolerance_ms=TOL)
    assert _kinds(accepted.alert_rows) == [("supervision", "24小时未响应督办", "cancelled")]
    assert accepted.state["warnings"] == ["no_response"]


def test_no_progress_for_three_days() -> None:
    state = _run(_order(), *_path("RESOLVE"))  # resolved: no SLA clock, but still open
    at = T0 + timedelta(minutes=120) + timedelta(days=3, minutes=1)
    same, esc, rows, _ = workorders.escalate(state, at - timedelta(minutes=2))
    assert rows == [] and same == state
    new, esc, rows, _ = workorders.escalate(state, at)
    assert esc is None and _kinds(rows) == [("supervision", "3日无进展督办", "active")]
    assert new["revision"] == state["revision"] + 1
    assert workorders.escalate(new, at + timedelta(days=5))[2] == []  # once
    verified = workorders.apply(new, _step("VERIFY", 5 * 24 * 60), tolerance_ms=TOL)
    assert _kinds(verified.alert_rows) == [("supervision", "3日无进展督办", "cancelled")]
    # closed orders are not waiting for progress
    assert workorders.supervision_due(_closed(), reports.to_ms(at + timedelta(days=9))) == []


def test_two_dissatisfied_ratings_in_a_row() -> None:
    state = _run(_closed(), _revisit(1440, "dissatisfied", True))
    assert state["dissatisfied_streak"] == 1 and state["warnings"] == []
    gap = workorders.apply(state, _revisit(1500, "unreachable", None), tolerance_ms=TOL)
    assert gap.alert_rows == [] and gap.state["dissatisfied_streak"] == 1
    second = workorders.apply(gap.state, _revisit(1600, "dissatisfied", True), tolerance_ms=TOL)
    assert _kinds(second.alert_rows) == [("supervision", "连续两次不满意督办", "active")]
    assert second.state["state"] == CLOSED and second.state["warnings"] == ["dissatisfied_twice"]
    third = workorders.apply(second.state, _revisit(1700, "dissatisfied", True), tolerance_ms=TOL)
    assert third.alert_rows == []  # once per condition and order
    fine = workorders.apply(third.state, _revisit(1800, "satisfied", True), tolerance_ms=TOL)
    assert _kinds(fine.alert_rows) == [("supervision", "连续两次不满意督办", "cancelled")]


@pytest.mark.parametrize("how", ["reopen", "transfer", "revisit"])
def test_the_third_rework_or_transfer_makes_a_problem_order(how: str) -> None:
    state = _run(_order(), *_path("DISPATCH"))
    assert state["level"] == "street"
    rows: list[list[Any]] = []
    for n in range(3):
        base = 20 + 100 * n
        if how == "transfer":
            outcome = workorders.apply(state, _transfer(base, f"部门{n}"), tolerance_ms=TOL)
        elif how == "reopen":
            outcome = workorders.apply(state, _step("REOPEN", base), tolerance_ms=TOL)
            rows += outcome.alert_rows
            outcome = workorders.apply(
                outcome.state, _step("DISPATCH", base + 1, assigned_department="甲"),
                tolerance_ms=TOL,
            )  # fmt: skip
        else:
            closed = _run(
                state, _step("RESOLVE", base), _step("VERIFY", base + 1), _step("CLOSE", base + 2)
            )
            outcome = workorders.apply(
                closed, _revisit(base + 3, "dissatisfied", False), tolerance_ms=TOL
            )
            rows += outcome.alert_rows
            outcome = workorders.apply(
                outcome.state, _step("DISPATCH", base + 4, assigned_department="甲"),
                tolerance_ms=TOL,
            )  # fmt: skip
        rows += outcome.alert_rows
        state = outcome.state
        assert state["problem"] is (n == 2)
    assert max(state["reopens"], state["transfers"]) == 3
    assert state["level"] == "county" and state["problem_ms"] is not None
    problem = [k for k in _kinds(rows) if k[1] == "问题工单提级督办"]
    assert problem == [("supervision", "问题工单提级督办", "active")]
    assert "problem_order" in state["warnings"]
    row = dict(zip(workorders.ORDER_COLUMNS, workorders.order_row(state), strict=True))
    assert row["problem"] is True and row["level"] == "county"
    if how == "transfer":
        more = workorders.apply(state, _transfer(900, "再转"), tolerance_ms=TOL)
        assert more.alert_rows == [] and more.state["transfers"] == 4  # flagged once


# --- 督办 thresholds as settings --------------------------------------------------------------

RULES = workorders.SupervisionRules(
    no_response_hours=12, no_progress_days=1.5, dissatisfied_in_a_row=3, problem_after=2
)


def test_the_default_rules_are_the_settings_defaults_and_the_regulation_values() -> None:
    from pipelines.settings import Settings

    defaults = workorders.SupervisionRules.of(Settings.model_construct())
    assert defaults == workorders.DEFAULT_RULES == workorders.SupervisionRules()
    assert defaults.no_response_ms == 24 * 3_600_000
    assert defaults.no_progress_ms == 3 * 24 * 3_600_000
    assert (defaults.dissatisfied_in_a_row, defaults.problem_after) == (2, 3)
    names = {c: workorders.supervision_hazard(c) for c in workorders.SUPERVISION}
    assert names == {c: name for c, (name, _level) in workorders.SUPERVISION.items()}


def test_no_response_follows_the_rule_passed_in() -> None:
    state = _order()
    at = T0 + timedelta(hours=12, minutes=1)
    assert workorders.supervision_due(state, reports.to_ms(at)) == []  # 24 h by default
    assert workorders.supervision_due(state, reports.to_ms(at), RULES) == ["no_response"]
    assert not workorders.supervision_due(state, reports.to_ms(at) - 120_000, RULES)
    assert workorders.needs_attention(state, reports.to_ms(at), RULES)
    new, _, rows, _ = workorders.escalate(state, at, RULES)
    warning = dict(zip(alerts.ALERT_COLUMNS, rows[-1], strict=True))
    assert warning["hazard_name"] == "12小时未响应督办"
    assert warning["sent_at"] == T0 + timedelta(hours=12)
    assert "12小时内无响应" in warning["description"] and new["warnings"] == ["no_response"]


def test_no_progress_follows_the_rule_passed_in() -> None:
    state = _run(_order(), *_path("RESOLVE"))
    at = T0 + timedelta(minutes=120) + timedelta(days=1.5, minutes=1)
    assert workorders.escalate(state, at)[2] == []
    _, esc, rows, _ = workorders.escalate(state, at, RULES)
    assert esc is None and _kinds(rows) == [("supervision", "1.5日无进展督办", "active")]


def test_dissatisfied_in_a_row_follows_the_rule_passed_in() -> None:
    state = _closed()
    for n, minutes in enumerate((1440, 1500, 1600), start=1):
        outcome = workorders.apply(
            state, _revisit(minutes, "dissatisfied", True), tolerance_ms=TOL, rules=RULES
        )
        state = outcome.state
        if n < 3:
            assert outcome.alert_rows == [], n  # two in a row warn only under the default
        else:
            assert _kinds(outcome.alert_rows) == [("supervision", "连续3次不满意督办", "active")]
    assert state["warnings"] == ["dissatisfied_twice"]  # the condition keeps its name
    fine = workorders.apply(
        state, _revisit(1700, "basically_satisfied", True), tolerance_ms=TOL, rules=RULES
    )
    assert _kinds(fine.alert_rows) == [("supervision", "连续3次不满意督办", "cancelled")]


def test_problem_after_follows_the_rule_passed_in() -> None:
    state = _run(_order(), *_path("DISPATCH"))
    first = workorders.apply(state, _transfer(20, "甲"), tolerance_ms=TOL, rules=RULES)
    assert first.state["problem"] is False
    second = workorders.apply(first.state, _transfer(30, "乙"), tolerance_ms=TOL, rules=RULES)
    assert second.state["problem"] is True and second.state["level"] == "county"
    assert _kinds(second.alert_rows) == [("supervision", "问题工单提级督办", "active")]
    # the same order under the defaults: two transfers are no 问题工单 yet
    assert _run(state, _transfer(20, "甲"), _transfer(30, "乙"))["problem"] is False


def test_an_order_from_before_the_closed_loop_goes_on() -> None:
    """A state opened before issue 19 (no closed-loop fields) takes the new steps."""
    new_fields = set(workorders.upgraded(_order())) - {
        k for k in _order() if k not in workorders._closed_loop("P1", 0)
    }
    old = {k: v for k, v in _run(_order(), _step("ACCEPT", 5)).items() if k not in new_fields}
    assert "transfers" not in old
    row = dict(zip(workorders.ORDER_COLUMNS, workorders.order_row(old), strict=True))
    assert row["signed_on_time"] is True and row["transfers"] == 0 and row["warnings"] == []
    assert workorders.needs_attention(old, reports.to_ms(T0 + timedelta(hours=5)))
    state = _run(old, _step("DISPATCH", 10, assigned_department="甲"), _transfer(20, "乙"))
    assert state["transfers"] == 1 and state["responded_ms"] == reports.to_ms(
        T0 + timedelta(minutes=5)
    )


def test_a_rebuilt_state_keeps_the_closed_loop_and_warns_no_condition_twice() -> None:
    state = _run(
        _closed(), _revisit(1440, "dissatisfied", True), _revisit(1500, "dissatisfied", True)
    )
    assert state["warnings"] == ["dissatisfied_twice"]
    row = dict(zip(workorders.ORDER_COLUMNS, workorders.order_row(state), strict=True))
    assert (row["satisfaction"], row["resident_solved"], row["revisits"]) == (
        "dissatisfied",
        True,
        2,
    )
    rebuilt = workorders.state_from_row(row, state["events"], state["partition"])
    skip = ("alert", "pending", "supervision")
    assert {k: v for k, v in rebuilt.items() if k not in skip} == {
        k: v for k, v in state.items() if k not in skip
    }
    third = workorders.apply(rebuilt, _revisit(1600, "dissatisfied", True), tolerance_ms=TOL)
    assert third.alert_rows == []
    # a row written before the migration's columns existed reads as an upgraded state
    old_row = {k: v for k, v in row.items() if k not in workorders.ORDER_COLUMNS[41:]}
    old = workorders.state_from_row(old_row, state["events"], state["partition"])
    assert old["warnings"] == [] and old["transfers"] == 0 and old["signed_on_time"] is True


# --- 分拨纠错: the dispatcher's corrected category (issue 14, item 3) -------------------------


def test_a_dispatch_corrects_the_category_and_keeps_the_classifiers_answer() -> None:
    before = _run(_order(), _step("ACCEPT", 5))
    dispatch = _step(
        "DISPATCH", 10, assigned_department="岳阳楼区城管执法局", corrected_category="S0702"
    )
    state = _run(before, dispatch)
    assert (state["corrected_category"], state["corrected_major"], state["corrected_minor"]) == (
        "S0702",
        "生态环境",
        "餐饮油烟",
    )
    assert state["corrected_ms"] == reports.to_ms(T0 + timedelta(minutes=10))
    # the classifier's answer, its routing and the running deadlines stay as they were
    same = (
        "category_code", "category_major", "category_minor", "classifier", "priority",
        "sla_hours", "routed_department", "deadline_ms", "first_deadline_ms", "level",
    )  # fmt: skip
    assert {k: state[k] for k in same} == {k: before[k] for k in same}
    assert state["category_code"] == "P0101" and state["department"] == "岳阳楼区城管执法局"
    row = dict(zip(workorders.ORDER_COLUMNS, workorders.order_row(state), strict=True))
    assert (row["category_code"], row["corrected_category"], row["corrected_minor"]) == (
        "P0101",
        "S0702",
        "餐饮油烟",
    )
    assert row["corrected_at"] == T0 + timedelta(minutes=10)
    rebuilt = workorders.state_from_row(row, state["events"], state["partition"])
    assert {k: rebuilt[k] for k in workorders.NO_CORRECTION} == {
        k: state[k] for k in workorders.NO_CORRECTION
    }
    # a replay changes nothing; a re-dispatch without a code keeps it, one with a code replaces it
    assert workorders.apply(state, dispatch, tolerance_ms=TOL).duplicate
    again = _run(state, _step("REOPEN", 60), _step("DISPATCH", 70, assigned_department="甲"))
    assert again["corrected_category"] == "S0702" and again["corrected_ms"] == state["corrected_ms"]
    other = _run(again, _step("REOPEN", 80), _step("DISPATCH", 90, corrected_category="E0605"))
    assert (other["corrected_category"], other["corrected_minor"]) == ("E0605", "农业生产")
    assert other["corrected_ms"] == reports.to_ms(T0 + timedelta(minutes=90))


def test_an_uncorrected_order_and_a_buffered_correction() -> None:
    plain = _run(_order(), *_path("CLOSE"))
    assert {k: plain[k] for k in workorders.NO_CORRECTION} == workorders.NO_CORRECTION
    row = dict(zip(workorders.ORDER_COLUMNS, workorders.order_row(plain), strict=True))
    assert row["corrected_category"] == "" and row["corrected_at"] is None
    # the DISPATCH arrives before the ACCEPT: buffered, the correction applies with it
    dispatch = _step("DISPATCH", 10, received=11, corrected_category="S0301")
    waiting = workorders.apply(_order(), dispatch, tolerance_ms=TOL)
    assert waiting.buffered and waiting.state["corrected_category"] == ""
    state = _run(waiting.state, _step("ACCEPT", 5, received=12))
    assert state["state"] == DISPATCHED and state["corrected_category"] == "S0301"
    # an order kept before the correction fields (and a step buffered then) goes on
    old = {k: v for k, v in _order().items() if k not in workorders.NO_CORRECTION}
    old_row = dict(zip(workorders.ORDER_COLUMNS, workorders.order_row(old), strict=True))
    assert old_row["corrected_category"] == "" and old_row["corrected_at"] is None
    old_step = {k: v for k, v in _step("ACCEPT", 5).items() if k != "corrected_category"}
    assert _run(old, old_step, dispatch)["corrected_category"] == "S0301"


# --- repeat complaints (重复诉求) ----------------------------------------------------------------


def _complaint(rid: str, person: str, category: str, day: float) -> dict[str, Any]:
    return {
        "report_id": rid,
        "person": person,
        "category": category,
        "occurred_ms": reports.to_ms(T0 + timedelta(days=day)),
    }


def test_complaint_of_a_routed_order_names_no_person() -> None:
    order = reports.work_order(_submit_record(), salt="s", partition=2, offset=10, received_at=T0)
    complaint = workorders.complaint_of(order)
    assert complaint["category"] == "P0101" and len(complaint["person"]) == 16
    assert "李秀兰" not in str(complaint) and "13907301234" not in str(complaint)
    assert complaint["occurred_ms"] == reports.to_ms(T0)


@pytest.mark.parametrize(
    ("person", "category", "day", "repeat_of"),
    [
        ("p1", "P0101", 5, "r1"),  # same person and category within 30 days
        ("p1", "P0101", 30, "r1"),  # exactly at the window's end
        ("p1", "P0101", 30.01, None),  # just after it
        ("p2", "P0101", 5, None),  # another person
        ("p1", "P0102", 5, None),  # another category
        ("", "P0101", 5, None),  # anonymous
    ],
)
def test_the_repeat_rule(person: str, category: str, day: float, repeat_of: str | None) -> None:
    earlier = [_complaint("r1", "p1", "P0101", 0), _complaint("rx", "", "P0101", 0)]
    new = _complaint("r2", person, category, day)
    assert workorders.find_repeat(earlier, new, 30) == repeat_of


def test_a_chain_points_at_its_first_report_and_praise_is_never_a_repeat() -> None:
    earlier = [_complaint("r2", "p1", "P0101", 10), _complaint("r1", "p1", "P0101", 1)]
    assert workorders.find_repeat(earlier, _complaint("r3", "p1", "P0101", 20), 30) == "r1"
    # r1 is out of r4's window, r2 is not
    assert workorders.find_repeat(earlier, _complaint("r4", "p1", "P0101", 35), 30) == "r2"
    thanks = [_complaint("t1", "p1", "X9999", 0)]
    assert workorders.find_repeat(thanks, _complaint("t2", "p1", "X9999", 1), 30) is None
    # a replay of r2 itself is not a repeat of r2; the window 0 keeps same-moment repeats only
    assert workorders.find_repeat(earlier, _complaint("r2", "p1", "P0101", 10), 30) == "r1"
    assert workorders.find_repeat(earlier, _complaint("r5", "p1", "P0101", 10), 0) == "r2"


def test_remembered_complaints_are_kept_for_the_window_only() -> None:
    kept: list[dict[str, Any]] = []
    for rid, day in (("r1", 0), ("r2", 10), ("r2", 10), ("r3", 35)):
        kept = workorders.remember_complaint(kept, _complaint(rid, "p1", "P0101", day), 30)
    assert [c["report_id"] for c in kept] == ["r2", "r3"]  # r1 too old, r2 once
    json.dumps(kept)  # JSON-friendly: a Faust table could keep it


def _routed(report_id: str, channel: str, day: float, **changes: Any) -> dict[str, Any]:
    record = {
        **_submit_record(),
        "report_id": report_id,
        "channel": channel,
        "occurred_at": T0 + timedelta(days=day),
        **changes,
    }
    return reports.work_order(record, salt="s", partition=0, offset=1, received_at=T0)


def test_the_same_person_repeats_across_channels() -> None:
    first = workorders.complaint_of(_routed("r1", "group_message", 0))
    again = workorders.complaint_of(_routed("r2", "hotline", 3))  # same reporter id, by phone
    assert first["person"] == again["person"] != ""
    assert workorders.find_repeat([first], again, 30) == "r1"
    # another reporter on the same day and category is not a repeat of r1
    other = dict(_submit_record()["reporter"], id="430602199001011234")
    third = workorders.complaint_of(_routed("r3", "app", 3, reporter=other))
    assert workorders.find_repeat([first], third, 30) is None


@pytest.mark.parametrize(
    ("person", "category", "indexed"),
    [("p1", "P0101", True), ("", "P0101", False), ("p1", "X9999", False)],
)
def test_only_named_categorised_complaints_are_indexed(
    person: str, category: str, indexed: bool
) -> None:
    assert workorders.may_repeat(_complaint("r1", person, category, 0)) is indexed


def test_marking_an_order_as_a_repeat_once() -> None:
    state = _order()
    marked = workorders.marked_repeat(state, "r0", 1_000)
    assert marked is not None and marked["repeat_of"] == "r0"
    assert marked["revision"] == state["revision"] + 1 and marked["updated_ms"] == 1_000
    assert state["repeat_of"] == ""  # the old state is not changed
    assert workorders.order_row(marked)[workorders.ORDER_COLUMNS.index("repeat_of")] == "r0"
    assert workorders.marked_repeat(marked, "r0", 2_000) is None  # a replayed mark
    assert workorders.marked_repeat(marked, "r9", 2_000) is None  # the first answer stays
    assert workorders.marked_repeat(state, state["report_id"], 2_000) is None
    assert workorders.marked_repeat(state, "", 2_000) is None
