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


def test_a_simulated_day_gives_the_manifest_on_time_rates_per_department() -> None:
    """Sending order, late steps included: no step is rejected and the on-time rates per
    department equal those the simulator computes from its own timestamps."""
    from pipelines import simulator

    config = simulator.SimConfig(seed=7, reports=600, forms=0, warnings=0, minutes=24 * 60)
    events = simulator.generate(config, now=T0)
    states: dict[str, dict[str, Any]] = {}
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
