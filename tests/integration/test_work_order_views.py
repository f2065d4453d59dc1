"""Work-order views in ClickHouse: states made by the pipeline's own state machine, inserted as
the report agent inserts them (every revision, replays included), give the on-time rates,
resolution-time quantiles and open/overdue counts computed here by hand."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client

from pipelines import alerts, contracts, reports, workorders
from pipelines.clickhouse import get_client, migrate, temporary_database
from pipelines.settings import Settings

pytestmark = pytest.mark.integration

CST = timezone(timedelta(hours=8))
NOW = datetime.now(CST)
DAY = (NOW - timedelta(days=2)).date()
T0 = datetime(DAY.year, DAY.month, DAY.day, 9, 0, tzinfo=CST)  # 09:00 two days ago
EXAMPLE = Path(contracts.SCHEMA_DIR) / "examples" / "report.jsonl"
YUEYANG, XIAN = "430602001001", "610102001001"  # villages of two counties
A, B = "市政设施管理处", "城市照明管理所"
OPERATOR = {"id": "op-1", "name": "王强", "department": "综治中心", "role": "处置员"}
TOL = 3_600_000


@pytest.fixture
def db(stack: Settings, unique: str) -> Iterator[tuple[Client, str]]:
    client = get_client(stack)
    with temporary_database(client, f"test_workorders_{unique}") as name:
        migrate(client, name)
        yield client, name


class Orders:
    """Orders folded by :mod:`pipelines.workorders`, every revision inserted like the agent."""

    def __init__(self, client: Client, db: str) -> None:
        self.client, self.db = client, db
        self.template = contracts.from_json(
            contracts.REPORT, json.loads(EXAMPLE.read_text("utf-8").splitlines()[0])
        )
        self.states: dict[str, dict[str, Any]] = {}
        self.rows: list[list[Any]] = []

    def submit(
        self, rid: str, region: str, at: datetime, sla_h: float, department: str
    ) -> dict[str, Any]:
        record = dict(self.template, report_id=rid, region_code=region, occurred_at=at)
        order = reports.work_order(record, salt="s", partition=0, offset=0, received_at=at)
        order.update(
            sla_hours=sla_h,
            deadline_ms=reports.to_ms(at + timedelta(hours=sla_h)),
            department=department,
        )
        self.states[rid] = workorders.open_order(order)
        self.rows.append(workorders.order_row(self.states[rid]))
        return order

    def step(self, rid: str, action: str, hours: float, **extra: Any) -> None:
        state = self.states[rid]
        at = reports.from_ms(state["submitted_ms"]) + timedelta(hours=hours)
        record = {
            "event_id": str(uuid.uuid4()),
            "report_id": rid,
            "action": action,
            "occurred_at": at,
            "operator": OPERATOR,
            **extra,
        }
        step = workorders.step_of(record, partition=0, offset=1, received_at=at)
        outcome = workorders.apply(state, step, tolerance_ms=TOL)
        self.states[rid] = outcome.state
        self.rows.append(workorders.order_row(outcome.state))
        if outcome.alert_rows:
            self.insert("alerts", alerts.ALERT_COLUMNS, outcome.alert_rows)

    def handle(self, rid: str, *actions_at: tuple[str, float]) -> None:
        for action, hours in actions_at:
            extra = {"assigned_department": self.states[rid]["department"]}
            self.step(rid, action, hours, **(extra if action == "DISPATCH" else {}))

    def escalate(self, rid: str, at: datetime) -> None:
        state, esc, alert_rows, _ = workorders.escalate(self.states[rid], at)
        assert esc is not None
        self.states[rid] = state
        self.rows.append(workorders.order_row(state))
        self.insert("alerts", alerts.ALERT_COLUMNS, alert_rows)

    def insert(self, table: str, columns: tuple[str, ...], rows: list[Any]) -> None:
        self.client.insert(f"{self.db}.{table}", rows, column_names=list(columns))

    def flush(self) -> None:
        # revisions in arrival order, then all of them again (a replay after a crash)
        for row in [*self.rows, *self.rows]:
            self.insert("work_orders", workorders.ORDER_COLUMNS, [row])


def _scenario(client: Client, db: str) -> Orders:
    o = Orders(client, db)
    path = [("ACCEPT", 0.1), ("DISPATCH", 0.2)]
    # department A, 岳阳楼区, SLA 4 h
    o.submit("a1", YUEYANG, T0, 4, A)
    o.handle("a1", *path, ("RESOLVE", 1), ("VERIFY", 1.5), ("CLOSE", 2))  # on time, 1 h
    o.submit("a2", YUEYANG, T0 + timedelta(minutes=10), 4, A)
    o.handle("a2", *path, ("RESOLVE", 3), ("VERIFY", 3.5))  # on time, 3 h
    o.submit("a3", YUEYANG, T0 + timedelta(minutes=20), 4, A)
    o.handle("a3", *path, ("RESOLVE", 6))  # late, 6 h
    o.submit("a4", YUEYANG, T0 + timedelta(minutes=30), 4, A)
    o.handle("a4", *path)  # still open two days later: overdue
    o.submit("a5", YUEYANG, T0 + timedelta(minutes=40), 4, A)
    o.handle("a5", *path)
    o.escalate("a5", T0 + timedelta(hours=5))  # street → county, new deadline
    o.handle("a5", ("RESOLVE", 10))  # late, 10 h; the SLA alert is cancelled
    # department B, 莲湖区 (西安), SLA 48 h
    o.submit("b1", XIAN, T0 + timedelta(hours=1), 48, B)
    o.handle("b1", *path, ("RESOLVE", 2))  # on time, 2 h
    o.submit("b2", XIAN, T0 + timedelta(hours=2), 48, B)
    o.handle("b2", ("ACCEPT", 0.5), ("CANCEL", 1))
    o.submit("b3", XIAN, NOW - timedelta(hours=1), 48, B)  # today, within its SLA
    # a duplicate merged into a4 by 并单: not an order of its own in the views
    dup = o.submit("a4-dup", YUEYANG, T0 + timedelta(minutes=35), 4, A)
    o.insert("reports", reports.REPORT_COLUMNS, [reports.report_row(dup, "a4")])
    o.flush()
    return o


MEASURES = (
    "orders", "open", "overdue", "closed", "cancelled", "resolved", "on_time_orders",
    "on_time_rate", "median_resolution_h", "p90_resolution_h", "escalated", "escalations_total",
)  # fmt: skip


def _by(client: Client, db: str, view: str, key: str) -> dict[str, dict[str, Any]]:
    result = client.query(f"SELECT {key}, {', '.join(MEASURES)} FROM {db}.{view}")
    return {str(r[0]): dict(zip(MEASURES, r[1:], strict=True)) for r in result.result_rows}


# by hand: A resolved in 1, 3, 6, 10 h (on time: 1 and 3); median = (3 + 6) / 2 = 4.5;
# p90 (linear, inclusive) = 6 + 0.7 · (10 − 6) = 8.8. B resolved b1 in 2 h.
EXPECTED_A = {
    "orders": 5, "open": 4, "overdue": 1, "closed": 1, "cancelled": 0, "resolved": 4,
    "on_time_orders": 2, "on_time_rate": 0.5, "median_resolution_h": 4.5,
    "p90_resolution_h": 8.8, "escalated": 1, "escalations_total": 1,
}  # fmt: skip
EXPECTED_B = {
    "orders": 3, "open": 2, "overdue": 0, "closed": 0, "cancelled": 1, "resolved": 1,
    "on_time_orders": 1, "on_time_rate": 1.0, "median_resolution_h": 2.0,
    "p90_resolution_h": 2.0, "escalated": 0, "escalations_total": 0,
}  # fmt: skip


def _close(got: dict[str, Any], want: dict[str, Any]) -> None:
    assert got.keys() == want.keys()
    for name, value in want.items():
        assert got[name] == pytest.approx(value, abs=1e-9), name


def test_per_department(db: tuple[Client, str]) -> None:
    client, name = db
    _scenario(client, name)
    rows = _by(client, name, "work_order_by_department", "department")
    assert rows.keys() == {A, B}
    _close(rows[A], EXPECTED_A)
    _close(rows[B], EXPECTED_B)


def test_per_county_and_category(db: tuple[Client, str]) -> None:
    client, name = db
    _scenario(client, name)
    counties = _by(client, name, "work_order_by_county", "county_code")
    assert counties.keys() == {"430602000000", "610102000000"}
    _close(counties["430602000000"], EXPECTED_A)
    _close(counties["610102000000"], EXPECTED_B)
    categories = _by(client, name, "work_order_by_category", "category_code")
    assert categories.keys() == {"P0101"}  # every order is the example's 井盖 report
    assert categories["P0101"]["orders"] == 8
    assert categories["P0101"]["resolved"] == 5
    assert categories["P0101"]["on_time_rate"] == pytest.approx(3 / 5)
    # all resolution times 1, 2, 3, 6, 10: median 3, p90 = 6 + 0.6 · 4 = 8.4
    assert categories["P0101"]["median_resolution_h"] == pytest.approx(3.0)
    assert categories["P0101"]["p90_resolution_h"] == pytest.approx(8.4)


def test_per_day(db: tuple[Client, str]) -> None:
    client, name = db
    _scenario(client, name)
    result = client.query(
        f"SELECT day, department, orders, open, overdue, resolved, on_time_rate "
        f"FROM {name}.work_order_daily ORDER BY day, department"
    )
    assert [tuple(r) for r in result.result_rows] == [
        (DAY, B, 2, 1, 0, 1, 1.0),  # 城… sorts before 市… (code points)
        (DAY, A, 5, 4, 1, 4, 0.5),
        ((NOW - timedelta(hours=1)).date(), B, 1, 1, 0, 0, None),
    ]


def test_latest_state_and_sla_alert(db: tuple[Client, str]) -> None:
    client, name = db
    orders = _scenario(client, name)
    states = dict(
        client.query(f"SELECT report_id, state FROM {name}.work_orders FINAL").result_rows
    )
    assert states == {rid: s["state"] for rid, s in orders.states.items()}
    a5 = client.query(
        f"SELECT level, escalations, on_time, first_deadline < deadline "
        f"FROM {name}.work_orders FINAL WHERE report_id = 'a5'"
    ).result_rows
    assert a5 == [("county", 1, False, True)]
    sla = client.query(
        f"SELECT root_id, msg_type, status, level, length(messages) FROM {name}.alerts FINAL "
        f"WHERE source = 'sla'"
    ).result_rows
    assert sla == [(workorders.alert_root("a5"), "Cancel", "cancelled", "yellow", 2)]
