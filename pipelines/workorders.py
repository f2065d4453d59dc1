"""Work-order supervision (督办), pure: the lifecycle state machine, SLA escalation and rows.

A work order's state is a JSON-friendly dict kept by the report agent in the Faust table
``work-orders`` keyed by ``report_id`` (the report topic's key, so every step of a report
reaches the same partition and the table is local). The normal path is

    受理 ACCEPT → 派遣 DISPATCH → 处置 RESOLVE → 核查 VERIFY → 结案 CLOSE

from the SUBMIT that opened the order (state ``submitted``). ``REOPEN`` (退回/重派) sends a
dispatched, resolved or verified order back to ``reopened``, from where it is dispatched again;
``CANCEL`` (注销) ends any open order. The contract has no 延期 (extension) action, so there is
none here: adding one is a new enum symbol (see schemas/avro/CONTRACT.md).

States × actions (anything else is ``invalid_transition``):

============  ========  ==========  ========  ========  =======  =======  =========
state         ACCEPT    DISPATCH    RESOLVE   VERIFY    CLOSE    REOPEN   CANCEL
============  ========  ==========  ========  ========  =======  =======  =========
submitted     accepted  (buffer)    (buffer)  —         —        —        cancelled
accepted      —         dispatched  (buffer)  (buffer)  —        —        cancelled
reopened      —         dispatched  (buffer)  (buffer)  —        —        cancelled
dispatched    —         —           resolved  (buffer)  (buffer) reopened cancelled
resolved      —         —           —         verified  (buffer) reopened cancelled
verified      —         —           —         —         closed   reopened cancelled
closed        —         —           —         —         —        —        —
cancelled     —         —           —         —         —        —        —
============  ========  ==========  ========  ========  =======  =======  =========

**Out of order.** A step ahead of the state by at most :data:`MAX_MISSING` missing steps (steps
already buffered count as present) is buffered in ``pending`` and applied as soon as the steps
before it arrive, in the order of their timestamps. A buffered step still waiting after the
tolerance, or one the order can no longer take (it was closed or cancelled meanwhile), is
rejected with ``invalid_transition``; the caller dead-letters it then. A step further ahead (CLOSE
before DISPATCH), a step behind the state, a step after CLOSE/CANCEL and a step of a report never
submitted (``unknown_report``) raise :class:`~pipelines.errors.ValidationError` at once. A step
seen before (same ``event_id``: a replay) changes nothing.

**SLA.** ``deadline`` starts at the route's deadline (occurred_at + SLA hours). An order not yet
resolved whose deadline passed is *breached*: :func:`escalate` raises its handling level one
step (community → street → county; county stays county), counts the escalation, sets a new
deadline ``now + SLA`` and returns the breach, so the same breach is never escalated twice
(the breach number lives in the state). The SLA alert (``source = sla``) is one warning per
order in ``gov.alerts``: an Alert on the first breach, an Update per further breach (yellow →
orange → red), a Cancel when the order is resolved, closed or cancelled.

**On time** is decided by timestamps, not by arrival: ``resolved_at <= first deadline``.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pipelines import alerts, contracts, reasons
from pipelines.errors import ValidationError
from pipelines.reports import from_ms, to_ms

# reason codes of gov.dead_letters
INVALID_TRANSITION = reasons.code("invalid_transition")
UNKNOWN_REPORT = reasons.code("unknown_report")
BAD_KEY = contracts.BAD_KEY

# states
SUBMITTED = "submitted"
ACCEPTED = "accepted"
REOPENED = "reopened"
DISPATCHED = "dispatched"
RESOLVED = "resolved"
VERIFIED = "verified"
CLOSED = "closed"
CANCELLED = "cancelled"
STATES = (SUBMITTED, ACCEPTED, REOPENED, DISPATCHED, RESOLVED, VERIFIED, CLOSED, CANCELLED)
TERMINAL = frozenset({CLOSED, CANCELLED})
#: states in which the SLA clock runs (not yet resolved)
UNRESOLVED = frozenset({SUBMITTED, ACCEPTED, REOPENED, DISPATCHED})

#: action → {from state: to state}
TRANSITIONS: dict[str, dict[str, str]] = {
    "ACCEPT": {SUBMITTED: ACCEPTED},
    "DISPATCH": {ACCEPTED: DISPATCHED, REOPENED: DISPATCHED},
    "RESOLVE": {DISPATCHED: RESOLVED},
    "VERIFY": {RESOLVED: VERIFIED},
    "CLOSE": {VERIFIED: CLOSED},
    "REOPEN": {DISPATCHED: REOPENED, RESOLVED: REOPENED, VERIFIED: REOPENED},
    "CANCEL": {s: CANCELLED for s in STATES if s not in TERMINAL},
}

#: position on the normal path, of states and of the steps that lead to them
RANK = {SUBMITTED: 0, ACCEPTED: 1, REOPENED: 1, DISPATCHED: 2, RESOLVED: 3, VERIFIED: 4, CLOSED: 5}
STEP_RANK = {"ACCEPT": 1, "DISPATCH": 2, "RESOLVE": 3, "VERIFY": 4, "CLOSE": 5}
#: a step may be buffered when at most this many steps before it are missing
MAX_MISSING = 2

LEVEL_UP = {"community": "street", "street": "county", "county": "county"}
ALERT_LEVELS = ("yellow", "orange", "red")  # first breach, second, third and later
SLA_HAZARD = "工单超时督办"
SLA_SENDER = "govstream/sla"


# --- steps -----------------------------------------------------------------------------------


def step_of(
    record: Mapping[str, Any],
    *,
    partition: int,
    offset: int,
    received_at: datetime,
    key: bytes | None = None,
    value: bytes | None = None,
) -> dict[str, Any]:
    """A decoded, validated handling step as the JSON-friendly dict :func:`apply` takes.

    ``key``/``value`` are the original message bytes, kept only while the step is buffered so
    that it can be dead-lettered as it came if it never applies (handling steps carry staff,
    not residents: the contract puts no resident data on them but a reporter's CANCEL, which
    is never buffered)."""
    return {
        "event_id": str(record["event_id"]),
        "report_id": str(record["report_id"]),
        "action": str(record["action"]),
        "occurred_ms": to_ms(record["occurred_at"]),
        "received_ms": to_ms(received_at),
        "assigned_department": str(record.get("assigned_department") or ""),
        "partition": partition,
        "offset": offset,
        "key": base64.b64encode(key).decode() if key is not None else None,
        "value": base64.b64encode(value).decode() if value is not None else None,
    }


def original_bytes(step: Mapping[str, Any]) -> tuple[bytes | None, bytes | None]:
    """(key, value) of a buffered step's original message."""
    key, value = step.get("key"), step.get("value")
    return (
        base64.b64decode(key) if key is not None else None,
        base64.b64decode(value) if value is not None else None,
    )


# --- opening an order ------------------------------------------------------------------------


def open_order(order: Mapping[str, Any]) -> dict[str, Any]:
    """The state of a new work order from the routed SUBMIT (``reports.work_order``)."""
    codes, names, category = order["codes"], order["names"], order["category"]
    return {
        "report_id": order["report_id"],
        "state": SUBMITTED,
        "region_code": order["region_code"],
        "province_code": codes["province"],
        "city_code": codes["city"],
        "county_code": codes["county"],
        "township_code": codes["township"],
        "city": names["city"],
        "county": names["county"],
        "township": names["township"],
        "village": names["village"],
        "channel": order["channel"],
        "category_code": category["code"],
        "category_major": category["major"],
        "category_minor": category["minor"],
        "request_type": category.get("request_type", ""),
        "taxonomy_version": category.get("taxonomy_version", ""),
        "classifier": category.get("classifier", ""),
        "priority": order["priority"],
        "sla_hours": order["sla_hours"],
        "routed_department": order["department"],
        "department": order["department"],
        "first_level": order["level"],
        "level": order["level"],
        "submitted_ms": order["occurred_ms"],
        "first_deadline_ms": order["deadline_ms"],
        "deadline_ms": order["deadline_ms"],
        "accepted_ms": None,
        "dispatched_ms": None,
        "resolved_ms": None,
        "verified_ms": None,
        "closed_ms": None,
        "cancelled_ms": None,
        "on_time": None,
        "reopens": 0,
        "escalations": 0,
        "breach": 0,
        "last_action": "SUBMIT",
        "last_ms": order["occurred_ms"],
        "events": [order["event_id"]],
        "pending": [],
        "alert": None,
        "revision": 1,
        "updated_ms": order["received_ms"],
        "partition": order["partition"],
    }


# --- applying steps --------------------------------------------------------------------------


@dataclass
class Outcome:
    """What one step did to an order."""

    state: dict[str, Any]
    applied: list[str] = field(default_factory=list)  # event ids applied, in order
    buffered: bool = False  # the step waits in ``pending``
    duplicate: bool = False  # seen before: nothing changed
    rejected: list[tuple[dict[str, Any], ValidationError]] = field(default_factory=list)
    alert_rows: list[list[Any]] = field(default_factory=list)  # gov.alerts (SLA cancel)
    target_rows: list[list[Any]] = field(default_factory=list)  # gov.alert_targets


def _invalid(state: Mapping[str, Any], step: Mapping[str, Any], why: str) -> ValidationError:
    return ValidationError(
        INVALID_TRANSITION,
        f"{step['action']} of report {state['report_id']} in state {state['state']}: {why}",
    )


def _transition(state: dict[str, Any], step: Mapping[str, Any]) -> None:
    """Apply a step known to be allowed (mutates ``state``)."""
    action, at = step["action"], int(step["occurred_ms"])
    state["state"] = TRANSITIONS[action][state["state"]]
    if action == "ACCEPT":
        state["accepted_ms"] = at
    elif action == "DISPATCH":
        state["dispatched_ms"] = at
        state["department"] = step["assigned_department"] or state["department"]
    elif action == "RESOLVE":
        state["resolved_ms"] = at
        state["on_time"] = at <= int(state["first_deadline_ms"])
    elif action == "VERIFY":
        state["verified_ms"] = at
    elif action == "CLOSE":
        state["closed_ms"] = at
    elif action == "REOPEN":
        state["reopens"] = int(state["reopens"]) + 1
        state["resolved_ms"] = state["verified_ms"] = state["on_time"] = None
    elif action == "CANCEL":
        state["cancelled_ms"] = at
    state["last_action"], state["last_ms"] = action, at
    state["events"] = [*state["events"], step["event_id"]]


def _missing_before(state: Mapping[str, Any], action: str) -> int:
    """Steps of the normal path between the state and ``action`` not buffered yet."""
    have = {STEP_RANK.get(p["action"]) for p in state["pending"]}
    return sum(1 for r in range(RANK[state["state"]] + 1, STEP_RANK[action]) if r not in have)


def _drain(state: dict[str, Any], applied: list[str]) -> None:
    """Apply buffered steps that became possible, oldest first, until none is."""
    while True:
        ready = [p for p in state["pending"] if state["state"] in TRANSITIONS[p["action"]]]
        if not ready:
            return
        step = min(ready, key=lambda p: (int(p["occurred_ms"]), STEP_RANK.get(p["action"], 9)))
        state["pending"] = [p for p in state["pending"] if p is not step]
        _transition(state, step)
        applied.append(step["event_id"])


def _unreachable(state: Mapping[str, Any], step: Mapping[str, Any]) -> bool:
    if state["state"] in TERMINAL:
        return True
    return STEP_RANK.get(step["action"], 0) <= RANK[state["state"]]


def _reject_pending(
    state: dict[str, Any], now_ms: int, tolerance_ms: int
) -> list[tuple[dict[str, Any], ValidationError]]:
    rejected = []
    kept = []
    for p in state["pending"]:
        if _unreachable(state, p):
            rejected.append((p, _invalid(state, p, "the order can no longer take it")))
        elif int(p["received_ms"]) + tolerance_ms < now_ms:
            missing = _missing_before(state, p["action"])
            why = f"{missing} earlier step(s) still missing after {tolerance_ms // 1000} s"
            rejected.append((p, _invalid(state, p, why)))
        else:
            kept.append(p)
    state["pending"] = kept
    return rejected


def apply(
    state: Mapping[str, Any] | None, step: Mapping[str, Any], *, tolerance_ms: int
) -> Outcome:
    """Fold a handling step (:func:`step_of`) into an order's state.

    Raises ValidationError (``unknown_report``, ``invalid_transition``) for a step that can
    never apply; the returned :class:`Outcome` lists buffered steps rejected on the way."""
    if state is None:
        raise ValidationError(
            UNKNOWN_REPORT, f"{step['action']} for a report never submitted (no work order)"
        )
    if step.get("report_id", state["report_id"]) != state["report_id"]:
        raise ValidationError(
            BAD_KEY,
            f"{step['action']} of report {step['report_id']} reached the work order of "
            f"{state['report_id']} (its message key is not its report_id)",
        )
    seen = set(state["events"]) | {p["event_id"] for p in state["pending"]}
    if step["event_id"] in seen:
        return Outcome(dict(state), duplicate=True)
    action = step["action"]
    if state["state"] in TERMINAL:
        raise _invalid(state, step, "the order is already ended")
    if action not in TRANSITIONS:
        raise _invalid(state, step, "not a handling step of this contract")
    new = dict(state)
    new["pending"] = list(state["pending"])
    outcome = Outcome(new)
    if new["state"] in TRANSITIONS[action]:
        _transition(new, step)
        outcome.applied.append(step["event_id"])
        _drain(new, outcome.applied)
    elif action in STEP_RANK and STEP_RANK[action] > RANK[new["state"]]:
        missing = _missing_before(new, action)
        if missing > MAX_MISSING:
            raise _invalid(new, step, f"{missing} earlier steps are missing")
        new["pending"].append(dict(step))
        outcome.buffered = True
    else:
        raise _invalid(new, step, "not allowed from this state")
    outcome.rejected = _reject_pending(new, int(step["received_ms"]), tolerance_ms)
    if new["state"] not in UNRESOLVED:
        outcome.alert_rows, outcome.target_rows = _settle_alert(new, int(step["received_ms"]))
    new["revision"] = int(new["revision"]) + 1
    new["updated_ms"] = int(step["received_ms"])
    return outcome


def expire(
    state: Mapping[str, Any], now: datetime, *, tolerance_ms: int
) -> tuple[dict[str, Any], list[tuple[dict[str, Any], ValidationError]]]:
    """Reject buffered steps that waited longer than the tolerance; the same state if none."""
    if not state["pending"]:
        return dict(state), []
    new = dict(state)
    rejected = _reject_pending(new, to_ms(now), tolerance_ms)
    if rejected:
        new["revision"] = int(new["revision"]) + 1
        new["updated_ms"] = to_ms(now)
    return new, rejected


# --- SLA -------------------------------------------------------------------------------------


def is_overdue(state: Mapping[str, Any], now: datetime) -> bool:
    """Not yet resolved and past its (current) deadline."""
    return state["state"] in UNRESOLVED and int(state["deadline_ms"]) < to_ms(now)


def needs_attention(state: Mapping[str, Any], now_ms: int) -> bool:
    """Whether :func:`expire` or :func:`escalate` could change the order at ``now_ms``: it has
    buffered steps, or it is unresolved past its deadline. The SLA scan calls this on every
    order of the worker, so it copies nothing (the two functions copy the state)."""
    return bool(state["pending"]) or (
        state["state"] in UNRESOLVED and int(state["deadline_ms"]) < now_ms
    )


@dataclass(frozen=True)
class Escalation:
    report_id: str
    breach: int  # 1 for the first missed deadline, 2 for the next, …
    from_level: str
    to_level: str
    missed_deadline_ms: int
    new_deadline_ms: int


def escalate(
    state: Mapping[str, Any], now: datetime
) -> tuple[dict[str, Any], Escalation | None, list[list[Any]], list[list[Any]]]:
    """Escalate an overdue order one level with a new deadline (now + SLA).

    Returns the new state, the escalation (None when the order is not overdue: then the
    state is returned unchanged) and the SLA alert's gov.alerts / gov.alert_targets rows."""
    if not is_overdue(state, now):
        return dict(state), None, [], []
    now_ms = to_ms(now)
    new = dict(state)
    breach = int(state["breach"]) + 1
    up = LEVEL_UP.get(str(state["level"]), str(state["level"]))
    new_deadline = now_ms + int(float(state["sla_hours"]) * 3_600_000)
    esc = Escalation(
        str(state["report_id"]), breach, str(state["level"]), up, int(state["deadline_ms"]),
        new_deadline,
    )  # fmt: skip
    new.update(
        breach=breach,
        escalations=int(state["escalations"]) + 1,
        level=up,
        deadline_ms=new_deadline,
        revision=int(state["revision"]) + 1,
        updated_ms=now_ms,
    )
    alert_rows, target_rows = _raise_alert(new, esc, now_ms)
    return new, esc, alert_rows, target_rows


def alert_root(report_id: str) -> str:
    return f"govstream-sla-{report_id}"


def sla_alert(state: Mapping[str, Any], esc: Escalation) -> dict[str, Any]:
    """The SLA alert of a breach, in the decoded alert-contract shape (names no person)."""
    previous = state.get("alert")
    open_alert = previous if previous and previous["status"] == alerts.ACTIVE else None
    level = ALERT_LEVELS[min(esc.breach, len(ALERT_LEVELS)) - 1]
    sent = from_ms(esc.missed_deadline_ms)
    place = state["village"] or state["township"] or state["region_code"]
    what = f"{state['category_major']}/{state['category_minor']}"
    return {
        # a new warning's id is its root: the order's id on the first breach
        "alert_id": alert_root(esc.report_id)
        if esc.breach == 1
        else f"{alert_root(esc.report_id)}-{esc.breach}",
        "sender": SLA_SENDER,
        "sent_at": sent,
        "msg_type": "Update" if open_alert else "Alert",
        "references": [open_alert["root_id"]] if open_alert else [],
        "hazard": "other",
        "hazard_local": SLA_HAZARD,
        "level": level,
        "region_codes": [state["region_code"]],
        "headline": f"{place}工单{esc.report_id}超时，第{esc.breach}次督办",
        "description": (
            f"{what}工单（{state['department']}）逾期未处置，"
            f"由{esc.from_level}升级至{esc.to_level}。"
        ),
        "instruction": f"请于{from_ms(esc.new_deadline_ms).isoformat()}前处置。",
        "effective": sent,
        "expires": None,
        "source": "sla",
    }


def _raise_alert(
    state: dict[str, Any], esc: Escalation, now_ms: int
) -> tuple[list[list[Any]], list[list[Any]]]:
    record = sla_alert(state, esc)
    previous = state.get("alert")
    alert_state, change = alerts.apply(
        previous if previous and previous["status"] == alerts.ACTIVE else None,
        record,
        received_at=from_ms(now_ms),
        partition=int(state["partition"]),
        offset=esc.breach,
    )
    state["alert"] = alert_state
    return [alerts.alert_row(alert_state)], alerts.target_rows(alert_state, change.lifted)


def _settle_alert(state: dict[str, Any], now_ms: int) -> tuple[list[list[Any]], list[list[Any]]]:
    """Cancel the order's open SLA alert once it is resolved or ended (no rows when none)."""
    current = state.get("alert")
    if not current or current["status"] != alerts.ACTIVE:
        return [], []
    at = max(int(state["last_ms"]), int(current["sent_ms"]))
    record = {
        "alert_id": f"{alert_root(state['report_id'])}-settled-{state['revision']}",
        "sender": SLA_SENDER,
        "sent_at": from_ms(at),
        "msg_type": "Cancel",
        "references": [current["root_id"]],
        "hazard": "other",
        "hazard_local": SLA_HAZARD,
        "level": current["level"],
        "region_codes": [state["region_code"]],
        "headline": f"工单{state['report_id']}已{state['state']}，督办解除",
        "description": "",
        "instruction": "",
        "effective": from_ms(at),
        "expires": None,
        "source": "sla",
    }
    alert_state, change = alerts.apply(
        current, record, received_at=from_ms(now_ms), partition=int(state["partition"]), offset=0
    )
    state["alert"] = alert_state
    return [alerts.alert_row(alert_state)], alerts.target_rows(alert_state, change.lifted)


# --- rows ------------------------------------------------------------------------------------

ORDER_COLUMNS = (
    "report_id", "state", "region_code", "province_code", "city_code", "county_code",
    "township_code", "city", "county", "township", "village", "channel", "category_code",
    "category_major", "category_minor", "priority", "sla_hours", "routed_department",
    "department", "first_level", "level", "submitted_at", "first_deadline", "deadline",
    "accepted_at", "dispatched_at", "resolved_at", "verified_at", "closed_at", "cancelled_at",
    "on_time", "reopens", "escalations", "pending_steps", "last_action", "last_step_at",
    "updated_at", "version", "request_type", "taxonomy_version", "classifier",
)  # fmt: skip


def _at(ms: int | None) -> datetime | None:
    return from_ms(int(ms)) if ms is not None else None


def order_row(state: Mapping[str, Any]) -> list[Any]:
    """An order's current state as a gov.work_orders row (ORDER_COLUMNS order); version =
    the state's revision, so the latest state wins and a repeated insert collapses. A state
    opened before issue 14 has no request type, taxonomy version or classifier: ''."""
    s = state
    return [
        s["report_id"], s["state"], s["region_code"], s["province_code"], s["city_code"],
        s["county_code"], s["township_code"], s["city"], s["county"], s["township"], s["village"],
        s["channel"], s["category_code"], s["category_major"], s["category_minor"],
        s["priority"], float(s["sla_hours"]), s["routed_department"], s["department"],
        s["first_level"], s["level"], from_ms(s["submitted_ms"]), from_ms(s["first_deadline_ms"]),
        from_ms(s["deadline_ms"]), _at(s["accepted_ms"]), _at(s["dispatched_ms"]),
        _at(s["resolved_ms"]), _at(s["verified_ms"]), _at(s["closed_ms"]),
        _at(s["cancelled_ms"]), s["on_time"], int(s["reopens"]), int(s["escalations"]),
        len(s["pending"]), s["last_action"], from_ms(s["last_ms"]), from_ms(s["updated_ms"]),
        int(s["revision"]), s.get("request_type", ""), s.get("taxonomy_version", ""),
        s.get("classifier", ""),
    ]  # fmt: skip


def _ms_of(value: Any) -> int | None:
    """ClickHouse DateTime64 (a datetime) as epoch milliseconds; None stays None."""
    return None if value is None else to_ms(value)


def state_from_row(row: Mapping[str, Any], events: Sequence[str], partition: int) -> dict[str, Any]:
    """An order's state rebuilt from its gov.work_orders row (a dict by ORDER_COLUMNS name),
    the event ids ClickHouse holds for it (its SUBMIT and steps: replays stay duplicates)
    and the report topic partition of its SUBMIT.

    What a row cannot give back: buffered out-of-order steps (``pending``: they were never
    written, so a later step may wait for them and be dead-lettered after the tolerance) and
    the open SLA alert (``alert``: a later escalation raises a new one instead of updating
    it). Used when the work-orders table lost its changelog (see pipelines/restore.py)."""
    r = row
    return {
        "report_id": str(r["report_id"]), "state": str(r["state"]),
        "region_code": str(r["region_code"]), "province_code": str(r["province_code"]),
        "city_code": str(r["city_code"]), "county_code": str(r["county_code"]),
        "township_code": str(r["township_code"]), "city": str(r["city"]),
        "county": str(r["county"]), "township": str(r["township"]), "village": str(r["village"]),
        "channel": str(r["channel"]), "category_code": str(r["category_code"]),
        "category_major": str(r["category_major"]), "category_minor": str(r["category_minor"]),
        "request_type": str(r.get("request_type") or ""),
        "taxonomy_version": str(r.get("taxonomy_version") or ""),
        "classifier": str(r.get("classifier") or ""),
        "priority": str(r["priority"]), "sla_hours": float(r["sla_hours"]),
        "routed_department": str(r["routed_department"]), "department": str(r["department"]),
        "first_level": str(r["first_level"]), "level": str(r["level"]),
        "submitted_ms": _ms_of(r["submitted_at"]), "first_deadline_ms": _ms_of(r["first_deadline"]),
        "deadline_ms": _ms_of(r["deadline"]), "accepted_ms": _ms_of(r["accepted_at"]),
        "dispatched_ms": _ms_of(r["dispatched_at"]), "resolved_ms": _ms_of(r["resolved_at"]),
        "verified_ms": _ms_of(r["verified_at"]), "closed_ms": _ms_of(r["closed_at"]),
        "cancelled_ms": _ms_of(r["cancelled_at"]), "on_time": r["on_time"],
        "reopens": int(r["reopens"]), "escalations": int(r["escalations"]),
        "breach": int(r["escalations"]), "last_action": str(r["last_action"]),
        "last_ms": _ms_of(r["last_step_at"]), "events": list(events), "pending": [],
        "alert": None, "revision": int(r["version"]), "updated_ms": _ms_of(r["updated_at"]),
        "partition": int(partition),
    }  # fmt: skip
