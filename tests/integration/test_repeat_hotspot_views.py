"""Repeat complaints, hotspots and 每月一题 (issue 19, item 4), read as the analyst: reports
routed by the pipeline's own steps, repeats found by its own rule in arrival order, inserted as
the agents insert them (twice: a replay), give the figures computed here by hand. The
thresholds come from gov.analysis_settings, which the worker publishes from its settings."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client

from pipelines import analysis, reports, restore, workorders
from pipelines.clickhouse import get_client
from pipelines.settings import Settings
from tests.integration import test_work_order_views as orders_test
from tests.integration.test_work_order_views import CST, NOW, YUEYANG, Orders

pytestmark = pytest.mark.integration
db = orders_test.db  # the fixture: a migrated database of its own per test

LIU = "wx-o6Zk3s9QmT1"  # the example's reporter (李秀兰)
WANG = "wx-someone-else"
G1, G2 = "430602001001-01", "430602001001-02"
PRAISE = "感谢社区网格员，服务很好，点赞！"  # classified X9999 (人工分拨)
TODAY = NOW.date()


class Reports(Orders):
    """Routed reports of given people, categories, channels, grids and times; repeats found
    by workorders.find_repeat in the order they are added, as the repeat agents do."""

    def __init__(self, client: Client, database: str, window_days: float = 30) -> None:
        super().__init__(client, database)
        self.window_days = window_days
        self.index: dict[str, list[dict[str, Any]]] = {}
        self.report_rows: list[list[Any]] = []

    def add(
        self,
        rid: str,
        at: datetime,
        *,
        person: str | None = LIU,
        category: str | None = "P0101",
        channel: str = "app",
        grid: str = G1,
        duplicate_of: str | None = None,
    ) -> dict[str, Any]:
        reporter = None if person is None else {**self.template["reporter"], "id": person}
        record = dict(
            self.template, report_id=rid, region_code=YUEYANG, occurred_at=at, channel=channel,
            grid_id=grid, reporter=reporter, category_hint=category,
            **({} if category else {"description": PRAISE}),
        )  # fmt: skip
        order = reports.work_order(record, salt="s", partition=0, offset=0, received_at=at)
        state = workorders.open_order(order)
        self.rows.append(workorders.order_row(state))
        complaint = workorders.complaint_of(order)
        if workorders.may_repeat(complaint):
            earlier = self.index.get(complaint["person"], [])
            repeat_of = workorders.find_repeat(earlier, complaint, self.window_days)
            self.index[complaint["person"]] = workorders.remember_complaint(
                earlier, complaint, self.window_days
            )
            marked = repeat_of and workorders.marked_repeat(state, repeat_of, order["received_ms"])
            if marked:  # a moment later, a new revision of the order
                state = marked
                self.rows.append(workorders.order_row(state))
        self.states[rid] = state
        self.report_rows.append(reports.report_row(order, duplicate_of))
        return order

    def flush(self) -> None:
        super().flush()
        for row in [*self.report_rows, *self.report_rows]:
            self.insert("reports", reports.REPORT_COLUMNS, [row])


def _at(day: date, hour: int = 9) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=CST)


def _days_ago(n: int, hour: int = 9) -> datetime:
    return _at(TODAY - timedelta(days=n), hour)


def _analyst_rows(settings: Settings, sql: str) -> list[dict[str, Any]]:
    result = get_client(settings, analyst=True).query(sql)
    return [dict(zip(result.column_names, row, strict=True)) for row in result.result_rows]


# --- 重复诉求 ---------------------------------------------------------------------------------


def _repeat_scenario(client: Client, name: str) -> Reports:
    r = Reports(client, name)
    r.add("r1", _days_ago(66), channel="app")
    r.add("r2", _days_ago(35), channel="hotline")  # 31 days after r1: not a repeat of it
    r.add("r3", _days_ago(5), channel="group_message")  # exactly 30 days after r2: repeats it
    r.add("r4", _days_ago(5, 10), category="P0102")  # another category
    r.add("r5", _days_ago(5, 11), person=WANG)  # another person
    r.add("r6", _days_ago(5, 12), person=None)  # anonymous
    r.add("r7", _days_ago(1), channel="group_message")  # r2 is 34 days back: repeats r3
    r.add("r8", _days_ago(1, 10), category=None)  # X9999 (praise): never a repeat
    r.add("r9", _days_ago(1, 11), category=None)
    r.flush()
    return r


def test_repeat_complaints(stack: Settings, db: tuple[Client, str]) -> None:
    client, name = db
    _repeat_scenario(client, name)
    rows = _analyst_rows(
        stack,
        "SELECT report_id, repeat_of, days_after, channel, first_channel, other_channel, "
        f"category_code, month, grid_id FROM {name}.repeat_complaints ORDER BY report_id",
    )
    r3_day = TODAY - timedelta(days=5)
    assert rows == [
        {"report_id": "r3", "repeat_of": "r2", "days_after": 30.0, "channel": "group_message",
         "first_channel": "hotline", "other_channel": True, "category_code": "P0101",
         "month": r3_day.replace(day=1), "grid_id": G1},
        {"report_id": "r7", "repeat_of": "r3", "days_after": 4.0, "channel": "group_message",
         "first_channel": "group_message", "other_channel": False, "category_code": "P0101",
         "month": (TODAY - timedelta(days=1)).replace(day=1), "grid_id": G1},
    ]  # fmt: skip
    marked = client.query(
        f"SELECT report_id FROM {name}.work_orders FINAL WHERE repeat_of != '' ORDER BY report_id"
    ).result_rows
    assert marked == [("r3",), ("r7",)]


def test_the_repeat_index_is_put_back_from_reports(stack: Settings, db: tuple[Client, str]) -> None:
    """What find_repeats gets back when its changelog was lost: the person's complaints in
    the window, anonymous and X9999 reports left out, oldest first."""
    client, name = db
    r = _repeat_scenario(client, name)
    liu = workorders.complaint_of(_routed(r, LIU))["person"]
    wang = workorders.complaint_of(_routed(r, WANG))["person"]
    since, until = reports.to_ms(_days_ago(40)), reports.to_ms(NOW)
    found = restore.complaints(client, name, [liu, wang, "nobody"], since, until)
    assert {p: [c["report_id"] for c in cs] for p, cs in found.items()} == {
        liu: ["r2", "r3", "r4", "r7"],
        wang: ["r5"],
    }
    assert found[liu][0] == {
        "report_id": "r2", "person": liu, "category": "P0101",
        "occurred_ms": reports.to_ms(_days_ago(35)),
    }  # fmt: skip
    assert r.index[liu] == [c for c in found[liu] if c["report_id"] in ("r3", "r4", "r7")]


def _routed(r: Reports, person: str) -> dict[str, Any]:
    record = dict(r.template, reporter={**r.template["reporter"], "id": person})
    return reports.work_order(record, salt="s", partition=0, offset=0, received_at=NOW)


# --- 热点 -------------------------------------------------------------------------------------


def _hotspot_scenario(client: Client, name: str) -> Reports:
    r = Reports(client, name)
    n = iter(range(1000))

    def reports_on(days_ago: int, count: int, **kw: Any) -> None:
        for i in range(count):
            r.add(f"h{next(n)}", _days_ago(days_ago, 8 + i), person=f"p{next(n)}", **kw)

    # G1 P0101: 4 in the baseline (mean 1 a week), 5 yesterday: hot (5 >= 5, 5 >= 2 × 1)
    for days_ago in (20, 15, 10, 8):
        reports_on(days_ago, 1)
    reports_on(1, 5)
    # G1 P0102: 12 in the baseline (mean 3), 5 yesterday: 5 < 2 × 3, not hot. A week apart,
    # so no window holds two of these days (6 reports with less before would be a hotspot)
    for days_ago in (34, 27, 20, 13):
        reports_on(days_ago, 3, category="P0102")
    reports_on(1, 5, category="P0102")
    # G2 P0101: 4 yesterday, no baseline: under the minimum of 5
    reports_on(1, 4, grid=G2)
    # G2 P0102: 5 yesterday, no baseline: hot by the minimum alone (ratio NULL)
    reports_on(1, 5, grid=G2, category="P0102")
    # left out: no grid, X9999
    reports_on(1, 6, grid="")
    reports_on(1, 6, category=None)
    r.flush()
    return r


HOT_COLUMNS = "reports, baseline_reports, baseline_mean, ratio, hot"


def _windows(settings: Settings, name: str, end: date) -> dict[tuple[str, str], tuple[Any, ...]]:
    rows = _analyst_rows(
        settings,
        f"SELECT grid_id, category_code, window_start, window_days, baseline_windows, "
        f"{HOT_COLUMNS} FROM {name}.hotspot_windows WHERE window_end = '{end.isoformat()}'",
    )
    for row in rows:
        assert row.pop("window_start") == end - timedelta(days=row.pop("window_days") - 1)
        assert row.pop("baseline_windows") == 4
    return {(r["grid_id"], r["category_code"]): tuple(list(r.values())[2:]) for r in rows}


def test_hotspot_windows_against_the_baseline(stack: Settings, db: tuple[Client, str]) -> None:
    client, name = db
    _hotspot_scenario(client, name)
    # the window ending today: [today - 6, today]; its baseline: the 28 days before
    assert _windows(stack, name, TODAY) == {
        (G1, "P0101"): (5, 4, 1.0, 5.0, True),
        (G1, "P0102"): (5, 12, 3.0, 5 / 3, False),  # days 34-13 are in [today - 34, today - 7]
        (G2, "P0101"): (4, 0, 0.0, None, False),
        (G2, "P0102"): (5, 0, 0.0, None, True),
    }
    # the window ending 8 days ago: [-14, -8] holds the reports of days 13, 10 and 8, its
    # baseline [-42, -15] those of days 34, 27, 20 and 15
    assert _windows(stack, name, TODAY - timedelta(days=8)) == {
        (G1, "P0101"): (2, 2, 0.5, 4.0, False),
        (G1, "P0102"): (3, 9, 2.25, 3 / 2.25, False),
    }
    hot = _analyst_rows(
        stack,
        f"SELECT grid_id, category_code, window_end, reports FROM {name}.hotspots "
        "ORDER BY grid_id, category_code, window_end",
    )
    yesterday = TODAY - timedelta(days=1)
    assert hot == [
        {"grid_id": g, "category_code": c, "window_end": end, "reports": 5}
        for g, c in ((G1, "P0101"), (G2, "P0102"))
        for end in (yesterday, TODAY)
    ]


def test_the_thresholds_are_the_workers_settings(stack: Settings, db: tuple[Client, str]) -> None:
    client, name = db
    _hotspot_scenario(client, name)
    [published] = _analyst_rows(stack, f"SELECT * FROM {name}.analysis_settings")
    defaults = Settings.model_construct()  # the migration creates it with the defaults
    assert published == {column: getattr(defaults, column) for column, _ in analysis.PUBLISHED}
    changed = defaults.model_copy(update={"hotspot_min_reports": 4, "monthly_top_n": 1})
    assert analysis.publish(client, name, changed) is True
    assert analysis.publish(client, name, changed) is False  # the same values: no DDL sent
    hot = _windows(stack, name, TODAY)
    assert hot[(G2, "P0101")] == (4, 0, 0.0, None, True)  # 4 is enough now
    assert hot[(G1, "P0102")][-1] is False  # the ratio still rules it out
    comments = dict(
        client.query(
            "SELECT name, comment FROM system.columns WHERE database = {d:String} "
            "AND table = 'analysis_settings'",
            {"d": name},
        ).result_rows
    )
    assert comments["hotspot_min_reports"].startswith("GOVSTREAM_HOTSPOT_MIN_REPORTS: 热点")
    top = _analyst_rows(stack, f"SELECT month, rank FROM {name}.monthly_top_issues")
    assert {row["rank"] for row in top} == {1}


# --- 每月一题 -----------------------------------------------------------------------------------


def test_monthly_top_issues(stack: Settings, db: tuple[Client, str]) -> None:
    client, name = db
    r = Reports(client, name)
    march = date(2024, 3, 1)
    # P0101: 4 reports, one merged (并单) into m1, one anonymous, two by 李秀兰 (m4 repeats m1)
    r.add("m1", _at(march), grid=G1)
    r.add("m2", _at(march, 10), grid=G1, person=WANG, duplicate_of="m1")
    r.add("m3", _at(march + timedelta(days=3)), grid=G2, person=None)
    r.add("m4", _at(march + timedelta(days=9)), grid="", channel="hotline")
    # P0102: 4 reports by 4 people in one grid (a tie with P0101: the smaller code first)
    for i in range(4):
        r.add(f"l{i}", _at(march + timedelta(days=i)), category="P0102", person=f"q{i}")
    # E0201: 2; S0101: 1; X9999: 3 (not an issue, not in the month's total)
    r.add("e1", _at(march + timedelta(days=20)), category="E0201", person="e")
    r.add("e2", _at(march + timedelta(days=21)), category="E0201", person="e")
    r.add("s1", _at(march + timedelta(days=30), 20), category="S0101", person="s")  # 31 Mar
    for i in range(3):
        r.add(f"x{i}", _at(march + timedelta(days=i)), category=None, person=f"x{i}")
    r.add("april", _at(date(2024, 4, 1), 0), category="S0101", person="s")  # 1 April 00:00 CST
    r.flush()
    rows = _analyst_rows(
        stack,
        "SELECT rank, category_code, reports, orders, persons, repeats, grids, share "
        f"FROM {name}.monthly_top_issues WHERE month = '2024-03-01' ORDER BY rank",
    )
    want = [
        (1, "P0101", 4, 3, 2, 1, 2, 4 / 11),
        (2, "P0102", 4, 4, 4, 0, 1, 4 / 11),
        (3, "E0201", 2, 2, 1, 1, 1, 2 / 11),
        (4, "S0101", 1, 1, 1, 0, 1, 1 / 11),
    ]
    got = [tuple(row.values()) for row in rows]
    assert [g[:-1] for g in got] == [w[:-1] for w in want]
    assert [g[-1] for g in got] == pytest.approx([w[-1] for w in want])
    april = _analyst_rows(
        stack,
        "SELECT month, category_code, rank, repeats "
        f"FROM {name}.monthly_top_issues WHERE month = '2024-04-01'",
    )  # 00:00 of 1 April in Shanghai is April; the report repeats s1 of 31 March
    assert april == [{"month": date(2024, 4, 1), "category_code": "S0101", "rank": 1, "repeats": 1}]
