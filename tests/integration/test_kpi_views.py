"""KPI views of the closed loop (issue 19, item 3), read as the analyst: orders folded by the
pipeline's own state machine and inserted as the report agent inserts them (every revision,
twice), give the 签收, 三率, 按时办结, 发回重办, open, overdue and 问题工单 figures computed here
by hand, per department, county, township, grid and category, by day and by month."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client

from pipelines import reports
from pipelines.clickhouse import get_client
from pipelines.settings import Settings
from tests.integration import test_work_order_views as orders_test
from tests.integration.test_work_order_views import (
    DAY,
    NOW,
    T0,
    XIAN,
    YUEYANG,
    A,
    B,
    Orders,
)

pytestmark = pytest.mark.integration
db = orders_test.db  # the fixture: a migrated database of its own per test

C = "永定区城管执法局"
ZJJ = "430802001002"  # a village of 永定区, 张家界
G1, G2, G3 = "430602001001-01", "430602001001-02", "430802001002-01"
# k7 is submitted an hour ago: its day (Asia/Shanghai, as the views count) is yesterday when
# the test runs between 00:00 and 01:00 CST (16:00-17:00 UTC), not NOW's date
K7_AT = NOW - timedelta(hours=1)
K7_DAY = K7_AT.date()


def _submit(o: Orders, rid: str, region: str, at: datetime, sla_h: float, dept: str, grid: str):
    order = o.submit(rid, region, at, sla_h, dept)
    order["grid_id"] = grid
    o.insert("reports", reports.REPORT_COLUMNS, [reports.report_row(order, None)])


def _steps(o: Orders, rid: str, *steps: tuple[str, float, dict[str, Any]]) -> None:
    for action, hours, extra in steps:
        o.step(rid, action, hours, **extra)


def _rating(satisfaction: str, solved: bool | None) -> dict[str, Any]:
    return {"satisfaction": satisfaction, "resident_solved": solved}


def _scenario(client: Client, database: str) -> Orders:
    """Every order is the example's 井盖 report (P0101, P1: signed for within 30 minutes)."""
    o = Orders(client, database)
    to_a, to_b = {"assigned_department": A}, {"assigned_department": B}
    closed: list[tuple[str, float, dict[str, Any]]] = [
        ("RESOLVE", 1.0, {}),
        ("VERIFY", 1.5, {}),
        ("CLOSE", 2.0, {}),
    ]
    # k1: A, grid G1: signed in 6 min, resolved on time, closed, satisfied and solved
    _submit(o, "k1", YUEYANG, T0, 4, A, G1)
    _steps(o, "k1", ("ACCEPT", 0.1, {}), ("DISPATCH", 0.2, to_a), *closed,
           ("REVISIT", 20, _rating("satisfied", True)))  # fmt: skip
    # k2: A, G1: signed late (1 h), closed, dissatisfied and not solved: reopened (发回重办),
    # new deadline 20 h + 4 h after submission: overdue now
    _submit(o, "k2", YUEYANG, T0 + timedelta(minutes=10), 4, A, G1)
    _steps(o, "k2", ("ACCEPT", 1.0, {}), ("DISPATCH", 1.1, to_a), ("RESOLVE", 3, {}),
           ("VERIFY", 3.5, {}), ("CLOSE", 4, {}),
           ("REVISIT", 20, _rating("dissatisfied", False)))  # fmt: skip
    # k3: A → B by 转派, G2: signed in 12 min, resolved late (6 h > 4 h), closed, basically
    # satisfied and solved
    _submit(o, "k3", YUEYANG, T0 + timedelta(minutes=20), 4, A, G2)
    _steps(o, "k3", ("ACCEPT", 0.2, {}), ("DISPATCH", 0.3, to_a), ("TRANSFER", 0.5, to_b),
           ("RESOLVE", 6, {}), ("VERIFY", 6.5, {}), ("CLOSE", 7, {}),
           ("REVISIT", 30, _rating("basically_satisfied", True)))  # fmt: skip
    # k4: A, G2: nothing happened: not signed, no response, open and overdue
    _submit(o, "k4", YUEYANG, T0 + timedelta(minutes=30), 4, A, G2)
    # k5: B, 莲湖区, no grid: signed in 15 min, resolved on time, closed, resident unreachable
    _submit(o, "k5", XIAN, T0 + timedelta(hours=1), 200, B, "")
    _steps(o, "k5", ("ACCEPT", 0.25, {}), ("DISPATCH", 0.3, to_b), *closed,
           ("REVISIT", 10, _rating("unreachable", None)))  # fmt: skip
    # k6: B, no grid: signed late (36 min), then cancelled
    _submit(o, "k6", XIAN, T0 + timedelta(hours=2), 200, B, "")
    _steps(o, "k6", ("ACCEPT", 0.6, {}), ("CANCEL", 1, {"note": "撤诉"}))
    # k8: B, no grid: signed in 6 min, reworked three times: a 问题工单, open, not overdue
    _submit(o, "k8", XIAN, T0 + timedelta(hours=3), 200, B, "")
    _steps(o, "k8", ("ACCEPT", 0.1, {}), ("DISPATCH", 0.2, to_b), ("REOPEN", 0.3, {}),
           ("DISPATCH", 0.4, to_b), ("REOPEN", 0.5, {}), ("DISPATCH", 0.6, to_b),
           ("REOPEN", 0.7, {}))  # fmt: skip
    # k7: C, 永定区, G3, an hour ago: signed in 12 min, open
    _submit(o, "k7", ZJJ, K7_AT, 48, C, G3)
    _steps(o, "k7", ("ACCEPT", 0.2, {}))
    o.flush()
    assert o.states["k2"]["state"] == "reopened" and o.states["k8"]["problem"] is True
    assert o.states["k3"]["department"] == B and o.states["k3"]["transfers"] == 1
    return o


MEASURES = (
    "received", "on_time_sign_rate", "response_rate", "resolution_rate", "satisfaction_rate",
    "on_time_close_rate", "reopen_rate", "open", "overdue", "problem_orders", "transferred",
    "revisited",
)  # fmt: skip


def _want(*values: Any) -> dict[str, Any]:
    return dict(zip(MEASURES, values, strict=True))


# by hand (see _scenario): sign-for on time / judged, responded in 24 h / judged, solved and
# (basically) satisfied / rated, closed on time / closed, reworked / resolved or reworked
WANT_A = _want(3, 1 / 3, 2 / 3, 1 / 2, 1 / 2, 1.0, 1 / 2, 2, 2, 0, 0, 2)  # k1 k2 k4
WANT_B = _want(4, 3 / 4, 1.0, 1.0, 1.0, 1 / 2, 1 / 3, 1, 0, 1, 1, 2)  # k3 k5 k6 k8
WANT_YUEYANG = _want(4, 2 / 4, 3 / 4, 2 / 3, 2 / 3, 1 / 2, 1 / 3, 2, 2, 0, 1, 3)  # k1-k4
WANT_XIAN = _want(3, 2 / 3, 1.0, None, None, 1.0, 1 / 2, 1, 0, 1, 0, 1)  # k5 k6 k8
WANT_G1 = _want(2, 1 / 2, 1.0, 1 / 2, 1 / 2, 1.0, 1 / 2, 1, 1, 0, 0, 2)  # k1 k2
WANT_G2 = _want(2, 1 / 2, 1 / 2, 1.0, 1.0, 0.0, 0.0, 1, 1, 0, 1, 1)  # k3 k4
WANT_K7 = _want(1, 1.0, 1.0, None, None, None, None, 1, 0, 0, 0, 0)
WANT_P0101 = _want(7, 4 / 7, 6 / 7, 2 / 3, 2 / 3, 2 / 3, 2 / 5, 3, 2, 1, 1, 4)  # all but k7


def _read(
    settings: Settings, database: str, view: str, key: str
) -> dict[tuple[str, Any, str], Any]:
    """(period, period_start, key) → measures, read as the analyst."""
    analyst = get_client(settings, analyst=True)
    result = analyst.query(
        f"SELECT period, period_start, {key}, {', '.join(MEASURES)} FROM {database}.{view}"
    )
    return {
        (str(r[0]), r[1], str(r[2])): dict(zip(MEASURES, r[3:], strict=True))
        for r in result.result_rows
    }


def _check(got: dict[str, Any], want: dict[str, Any]) -> None:
    for name, value in want.items():
        if value is None:
            assert got[name] is None, name
        else:
            assert got[name] == pytest.approx(value, abs=1e-9), name


def _month(day: Any) -> Any:
    return day.replace(day=1)


def _both_periods(rows: dict[tuple[str, Any, str], Any], key: str, want: dict[str, Any]) -> None:
    _check(rows[("day", DAY, key)], want)
    _check(rows[("month", _month(DAY), key)], want)


def test_kpi_by_department(stack: Settings, db: tuple[Client, str]) -> None:
    client, name = db
    _scenario(client, name)
    rows = _read(stack, name, "kpi_by_department", "department")
    assert set(rows) == {
        (p, s, d)
        for d, day in ((A, DAY), (B, DAY), (C, K7_DAY))
        for p, s in (("day", day), ("month", _month(day)))
    }
    _both_periods(rows, A, WANT_A)
    _both_periods(rows, B, WANT_B)
    _check(rows[("day", K7_DAY, C)], WANT_K7)


def test_kpi_by_county_and_township(stack: Settings, db: tuple[Client, str]) -> None:
    client, name = db
    _scenario(client, name)
    counties = _read(stack, name, "kpi_by_county", "county_code")
    _both_periods(counties, "430602000000", WANT_YUEYANG)
    _both_periods(counties, "610102000000", WANT_XIAN)
    _check(counties[("day", K7_DAY, "430802000000")], WANT_K7)
    townships = _read(stack, name, "kpi_by_township", "township_code")
    _both_periods(townships, "430602001000", WANT_YUEYANG)
    _both_periods(townships, "610102001000", WANT_XIAN)
    names = (
        get_client(stack, analyst=True)
        .query(
            f"SELECT DISTINCT county, township FROM {name}.kpi_by_township "
            "WHERE township_code = '430602001000'"
        )
        .result_rows
    )
    assert names == [("岳阳楼区", "岳阳楼街道")]


def test_kpi_by_grid_and_category(stack: Settings, db: tuple[Client, str]) -> None:
    client, name = db
    _scenario(client, name)
    grids = _read(stack, name, "kpi_by_grid", "grid_id")
    _both_periods(grids, G1, WANT_G1)
    _both_periods(grids, G2, WANT_G2)
    _both_periods(grids, "", WANT_XIAN)  # k5 k6 k8 named no grid
    _check(grids[("day", K7_DAY, G3)], WANT_K7)
    categories = _read(stack, name, "kpi_by_category", "category_code")
    _check(categories[("day", DAY, "P0101")], WANT_P0101)
    _check(categories[("day", K7_DAY, "P0101")], WANT_K7)
    month = categories[("month", _month(DAY), "P0101")]
    same_month = _month(K7_DAY) == _month(DAY)
    assert month["received"] == (8 if same_month else 7)


def test_an_order_merged_by_bingdan_is_not_counted(stack: Settings, db: tuple[Client, str]) -> None:
    client, name = db
    o = _scenario(client, name)
    dup = o.submit("k1-dup", YUEYANG, T0 + timedelta(minutes=5), 4, A)
    o.insert("reports", reports.REPORT_COLUMNS, [reports.report_row(dup, "k1")])
    o.flush()
    rows = _read(stack, name, "kpi_by_department", "department")
    assert rows[("day", DAY, A)]["received"] == 3
