"""The simulator's closed loop (issue 19, item 5): 回访, 转派, repeats and seeded hotspots are
valid for the work-order state machine, and the expected figures the manifest holds (三率 per
department, 督办 warnings, 问题工单, repeats, hotspots) are right — on hand-checkable events and
against pipelines/workorders.py replaying a whole simulated day."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from pipelines import simulator, workorders
from pipelines.simulator import CST, DAY_MS, HOUR_MS, SimEvent
from tests.unit.test_workorders import replay_reports

pytestmark = pytest.mark.unit

NOW = datetime(2026, 3, 2, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai
CONFIG = simulator.SimConfig.closed_loop(
    seed=3, reports=900, forms=0, warnings=0, minutes=24 * 60 - 15
)


@pytest.fixture(scope="module")
def events() -> list[SimEvent]:
    return simulator.generate(CONFIG, now=NOW)


@pytest.fixture(scope="module")
def manifest(events: list[SimEvent]) -> dict[str, Any]:
    return simulator.manifest(events, CONFIG, now=NOW)


# --- hand-checkable cases --------------------------------------------------------------------

T = int(NOW.timestamp() * 1000) - 20 * HOUR_MS  # a submission 20 h before NOW
SEQ = iter(range(10**6))


def _submit(
    rid: str, at: int = T, *, person: str = "p", code: str = "E0101", grid: str = ""
) -> SimEvent:
    value: dict[str, Any] = {"action": "SUBMIT", "reporter": {"id": person}}
    if grid:
        value["grid_id"] = grid
    meta = {"kind": "submit", "category": code, "department": "A", "occurred_ms": at}
    meta["seq"] = next(SEQ)
    return SimEvent("report", rid, at, value=value, meta=meta)


def _step(rid: str, action: str, minutes: int, **value: Any) -> SimEvent:
    at = T + minutes * 60_000
    meta = {"kind": "step", "action": action, "occurred_ms": at, "seq": next(SEQ)}
    return SimEvent("report", rid, at, value={"action": action, **value}, meta=meta)


def _path(rid: str, start: int = 10, department: str = "A") -> list[SimEvent]:
    return [
        _step(rid, "ACCEPT", start),
        _step(rid, "DISPATCH", start + 10, assigned_department=department),
        _step(rid, "RESOLVE", start + 20),
        _step(rid, "VERIFY", start + 30),
        _step(rid, "CLOSE", start + 40),
    ]


def _revisit(rid: str, minutes: int, rating: str, solved: bool | None) -> SimEvent:
    return _step(rid, "REVISIT", minutes, satisfaction=rating, resident_solved=solved)


def test_three_rates_per_department_by_hand() -> None:
    """a: satisfied, solved; b: transferred to B, basically satisfied, not solved;
    c: dissatisfied and unsolved (reopened), reworked, then unreachable: its latest rating is
    unreachable, so it is not rated; d: no step, 20 h old (not judged for the response);
    e: no step, 30 h old (judged, not responded); f: 并单 duplicate of a (left out)."""
    events = [
        _submit("a"), *_path("a"), _revisit("a", 60, "satisfied", True),
        _submit("b"), _step("b", "ACCEPT", 5), _step("b", "DISPATCH", 6, assigned_department="A"),
        _step("b", "TRANSFER", 7, assigned_department="B"), _step("b", "RESOLVE", 8),
        _step("b", "VERIFY", 9), _step("b", "CLOSE", 11),
        _revisit("b", 12, "basically_satisfied", False),
        _submit("c"), *_path("c"), _revisit("c", 60, "dissatisfied", False),
        _step("c", "DISPATCH", 70, assigned_department="A"), _step("c", "RESOLVE", 80),
        _step("c", "VERIFY", 90), _step("c", "CLOSE", 100), _revisit("c", 110, "unreachable", None),
        _submit("d"), _submit("e", T - 10 * HOUR_MS), _submit("f"),
    ]  # fmt: skip
    orders = simulator.order_outcomes(events)
    assert orders["c"]["reopens"] == 1 and orders["c"]["state"] == "closed"
    assert orders["b"]["department"] == "B" and orders["b"]["transfers"] == 1
    kpis = simulator.expected_kpis(orders, {"f": "a"}, int(NOW.timestamp() * 1000))
    assert kpis["A"] == {
        "received": 4, "response_judged": 3, "responded": 2, "rated_orders": 1, "solved": 1,
        "satisfied": 1, "problem_orders": 0,
        "response_rate": 2 / 3, "resolution_rate": 1.0, "satisfaction_rate": 1.0,
    }  # fmt: skip
    assert kpis["B"] == {
        "received": 1, "response_judged": 1, "responded": 1, "rated_orders": 1, "solved": 0,
        "satisfied": 1, "problem_orders": 0,
        "response_rate": 1.0, "resolution_rate": 0.0, "satisfaction_rate": 1.0,
    }  # fmt: skip


def test_supervision_and_problem_orders_by_hand() -> None:
    """g: dissatisfied, reworked, unreachable, dissatisfied (two in a row: unreachable does not
    break the row), reopened twice; h: transferred three times (问题工单); i: reworked three
    times (问题工单, dissatisfied three times in a row); j: no step for 100 h (no response in
    24 h, no progress in 3 days); the others were handled within the last 24 h."""

    def rework(rid: str, start: int) -> list[SimEvent]:
        return [
            _step(rid, "DISPATCH", start, assigned_department="A"),
            *[_step(rid, a, start + n) for n, a in enumerate(("RESOLVE", "VERIFY", "CLOSE"), 1)],
        ]

    events = [
        _submit("g"), *_path("g"), _revisit("g", 60, "dissatisfied", False), *rework("g", 61),
        _revisit("g", 65, "unreachable", None), _revisit("g", 66, "dissatisfied", False),
        _submit("h"), _step("h", "ACCEPT", 1), _step("h", "DISPATCH", 2, assigned_department="A"),
        *[_step("h", "TRANSFER", 3 + n, assigned_department=d) for n, d in enumerate("BCD")],
        _submit("i"), *_path("i"),
        *[e for n in range(3) for e in (_revisit("i", 60 + 10 * n, "dissatisfied", False),
                                         *rework("i", 61 + 10 * n))],
        _submit("j", T - 80 * HOUR_MS),
    ]  # fmt: skip
    orders = simulator.order_outcomes(events)
    assert (orders["g"]["reopens"], orders["g"]["max_streak"]) == (2, 2)
    assert orders["g"]["state"] == "reopened"
    assert (orders["h"]["transfers"], orders["h"]["department"]) == (3, "D")
    assert (orders["i"]["reopens"], orders["i"]["state"]) == (3, "closed")
    at = int(NOW.timestamp() * 1000)
    assert simulator.expected_supervision(orders, at) == {
        "no_response": 1, "no_progress": 1, "dissatisfied_twice": 2, "problem_order": 2,
    }  # fmt: skip
    kpis = simulator.expected_kpis(orders, {}, at)
    assert kpis["A"]["problem_orders"] == 1 and kpis["D"]["problem_orders"] == 1
    assert kpis["A"]["received"] == 3  # g, i, j; h went on to D
    # four days later g (reopened) and h (dispatched), still open, had no step for 3 days
    later = simulator.expected_supervision(orders, at + 4 * DAY_MS)
    assert later["no_progress"] == 3 and later["no_response"] == 1
    # other thresholds (settings supervision_*): j is 80 h old, g has two in a row, i three
    rules = workorders.SupervisionRules(
        no_response_hours=100, no_progress_days=10, dissatisfied_in_a_row=3, problem_after=4
    )
    assert simulator.expected_supervision(orders, at, rules) == {
        "no_response": 0, "no_progress": 0, "dissatisfied_twice": 1, "problem_order": 0,
    }  # fmt: skip
    assert simulator.expected_kpis(orders, {}, at, rules)["A"]["problem_orders"] == 0
    loop = simulator.Analysis(supervision_no_response_hours=100, supervision_problem_after=4)
    assert loop.rules == workorders.SupervisionRules(no_response_hours=100, problem_after=4)


def test_repeats_by_hand() -> None:
    """Same person and category within the window, any channel → a repeat of the earliest;
    another category, another person, X9999, anonymous or past the window → none."""
    events = [
        _submit("r1", T - 10 * DAY_MS, person="x"),
        _submit("r2", T - 2 * DAY_MS, person="x"),  # repeats r1
        _submit("r3", T, person="x"),  # repeats r1 too (the earliest in the window)
        _submit("r4", T, person="x", code="P0101"),  # another category
        _submit("r5", T, person="y"),  # another person
        _submit("r6", T - 40 * DAY_MS, person="z"),
        _submit("r7", T, person="z"),  # 40 days later: past the 30-day window
        _submit("r8", T - DAY_MS, person="w", code="X9999"),
        _submit("r9", T, person="w", code="X9999"),  # X9999 is never a repeat
        _submit("r10", T - DAY_MS, person=""),
        _submit("r11", T, person=""),  # anonymous
    ]
    assert simulator.expected_repeats(events, 30) == {"r2": "r1", "r3": "r1"}
    assert simulator.expected_repeats(events, 45) == {"r2": "r1", "r3": "r1", "r7": "r6"}


def test_hotspots_by_hand() -> None:
    """Window 7 days ending today, baseline 4 windows (28 days) before it: g1/E0101 has 5 in
    the window and 8 in the baseline (mean 2: 5 >= 2 × 2) → hot; g2/E0101 has 6 against 16
    (mean 4: 6 < 8) → not hot; g3/E0101 has 4 and no baseline → under the minimum; g4/X9999 is
    left out; reports older than 35 days count nowhere."""
    today = date(2026, 3, 2)

    def at(days_ago: int) -> int:
        noon = datetime(today.year, today.month, today.day, 12, tzinfo=CST) - timedelta(
            days=days_ago
        )
        return int(noon.timestamp() * 1000)

    n = iter(range(1000))
    events = [
        *[_submit(f"a{next(n)}", at(d), grid="g1") for d in (0, 1, 2, 6, 6)],
        *[_submit(f"a{next(n)}", at(d), grid="g1") for d in (7, 8, 10, 20, 20, 27, 34, 34)],
        *[_submit(f"a{next(n)}", at(d), grid="g1") for d in (35, 36)],
        *[_submit(f"a{next(n)}", at(d), grid="g2") for d in (0, 0, 1, 1, 2, 3)],
        *[_submit(f"a{next(n)}", at(d), grid="g2") for d in [8] * 16],
        *[_submit(f"a{next(n)}", at(d), grid="g3") for d in (0, 1, 2, 3)],
        *[_submit(f"a{next(n)}", at(d), grid="g4", code="X9999") for d in (0, 1, 2, 3, 4, 5)],
        *[_submit(f"a{next(n)}", at(d)) for d in (0, 1, 2, 3, 4, 5)],  # no grid
    ]
    hot = simulator.expected_hotspots(events, today)
    assert hot == [{"grid_id": "g1", "category_code": "E0101", "reports": 5, "baseline_reports": 8}]
    looser = simulator.Analysis(hotspot_min_reports=4, hotspot_min_ratio=1.5)
    assert [h["grid_id"] for h in simulator.expected_hotspots(events, today, looser)] == [
        "g1", "g2", "g3",
    ]  # fmt: skip
    # the next day: the day 6 reports leave the window for the baseline (3 < 5)
    assert simulator.expected_hotspots(events, today + timedelta(days=1)) == []
    # 热点预警: one alert per hotspot of the day, its id from grid, category and window end
    assert simulator.expected_hotspot_alerts(events, today) == [
        "govstream-hotspot-g1-E0101-20260302"
    ]
    assert simulator.expected_hotspot_alerts(events, today, looser) == [
        f"govstream-hotspot-{g}-E0101-20260302" for g in ("g1", "g2", "g3")
    ]
    assert simulator.expected_hotspot_alerts(events, today + timedelta(days=1)) == []


# --- a simulated closed-loop day -------------------------------------------------------------


def test_default_config_writes_no_closed_loop_steps() -> None:
    events = simulator.generate(
        simulator.SimConfig(seed=3, reports=300, forms=0, warnings=0, minutes=24 * 60), now=NOW
    )
    assert not any(e.meta.get("action") in ("TRANSFER", "REVISIT") for e in events)
    assert not any("repeat_of" in e.meta or "hotspot" in e.meta for e in events)


def test_closed_loop_day_is_deterministic_and_has_every_kind(
    events: list[SimEvent], manifest: dict[str, Any]
) -> None:
    again = simulator.generate(CONFIG, now=NOW)
    assert [e.json_line() for e in again] == [e.json_line() for e in events]
    loop = manifest["closed_loop"]
    steps = manifest["reports"]["steps"]
    assert steps["TRANSFER"] > 0 and steps["REVISIT"] > 0
    ratings = Counter(
        (e.value or {})["satisfaction"] for e in events if e.meta.get("action") == "REVISIT"
    )
    assert set(ratings) == set(simulator.RATINGS)
    assert loop["reopened"] > 0 and loop["transferred"] > 0 and loop["problem_orders"] > 0
    assert loop["supervision"]["dissatisfied_twice"] > 0
    assert loop["repeats"] > 0
    channels = {e.key: (e.value or {})["channel"] for e in events if e.meta.get("kind") == "submit"}
    assert all(channels[r] != channels[first] for r, first in loop["repeat_of"].items())
    assert [(h["grid_id"], h["category_code"]) for h in loop["hotspots"]] == [
        tuple(s) for s in loop["seeded_hotspots"]
    ]
    assert loop["hotspots"][0]["reports"] == simulator.HOTSPOT_BURST
    assert loop["hotspots"][0]["baseline_reports"] == simulator.HOTSPOT_BASELINE
    [(grid, code)] = loop["seeded_hotspots"]
    day = loop["today"].replace("-", "")
    assert loop["hotspot_alerts"] == [f"govstream-hotspot-{grid}-{code}-{day}"]
    history = [
        e
        for e in events
        if e.meta.get("occurred_ms", NOW.timestamp() * 1000) < _ms(NOW) - 24 * HOUR_MS
    ]
    assert history and all(e.meta["kind"] == "submit" for e in history)  # no steps in history
    before, _rest = simulator.split_history(events, CONFIG, now=NOW)
    assert {e.key for e in before} == {e.key for e in history}
    # the pipeline finds a repeat only when the report it repeats arrived first: the history
    assert set(loop["repeat_of"].values()) <= {e.key for e in before}
    rates = loop["kpi_totals"]
    assert 0 < rates["satisfaction_rate"] < 1 and 0 < rates["resolution_rate"] < 1
    assert 0 < rates["response_rate"] < 1


def _ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


def test_the_state_machine_takes_every_step_and_agrees_with_the_manifest(
    events: list[SimEvent], manifest: dict[str, Any]
) -> None:
    """Every report event through pipelines/workorders.py in sending order (arrival = emit
    time): no step rejected or left buffered, and the orders' departments, ratings, reopens,
    transfers, 问题工单 and the rating/problem 督办 warnings are the manifest's."""
    states = replay_reports(events)
    orders = simulator.order_outcomes(events)
    for rid, s in states.items():
        o = orders[rid]
        got = (
            s["department"],
            s["satisfaction"],
            s["resident_solved"],
            s["reopens"],
            s["transfers"],
            s["problem"],
            s["state"],
        )
        want = (
            o["department"],
            o["satisfaction"],
            o["resident_solved"],
            o["reopens"],
            o["transfers"],
            max(o["reopens"], o["transfers"]) >= 3,
            o["state"],
        )
        assert got == want, rid
    warned = Counter(w for s in states.values() for w in s["warnings"])
    loop = manifest["closed_loop"]
    for condition in ("dissatisfied_twice", "problem_order"):
        assert warned[condition] == loop["supervision"][condition]
    duplicates = manifest["reports"]["duplicate_of"]
    on_time: dict[str, dict[str, Any]] = {}
    for s in states.values():
        if s["resolved_ms"] is not None:
            stats = on_time.setdefault(s["routed_department"], {"resolved": 0, "on_time": 0})
            stats["resolved"] += 1
            stats["on_time"] += int(bool(s["on_time"]))
    assert {d: (v["resolved"], v["on_time"]) for d, v in on_time.items()} == {
        d: (v["resolved"], v["on_time"]) for d, v in simulator.expected_on_time(events).items()
    }
    received = Counter(s["department"] for rid, s in states.items() if rid not in duplicates)
    assert received == {d: k["received"] for d, k in loop["kpi_by_department"].items()}


def test_no_report_of_a_duplicate_cluster_is_handled(
    events: list[SimEvent], manifest: dict[str, Any]
) -> None:
    """The pipeline takes whichever report of a 并单 cluster arrives first for the first (the
    reports travel on different partitions), and the KPI views leave the others out: with
    every report of a cluster unhandled, the same category and the day's window, the 三率 per
    department do not depend on which one that is."""
    with_steps = {e.key for e in events if e.meta.get("kind") == "step"}
    pairs = manifest["reports"]["duplicate_of"].items()
    assert pairs and not {r for pair in pairs for r in pair} & with_steps
