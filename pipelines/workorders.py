"""Work-order supervision (督办), pure: the lifecycle state machine, SLA escalation and rows.

A work order's state is a JSON-friendly dict kept by the report agent in the Faust table
``work-orders`` keyed by ``report_id`` (the report topic's key, so every step of a report
reaches the same partition and the table is local). The normal path is

    受理 ACCEPT → 派遣 DISPATCH → 处置 RESOLVE → 核查 VERIFY → 结案 CLOSE

from the SUBMIT that opened the order (state ``submitted``), and after it 回访 ``REVISIT``.
``REOPEN`` (退回/重派) sends a dispatched, resolved or verified order back to ``reopened``, from
where it is dispatched again; ``TRANSFER`` (转派) sends a dispatched order to another department
(it stays ``dispatched``); ``CANCEL`` (注销) ends any open order. The contract has no 延期
(extension) action, so there is none here: adding one is a new enum symbol (see
schemas/avro/CONTRACT.md).

**回访 (REVISIT)** is the one step a closed order takes, any number of times (after a rework and
a second CLOSE too). It records the resident's ``satisfaction`` and whether they say the problem
was solved. Rule (:func:`revisit_reopens`): a ``dissatisfied`` rating from a resident who says
the problem is *not* solved sends the order back (发回重办): state ``reopened``, one more
rework (``reopens``), a new deadline ``revisit time + SLA`` (the first deadline, and with it the
on-time flag of the rework, stays). Dissatisfied but solved (the manner, not the result),
satisfied, basically satisfied and unreachable leave it closed. Source: the 12345 practice of
returning an order the resident is dissatisfied with to its unit for rework (回访不满意的，退回
承办单位重新办理; 国办发〔2020〕53号 lists 回访 and 评价 as the last steps of the loop).

**签收 (sign-for)** is the ACCEPT: ``sign_deadline_ms`` = submission + the priority's hours in
``pipelines/data/sign_deadlines.csv`` (sources there), ``signed_on_time`` = ACCEPT by then.
**Response** (响应) is the first handling step of any kind (``responded_ms``).

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

TRANSFER: dispatched → dispatched (buffered from submitted, accepted and reopened, like
RESOLVE). REVISIT: closed → closed, or → reopened by the rule above (buffered from resolved and
verified, like a step after CLOSE).

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

**分拨纠错 (the dispatcher's correction, issue 14).** A DISPATCH may carry
``corrected_category``, a taxonomy code the worker has checked (``reports.validate``). It sets
``corrected_category``, ``corrected_major``, ``corrected_minor`` (names from the taxonomy) and
``corrected_ms`` (the DISPATCH's time); a later DISPATCH with another code replaces them, one
without keeps them (:func:`correct`). The classifier's answer stays in ``category_code``,
``category_major``, ``category_minor`` and ``classifier``, so the pair measures the classifier
(gov.classification_corrections) and ``govstream classify train --from-clickhouse`` learns from
it. Nothing else follows from a correction: the department is the DISPATCH's
``assigned_department`` (which every DISPATCH names), and the priority, SLA, deadlines and
handling level stay as routed from the classifier's category (a deadline does not move under a
running order).

**督办 warnings** (``source = supervision``, one warning per condition and order, ever:
``warnings`` lists the conditions raised) — :func:`supervise`, run by the SLA scan
(:func:`escalate`) and after every step (:func:`apply`). The thresholds are a
:class:`SupervisionRules` the caller passes in (the worker builds it from the settings
``supervision_*``, :meth:`SupervisionRules.of`; the defaults are the values below):

- ``no_response``: no handling step ``no_response_hours`` (24 h) after submission;
- ``no_progress``: an open order with no handling step for ``no_progress_days`` (3 days);
- ``dissatisfied_twice``: ``dissatisfied_in_a_row`` (2) dissatisfied ratings in a row
  (an unreachable revisit neither counts nor breaks the row; the condition keeps its name
  whatever the number);
- ``problem_order`` (问题工单): reworked (``reopens``) or transferred ``problem_after`` (3)
  times; the order is flagged ``problem`` and raised one handling level (提级督办).

The defaults are those of the issue's 督办 rules (no response in 24 h, no progress in 3 days,
two dissatisfied ratings in a row, three reworks or transfers), as 12345 centres publish them
under 《北京市接诉即办工作条例》. A warning's ``hazard_local`` names its condition with the
threshold in force (:func:`supervision_hazard`: 24小时未响应督办 by default). A warning is
cancelled when its condition clears: a response or any step (the first two), a rating that
ends the dissatisfied row (the third), the order's CLOSE (the fourth), and every one when the
order is cancelled.
"""

from __future__ import annotations

import base64
import csv
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any, cast

from pipelines import alerts, contracts, reasons, taxonomy
from pipelines.errors import ConfigError, ValidationError
from pipelines.pii import scrub_text
from pipelines.reports import from_ms, to_ms
from pipelines.shapes import Complaint, RoutedReport, Row, Step, Supervised, WorkOrder

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
    "TRANSFER": {DISPATCHED: DISPATCHED},
    "REVISIT": {CLOSED: CLOSED},  # or REOPENED: see revisit_reopens
}

#: position on the normal path, of states and of the steps that lead to them; TRANSFER needs
#: what RESOLVE needs (a dispatched order), REVISIT comes after CLOSE
RANK = {SUBMITTED: 0, ACCEPTED: 1, REOPENED: 1, DISPATCHED: 2, RESOLVED: 3, VERIFIED: 4, CLOSED: 5}
STEP_RANK = {"ACCEPT": 1, "DISPATCH": 2, "RESOLVE": 3, "VERIFY": 4, "CLOSE": 5, "REVISIT": 6}
STEP_RANK["TRANSFER"] = STEP_RANK["RESOLVE"]
#: steps that stand for a rank of the normal path when buffered
PATH_STEPS = frozenset({"ACCEPT", "DISPATCH", "RESOLVE", "VERIFY", "CLOSE", "REVISIT"})
#: a step may be buffered when at most this many steps before it are missing
MAX_MISSING = 2

LEVEL_UP = {"community": "street", "street": "county", "county": "county"}
ALERT_LEVELS = ("yellow", "orange", "red")  # first breach, second, third and later
SLA_HAZARD = "工单超时督办"
SLA_SENDER = "govstream/sla"

# 回访 ratings (contract enum Satisfaction)
SATISFIED = "satisfied"
BASICALLY_SATISFIED = "basically_satisfied"
DISSATISFIED = "dissatisfied"
UNREACHABLE = contracts.UNREACHABLE
#: ratings a resident gave (unreachable and unknown are none)
RATED = (SATISFIED, BASICALLY_SATISFIED, DISSATISFIED)

HOUR_MS = 3_600_000
SUPERVISION_SENDER = "govstream/supervision"
#: condition → (hazard name under the default rules, level of its warning)
SUPERVISION: dict[str, tuple[str, str]] = {
    "no_response": ("24小时未响应督办", "yellow"),
    "no_progress": ("3日无进展督办", "yellow"),
    "dissatisfied_twice": ("连续两次不满意督办", "orange"),
    "problem_order": ("问题工单提级督办", "red"),
}


@dataclass(frozen=True)
class SupervisionRules:
    """The 督办 thresholds (sources: module docstring; the settings ``supervision_*`` in
    pipelines/settings.py carry the same defaults)."""

    no_response_hours: float = 24.0  # hours after submission without a handling step
    no_progress_days: float = 3.0  # days an open order goes without a handling step
    dissatisfied_in_a_row: int = 2  # dissatisfied 回访 ratings in a row
    problem_after: int = 3  # reworks (发回重办) or transfers (转派) making a 问题工单

    @property
    def no_response_ms(self) -> int:
        return round(self.no_response_hours * HOUR_MS)

    @property
    def no_progress_ms(self) -> int:
        return round(self.no_progress_days * 24 * HOUR_MS)

    @classmethod
    def of(cls, settings: Any) -> SupervisionRules:
        """The rules of a :class:`~pipelines.settings.Settings` (its ``supervision_*`` fields)."""
        return cls(
            no_response_hours=float(settings.supervision_no_response_hours),
            no_progress_days=float(settings.supervision_no_progress_days),
            dissatisfied_in_a_row=int(settings.supervision_dissatisfied_in_a_row),
            problem_after=int(settings.supervision_problem_after),
        )


#: the defaults: 24 h, 3 days, 2 in a row, 3 reworks or transfers
DEFAULT_RULES = SupervisionRules()

SIGN_DEADLINES = Path(__file__).parent / "data" / "sign_deadlines.csv"


@cache
def sign_hours_by_priority(path: Path = SIGN_DEADLINES) -> dict[str, float]:
    """priority → hours the handling unit has to sign for (签收, ACCEPT) an order, from
    ``pipelines/data/sign_deadlines.csv`` (columns priority, sign_hours, meaning, source).

    Raises ConfigError when the file is missing, a row has no source or a bad number."""
    try:
        with path.open(encoding="utf-8", newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError as exc:
        raise ConfigError(f"sign-for deadlines {path}: {exc}") from exc
    hours: dict[str, float] = {}
    for line, row in enumerate(rows, start=2):
        try:
            value = float(row["sign_hours"])
        except (KeyError, TypeError, ValueError):
            raise ConfigError(f"{path.name} line {line}: bad sign_hours") from None
        if value <= 0 or not (row.get("source") or "").strip():
            raise ConfigError(f"{path.name} line {line}: sign_hours > 0 and a source are needed")
        hours[row["priority"].strip()] = value
    if not hours:
        raise ConfigError(f"{path.name} has no rows")
    return hours


def sign_deadline_ms(priority: str, submitted_ms: int) -> int:
    """When an order of ``priority`` submitted at ``submitted_ms`` must be signed for; a
    priority the file does not list gets its longest time (the most lenient)."""
    table = sign_hours_by_priority()
    hours = table.get(priority, max(table.values()))
    return int(submitted_ms) + int(hours * HOUR_MS)


# --- steps -----------------------------------------------------------------------------------


def step_of(
    record: Mapping[str, Any],
    *,
    partition: int,
    offset: int,
    received_at: datetime,
    key: bytes | None = None,
    value: bytes | None = None,
) -> Step:
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
        # free text typed by staff: a name or phone in it must not reach work_orders.department
        "assigned_department": scrub_text(str(record.get("assigned_department") or "")),
        "satisfaction": record.get("satisfaction"),
        "resident_solved": record.get("resident_solved"),
        "corrected_category": record.get("corrected_category"),
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


def open_order(order: RoutedReport) -> WorkOrder:
    """The state of a new work order from the routed SUBMIT (``reports.work_order``)."""
    codes, names, category = order["codes"], order["names"], order["category"]
    state = {
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
        **_closed_loop(order["priority"], int(order["occurred_ms"])),
        **NO_CORRECTION,
    }
    return cast(WorkOrder, state)


def _closed_loop(priority: str, submitted_ms: int) -> dict[str, Any]:
    """The closed-loop fields (issue 19) of a new order: sign-for, response, transfers, 回访,
    督办 warnings, 问题工单, repeat complaints."""
    return {
        "sign_deadline_ms": sign_deadline_ms(priority, submitted_ms),
        "signed_on_time": None,
        "responded_ms": None,
        "transfers": 0,
        "revisits": 0,
        "revisited_ms": None,
        "satisfaction": "",
        "resident_solved": None,
        "dissatisfied_streak": 0,
        "problem": False,
        "problem_ms": None,
        "warnings": [],  # 督办 conditions raised, once each
        "supervision": {},  # condition → its open warning (alert state) and what raised it
        "repeat_of": "",
    }


#: the correction fields of an order no dispatcher corrected (:func:`correct`)
NO_CORRECTION: dict[str, Any] = {
    "corrected_category": "",
    "corrected_major": "",
    "corrected_minor": "",
    "corrected_ms": None,
}


def upgraded(state: Mapping[str, Any]) -> WorkOrder:
    """A copy of ``state`` with the closed-loop fields an order opened before issue 19 lacks
    (defaults as for a new order; an ACCEPT already taken is judged against the sign-for
    deadline, a step already taken counts as the response) and the correction fields of one
    opened before the dispatchers' corrections (none)."""
    new = {**NO_CORRECTION, **state}
    if "sign_deadline_ms" in state:
        return cast(WorkOrder, new)
    loop = _closed_loop(str(state["priority"]), int(state["submitted_ms"]))
    accepted = state.get("accepted_ms")
    if accepted is not None:
        loop["signed_on_time"] = int(accepted) <= loop["sign_deadline_ms"]
    if len(state.get("events") or ()) > 1:
        loop["responded_ms"] = accepted if accepted is not None else state.get("last_ms")
    return cast(WorkOrder, {**loop, **new})


# --- applying steps --------------------------------------------------------------------------


@dataclass
class Outcome:
    """What one step did to an order."""

    state: WorkOrder
    applied: list[str] = field(default_factory=list)  # event ids applied, in order
    buffered: bool = False  # the step waits in ``pending``
    duplicate: bool = False  # seen before: nothing changed
    rejected: list[tuple[Step, ValidationError]] = field(default_factory=list)
    alert_rows: list[Row] = field(default_factory=list)  # gov.alerts (SLA cancel)
    target_rows: list[Row] = field(default_factory=list)  # gov.alert_targets


def _invalid(state: WorkOrder, step: Step, why: str) -> ValidationError:
    return ValidationError(
        INVALID_TRANSITION,
        f"{step['action']} of report {state['report_id']} in state {state['state']}: {why}",
    )


def _transition(state: WorkOrder, step: Step) -> None:
    """Apply a step known to be allowed (mutates ``state``)."""
    action, at = step["action"], int(step["occurred_ms"])
    state["state"] = TRANSITIONS[action][state["state"]]
    if state["responded_ms"] is None:
        state["responded_ms"] = at
    if action == "ACCEPT":
        state["accepted_ms"] = at
        state["signed_on_time"] = at <= int(state["sign_deadline_ms"])
    elif action == "DISPATCH":
        state["dispatched_ms"] = at
        state["department"] = step["assigned_department"] or state["department"]
        correct(state, step.get("corrected_category"), at)
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
    elif action == "TRANSFER":
        state["transfers"] = int(state["transfers"]) + 1
        state["dispatched_ms"] = at
        state["department"] = step["assigned_department"] or state["department"]
    elif action == "REVISIT":
        _revisit(state, step, at)
    state["last_action"], state["last_ms"] = action, at
    state["events"] = [*state["events"], step["event_id"]]


def correct(state: WorkOrder, code: str | None, at: int) -> None:
    """Record the dispatcher's corrected category ``code`` (a taxonomy code, checked by
    ``reports.validate``) taken at ``at`` on an upgraded state (mutates it); None leaves the
    state as it is. The classifier's category fields are not touched (module docstring)."""
    if code is None:
        return
    category = taxonomy.get(code)
    state["corrected_category"] = category.code
    state["corrected_major"] = category.major
    state["corrected_minor"] = category.minor
    state["corrected_ms"] = at


def revisit_reopens(satisfaction: str | None, resident_solved: bool | None) -> bool:
    """Whether a 回访 sends a closed order back for rework (发回重办): the resident is
    dissatisfied *and* says the problem is not solved (source: module docstring)."""
    return satisfaction == DISSATISFIED and resident_solved is False


def _revisit(state: WorkOrder, step: Step, at: int) -> None:
    rating = str(step.get("satisfaction") or "unknown")
    solved = step.get("resident_solved")
    state["revisits"] = int(state["revisits"]) + 1
    state["revisited_ms"] = at
    state["satisfaction"] = rating
    state["resident_solved"] = None if solved is None else bool(solved)
    if rating == DISSATISFIED:
        state["dissatisfied_streak"] = int(state["dissatisfied_streak"]) + 1
    elif rating in (SATISFIED, BASICALLY_SATISFIED):
        state["dissatisfied_streak"] = 0
    if revisit_reopens(rating, state["resident_solved"]):
        state["state"] = REOPENED
        state["reopens"] = int(state["reopens"]) + 1
        state["resolved_ms"] = state["verified_ms"] = state["closed_ms"] = None
        state["on_time"] = None
        state["deadline_ms"] = at + int(float(state["sla_hours"]) * HOUR_MS)


def _missing_before(state: WorkOrder, action: str) -> int:
    """Steps of the normal path between the state and ``action`` not buffered yet."""
    have = {STEP_RANK.get(p["action"]) for p in state["pending"] if p["action"] in PATH_STEPS}
    return sum(1 for r in range(RANK[state["state"]] + 1, STEP_RANK[action]) if r not in have)


def _drain(state: WorkOrder, applied: list[str]) -> None:
    """Apply buffered steps that became possible, oldest first, until none is."""
    while True:
        ready = [p for p in state["pending"] if state["state"] in TRANSITIONS[p["action"]]]
        if not ready:
            return
        step = min(ready, key=lambda p: (int(p["occurred_ms"]), STEP_RANK.get(p["action"], 9)))
        state["pending"] = [p for p in state["pending"] if p is not step]
        _transition(state, step)
        applied.append(step["event_id"])


def _takes(state: WorkOrder, action: str) -> bool:
    """Whether an order in this state can still take ``action`` some day (a closed order
    takes REVISIT only; a cancelled one nothing)."""
    return state["state"] not in TERMINAL or (state["state"] == CLOSED and action == "REVISIT")


def _unreachable(state: WorkOrder, step: Step) -> bool:
    if not _takes(state, step["action"]):
        return True
    if state["state"] == CLOSED:
        return False  # a REVISIT: it applies when the drain reaches it
    return STEP_RANK.get(step["action"], 0) <= RANK[state["state"]]


def _reject_pending(
    state: WorkOrder, now_ms: int, tolerance_ms: int
) -> list[tuple[Step, ValidationError]]:
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
    state: WorkOrder | None,
    step: Step,
    *,
    tolerance_ms: int,
    rules: SupervisionRules = DEFAULT_RULES,
) -> Outcome:
    """Fold a handling step (:func:`step_of`) into an order's state (``rules``: the 督办
    thresholds).

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
        return Outcome(state.copy(), duplicate=True)
    action = step["action"]
    if not _takes(state, action):
        raise _invalid(state, step, "the order is already ended")
    if action not in TRANSITIONS:
        raise _invalid(state, step, "not a handling step of this contract")
    new = upgraded(state)
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
        new["pending"].append(step.copy())
        outcome.buffered = True
    else:
        raise _invalid(new, step, "not allowed from this state")
    outcome.rejected = _reject_pending(new, int(step["received_ms"]), tolerance_ms)
    now_ms = int(step["received_ms"])
    if new["state"] not in UNRESOLVED:
        outcome.alert_rows, outcome.target_rows = _settle_alert(new, now_ms)
    rows, targets = _settle_supervision(new, now_ms, rules)
    outcome.alert_rows += rows
    outcome.target_rows += targets
    rows, targets = _supervise(new, now_ms, rules)
    outcome.alert_rows += rows
    outcome.target_rows += targets
    new["revision"] = int(new["revision"]) + 1
    new["updated_ms"] = now_ms
    return outcome


def expire(
    state: WorkOrder, now: datetime, *, tolerance_ms: int
) -> tuple[WorkOrder, list[tuple[Step, ValidationError]]]:
    """Reject buffered steps that waited longer than the tolerance; the same state if none."""
    if not state["pending"]:
        return state.copy(), []
    new = state.copy()
    rejected = _reject_pending(new, to_ms(now), tolerance_ms)
    if rejected:
        new["revision"] = int(new["revision"]) + 1
        new["updated_ms"] = to_ms(now)
    return new, rejected


# --- SLA -------------------------------------------------------------------------------------


def is_overdue(state: WorkOrder, now: datetime) -> bool:
    """Not yet resolved and past its (current) deadline."""
    return state["state"] in UNRESOLVED and int(state["deadline_ms"]) < to_ms(now)


def needs_attention(state: WorkOrder, now_ms: int, rules: SupervisionRules = DEFAULT_RULES) -> bool:
    """Whether :func:`expire` or :func:`escalate` could change the order at ``now_ms``: it has
    buffered steps, it is unresolved past its deadline, or a 督办 warning is due
    (:func:`supervision_due`). The SLA scan calls this on every order of the worker, so it
    copies nothing (the two functions copy the state)."""
    return (
        bool(state["pending"])
        or (state["state"] in UNRESOLVED and int(state["deadline_ms"]) < now_ms)
        or bool(supervision_due(state, now_ms, rules))
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
    state: WorkOrder, now: datetime, rules: SupervisionRules = DEFAULT_RULES
) -> tuple[WorkOrder, Escalation | None, list[Row], list[Row]]:
    """Escalate an overdue order one level with a new deadline (now + SLA).

    The SLA scan's one call per order, so it also raises the 督办 warnings that are due
    (:func:`supervise`). Returns the new state, the escalation (None when the order is not
    overdue) and the gov.alerts / gov.alert_targets rows of the SLA alert and of the warnings;
    the state is returned unchanged (a copy) when neither happened."""
    now_ms = to_ms(now)
    if not is_overdue(state, now):
        if not supervision_due(state, now_ms, rules):
            return state.copy(), None, [], []
        new = upgraded(state)
        rows, targets = _supervise(new, now_ms, rules)
        new["revision"], new["updated_ms"] = int(state["revision"]) + 1, now_ms
        return new, None, rows, targets
    new = upgraded(state)
    breach = int(state["breach"]) + 1
    up = LEVEL_UP.get(str(state["level"]), str(state["level"]))
    new_deadline = now_ms + int(float(state["sla_hours"]) * 3_600_000)
    esc = Escalation(
        str(state["report_id"]), breach, str(state["level"]), up, int(state["deadline_ms"]),
        new_deadline,
    )  # fmt: skip
    new["breach"], new["escalations"] = breach, int(state["escalations"]) + 1
    new["level"], new["deadline_ms"] = up, new_deadline
    new["revision"], new["updated_ms"] = int(state["revision"]) + 1, now_ms
    alert_rows, target_rows = _raise_alert(new, esc, now_ms)
    rows, targets = _supervise(new, now_ms, rules)
    return new, esc, alert_rows + rows, target_rows + targets


# --- 督办 warnings (source supervision) ------------------------------------------------------


def supervision_due(
    state: WorkOrder, now_ms: int, rules: SupervisionRules = DEFAULT_RULES
) -> list[str]:
    """The 督办 conditions (keys of :data:`SUPERVISION`) the order meets at ``now_ms`` under
    ``rules`` and has not been warned of yet; reads an order of any version without copying
    it."""
    s, due = state, []
    if s["state"] == SUBMITTED and int(s["submitted_ms"]) + rules.no_response_ms < now_ms:
        due.append("no_response")  # no handling step at all since the submission
    if s["state"] not in TERMINAL and int(s["last_ms"]) + rules.no_progress_ms < now_ms:
        due.append("no_progress")
    if s["state"] != CANCELLED:
        if int(s.get("dissatisfied_streak", 0)) >= rules.dissatisfied_in_a_row:
            due.append("dissatisfied_twice")
        if max(int(s["reopens"]), int(s.get("transfers", 0))) >= rules.problem_after:
            due.append("problem_order")
    warned = s.get("warnings") or ()
    return [c for c in due if c not in warned]


def supervision_root(report_id: str, condition: str) -> str:
    """Root alert id of an order's warning of one 督办 condition."""
    return f"govstream-supervision-{report_id}-{condition}"


def _met_at(state: WorkOrder, condition: str, now_ms: int, rules: SupervisionRules) -> int:
    """When the condition became true (the warning's sent time)."""
    if condition == "no_response":
        return int(state["submitted_ms"]) + rules.no_response_ms
    if condition == "no_progress":
        return int(state["last_ms"]) + rules.no_progress_ms
    return min(int(state["last_ms"]), now_ms)


#: 两 for 2 in 连续两次, as the default's name says it; other counts in digits
_TIMES = {2: "两"}


def supervision_hazard(condition: str, rules: SupervisionRules = DEFAULT_RULES) -> str:
    """The warning's ``hazard_local``: the condition with the threshold in force (the names of
    :data:`SUPERVISION` under the default rules)."""
    if condition == "no_response":
        return f"{rules.no_response_hours:g}小时未响应督办"
    if condition == "no_progress":
        return f"{rules.no_progress_days:g}日无进展督办"
    if condition == "dissatisfied_twice":
        n = rules.dissatisfied_in_a_row
        return f"连续{_TIMES.get(n, str(n))}次不满意督办"
    return SUPERVISION[condition][0]


def supervision_alert(
    state: WorkOrder, condition: str, sent_ms: int, rules: SupervisionRules = DEFAULT_RULES
) -> dict[str, Any]:
    """The 督办 warning of one condition under ``rules``, in the decoded alert-contract shape
    (names no person)."""
    hazard, level = supervision_hazard(condition, rules), SUPERVISION[condition][1]
    rid = str(state["report_id"])
    place = state["village"] or state["township"] or state["region_code"]
    what = f"{state['category_major']}/{state['category_minor']}"
    n = rules.dissatisfied_in_a_row
    detail = {
        "no_response": f"受理后{rules.no_response_hours:g}小时内无响应",
        "no_progress": f"连续{rules.no_progress_days:g}日无办理进展",
        "dissatisfied_twice": f"回访连续{_TIMES.get(n, str(n))}次不满意",
        "problem_order": (
            f"发回重办{state['reopens']}次、转派{state.get('transfers', 0)}次，列为问题工单，"
            f"提级至{state['level']}"
        ),
    }[condition]
    return {
        "alert_id": supervision_root(rid, condition),
        "sender": SUPERVISION_SENDER,
        "sent_at": from_ms(sent_ms),
        "msg_type": "Alert",
        "references": [],
        "hazard": "other",
        "hazard_local": hazard,
        "level": level,
        "region_codes": [state["region_code"]],
        "headline": f"{place}工单{rid}：{hazard}",
        "description": f"{what}工单（{state['department']}）{detail}。",
        "instruction": "",
        "effective": from_ms(sent_ms),
        "expires": None,
        "source": "supervision",
    }


def _supervise(
    state: WorkOrder, now_ms: int, rules: SupervisionRules
) -> tuple[list[Row], list[Row]]:
    """Raise the 督办 warnings due under ``rules`` (mutates an :func:`upgraded` state): each
    condition once per order; a 问题工单 is flagged and raised one handling level first
    (提级督办)."""
    rows: list[list[Any]] = []
    targets: list[list[Any]] = []
    for condition in supervision_due(state, now_ms, rules):
        if condition == "problem_order":
            state["problem"] = True
            state["problem_ms"] = _met_at(state, condition, now_ms, rules)
            state["level"] = LEVEL_UP.get(str(state["level"]), str(state["level"]))
        sent = _met_at(state, condition, now_ms, rules)
        alert_state, change = alerts.apply(
            None,
            supervision_alert(state, condition, sent, rules),
            received_at=from_ms(now_ms),
            partition=int(state["partition"]),
            offset=0,
        )
        state["supervision"] = {
            **state["supervision"],
            condition: {"alert": alert_state, "last_ms": int(state["last_ms"])},
        }
        state["warnings"] = [*state["warnings"], condition]
        rows.append(alerts.alert_row(alert_state))
        targets += alerts.target_rows(alert_state, change.lifted)
    return rows, targets


def _cleared(state: WorkOrder, condition: str, raised: Supervised, rules: SupervisionRules) -> bool:
    if state["state"] == CANCELLED:
        return True
    if condition == "no_response":
        return state["state"] != SUBMITTED
    if condition == "no_progress":
        return int(state["last_ms"]) != int(raised["last_ms"])
    if condition == "dissatisfied_twice":
        return int(state["dissatisfied_streak"]) < rules.dissatisfied_in_a_row
    return state["state"] == CLOSED  # problem_order


def _settle_supervision(
    state: WorkOrder, now_ms: int, rules: SupervisionRules
) -> tuple[list[Row], list[Row]]:
    """Cancel the open 督办 warnings whose condition cleared under ``rules`` (mutates the
    state)."""
    rows: list[list[Any]] = []
    targets: list[list[Any]] = []
    for condition, raised in list(state["supervision"].items()):
        current = raised["alert"]
        if current["status"] != alerts.ACTIVE or not _cleared(state, condition, raised, rules):
            continue
        at = max(int(state["last_ms"]), int(current["sent_ms"]))
        hazard = supervision_hazard(condition, rules)
        record = {
            **supervision_alert(state, condition, at, rules),
            "alert_id": f"{current['root_id']}-settled-{state['revision']}",
            "msg_type": "Cancel",
            "references": [current["root_id"]],
            "level": current["level"],
            "headline": f"工单{state['report_id']}督办解除（{hazard}）",
            "description": "",
        }
        alert_state, change = alerts.apply(
            current, record, received_at=from_ms(now_ms), partition=int(state["partition"])
        )
        state["supervision"] = {**state["supervision"], condition: {**raised, "alert": alert_state}}
        rows.append(alerts.alert_row(alert_state))
        targets += alerts.target_rows(alert_state, change.lifted)
    return rows, targets


def alert_root(report_id: str) -> str:
    return f"govstream-sla-{report_id}"


def sla_alert(state: WorkOrder, esc: Escalation) -> dict[str, Any]:
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


def _raise_alert(state: WorkOrder, esc: Escalation, now_ms: int) -> tuple[list[Row], list[Row]]:
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


def _settle_alert(state: WorkOrder, now_ms: int) -> tuple[list[Row], list[Row]]:
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


# --- repeat complaints (重复诉求) ------------------------------------------------------------

#: categories that are never a repeat complaint: X9999 (人工分拨: praise, thanks, too little
#: information; pipelines/data/taxonomy.csv)
NOT_REPEATED = frozenset({"X9999"})
DAY_MS = 24 * HOUR_MS


def complaint_of(order: RoutedReport) -> Complaint:
    """What the repeat rule keeps of a routed work order (``reports.work_order``): its id, the
    reporter's salted hash (``person``; '' when anonymous), category code and submission time
    in epoch ms. Names no person."""
    return {
        "report_id": str(order["report_id"]),
        "person": str((order.get("reporter") or {}).get("hash") or ""),
        "category": str(order["category"]["code"]),
        "occurred_ms": int(order["occurred_ms"]),
    }


def find_repeat(
    earlier: Sequence[Mapping[str, Any]], complaint: Mapping[str, Any], window_days: float
) -> str | None:
    """The report a complaint repeats (重复诉求), or None.

    Rule: the same person (the salted hash of the reporter's id, so across channels when the
    apps give one person one id), the same category code, submitted at most ``window_days``
    (setting ``repeat_window_days``) after an earlier complaint, whatever the channel. With
    several earlier ones in the window the earliest is the one repeated (ties: the smaller
    report id), so a chain points at its first report. Anonymous reports (empty hash) and
    :data:`NOT_REPEATED` categories are never repeats. Decided by submission times, as the
    complaints reach the caller: one submitted earlier but arriving later is not looked back
    at. ``earlier`` holds :func:`complaint_of` dicts (the complaint itself may be among them:
    a replay)."""
    person, category = complaint["person"], complaint["category"]
    if not person or category in NOT_REPEATED:
        return None
    at, window = int(complaint["occurred_ms"]), int(window_days * DAY_MS)
    hits = [
        e
        for e in earlier
        if e["person"] == person
        and e["category"] == category
        and e["report_id"] != complaint["report_id"]
        and 0 <= at - int(e["occurred_ms"]) <= window
    ]
    if not hits:
        return None
    first = min(hits, key=lambda e: (int(e["occurred_ms"]), str(e["report_id"])))
    return str(first["report_id"])


def may_repeat(complaint: Mapping[str, Any]) -> bool:
    """Whether :func:`find_repeat` could ever find a report this complaint repeats, or a
    later one could repeat it: it names a person and a category other than
    :data:`NOT_REPEATED`. Only those go to the repeat index."""
    return bool(complaint["person"]) and complaint["category"] not in NOT_REPEATED


def marked_repeat(state: WorkOrder, repeat_of: str, now_ms: int) -> WorkOrder | None:
    """The order's state with ``repeat_of`` set (a new revision), or None when there is
    nothing to change: the order already names the report it repeats (the first answer
    stays, so a replayed mark changes nothing), or ``repeat_of`` is the order itself."""
    if not repeat_of or state.get("repeat_of") or repeat_of == state["report_id"]:
        return None
    return {
        **state,
        "repeat_of": repeat_of,
        "revision": int(state["revision"]) + 1,
        "updated_ms": int(now_ms),
    }


def remember_complaint(
    earlier: Sequence[Mapping[str, Any]], complaint: Mapping[str, Any], window_days: float
) -> list[dict[str, Any]]:
    """``earlier`` with ``complaint`` added (once) and the complaints no later one can repeat
    dropped: those older than the window before the newest submission kept."""
    kept = [dict(e) for e in earlier if e["report_id"] != complaint["report_id"]]
    kept.append(dict(complaint))
    newest = max(int(e["occurred_ms"]) for e in kept)
    horizon = newest - int(window_days * DAY_MS)
    return [e for e in kept if int(e["occurred_ms"]) >= horizon]


# --- rows ------------------------------------------------------------------------------------

ORDER_COLUMNS = (
    "report_id", "state", "region_code", "province_code", "city_code", "county_code",
    "township_code", "city", "county", "township", "village", "channel", "category_code",
    "category_major", "category_minor", "priority", "sla_hours", "routed_department",
    "department", "first_level", "level", "submitted_at", "first_deadline", "deadline",
    "accepted_at", "dispatched_at", "resolved_at", "verified_at", "closed_at", "cancelled_at",
    "on_time", "reopens", "escalations", "pending_steps", "last_action", "last_step_at",
    "updated_at", "version", "request_type", "taxonomy_version", "classifier",
    "sign_deadline", "signed_on_time", "responded_at", "transfers", "revisits", "revisited_at",
    "satisfaction", "resident_solved", "dissatisfied_streak", "problem", "problem_at",
    "warnings", "repeat_of", "corrected_category", "corrected_major", "corrected_minor",
    "corrected_at",
)  # fmt: skip


def _at(ms: int | None) -> datetime | None:
    return from_ms(int(ms)) if ms is not None else None


def order_row(state: WorkOrder) -> Row:
    """An order's current state as a gov.work_orders row (ORDER_COLUMNS order); version =
    the state's revision, so the latest state wins and a repeated insert collapses. A state
    opened before issue 14 has no request type, taxonomy version or classifier: ''; one
    opened before issue 19 gets the closed-loop fields of :func:`upgraded`."""
    s = upgraded(state)
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
        s.get("classifier", ""), from_ms(s["sign_deadline_ms"]), s["signed_on_time"],
        _at(s["responded_ms"]), int(s["transfers"]), int(s["revisits"]), _at(s["revisited_ms"]),
        s["satisfaction"], s["resident_solved"], int(s["dissatisfied_streak"]), bool(s["problem"]),
        _at(s["problem_ms"]), list(s["warnings"]), s["repeat_of"], s["corrected_category"],
        s["corrected_major"], s["corrected_minor"], _at(s["corrected_ms"]),
    ]  # fmt: skip


def _ms_of(value: Any) -> int | None:
    """ClickHouse DateTime64 (a datetime) as epoch milliseconds; None stays None."""
    return None if value is None else to_ms(value)


def state_from_row(row: Mapping[str, Any], events: Sequence[str], partition: int) -> WorkOrder:
    """An order's state rebuilt from its gov.work_orders row (a dict by ORDER_COLUMNS name),
    the event ids ClickHouse holds for it (its SUBMIT and steps: replays stay duplicates)
    and the report topic partition of its SUBMIT.

    What a row cannot give back: buffered out-of-order steps (``pending``: they were never
    written, so a later step may wait for them and be dead-lettered after the tolerance),
    the open SLA alert (``alert``: a later escalation raises a new one instead of updating
    it) and the open 督办 warnings (``supervision``: the conditions already warned of stay in
    ``warnings``, so none is raised twice, but a warning open then is not cancelled when its
    condition clears). Used when the work-orders table lost its changelog (see
    pipelines/restore.py). A row written before issue 19 (the migration's defaults) gives the
    closed-loop fields of :func:`upgraded`."""
    r = row
    state: dict[str, Any] = {
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
        "corrected_category": str(r.get("corrected_category") or ""),
        "corrected_major": str(r.get("corrected_major") or ""),
        "corrected_minor": str(r.get("corrected_minor") or ""),
        "corrected_ms": _ms_of(r.get("corrected_at")),
    }  # fmt: skip
    if r.get("sign_deadline") is None:
        return upgraded(state)
    return cast(WorkOrder, {
        **state,
        "sign_deadline_ms": _ms_of(r["sign_deadline"]), "signed_on_time": r.get("signed_on_time"),
        "responded_ms": _ms_of(r.get("responded_at")), "transfers": int(r.get("transfers") or 0),
        "revisits": int(r.get("revisits") or 0), "revisited_ms": _ms_of(r.get("revisited_at")),
        "satisfaction": str(r.get("satisfaction") or ""),
        "resident_solved": r.get("resident_solved"),
        "dissatisfied_streak": int(r.get("dissatisfied_streak") or 0),
        "problem": bool(r.get("problem")), "problem_ms": _ms_of(r.get("problem_at")),
        "warnings": [str(w) for w in r.get("warnings") or ()], "supervision": {},
        "repeat_of": str(r.get("repeat_of") or ""),
    })  # fmt: skip
