"""The closed loop's figures as analysts read them (issue 19): the 三率 per department, the current
hotspots, 督办 warnings, hotspot alerts and repeat complaints, from the analyst views of
migrations 0011 and 0013 (gov.kpi_by_department, gov.hotspots, gov.repeat_complaints),
gov.work_orders and gov.alerts. The demo (:mod:`pipelines.reconcile`) compares them with the
simulator's manifest; the dashboard's analyst page (:mod:`pipelines.dashboard`) shows them.
Callers pass a client of the analyst user (``clickhouse.get_client(settings, analyst=True)``);
the database name travels as an ``Identifier`` query parameter. The module imports nothing of
the project, so the simulator computes its expected figures with the same definitions
(:data:`KPI_COUNTS`, :func:`rates`).

The 三率 per department are those of every order so far: the ``day`` rows of
gov.kpi_by_department summed (each order is in exactly one day), the rates taken from the sums
(README, "The closed loop": response_rate = responded / response_judged, resolution_rate =
solved / rated_orders, satisfaction_rate = satisfied / rated_orders; NULL when nothing is
judged).
"""

from __future__ import annotations

from datetime import date
from typing import Any

#: counts summed per department (gov.kpi_by_department's columns)
KPI_COUNTS = (
    "received",
    "response_judged",
    "responded",
    "rated_orders",
    "solved",
    "satisfied",
    "problem_orders",
)

DEPARTMENT_SQL = (
    "SELECT department, "
    + ", ".join(f"toUInt64(sum({c})) AS {c}" for c in KPI_COUNTS)
    + " FROM {db:Identifier}.kpi_by_department WHERE period = 'day' "
    "GROUP BY department ORDER BY received DESC, department"
)

HOTSPOT_SQL = (
    "SELECT grid_id, category_code, category_major, category_minor, city, county, "
    "township_code, township, village, window_start, window_end, "
    "reports, baseline_reports, baseline_mean, ratio, window_days, baseline_windows "
    "FROM {db:Identifier}.hotspots WHERE window_end = {day:Date} "
    "ORDER BY reports DESC, grid_id, category_code"
)
TODAY_SQL = "SELECT toString(today())"


def rates(counts: dict[str, Any]) -> dict[str, float | None]:
    """The 三率 of a department's summed counts (None when nothing is judged)."""

    def ratio(part: str, whole: str) -> float | None:
        return int(counts[part]) / int(counts[whole]) if int(counts[whole]) else None

    return {
        "response_rate": ratio("responded", "response_judged"),
        "resolution_rate": ratio("solved", "rated_orders"),
        "satisfaction_rate": ratio("satisfied", "rated_orders"),
    }


def department_rates(client: Any, database: str) -> dict[str, dict[str, Any]]:
    """Department → the summed counts of :data:`KPI_COUNTS` and the 三率, most orders first."""
    result = client.query(DEPARTMENT_SQL, parameters={"db": database})
    out: dict[str, dict[str, Any]] = {}
    for department, *values in result.result_rows:
        counts = {c: int(v) for c, v in zip(KPI_COUNTS, values, strict=True)}
        out[str(department)] = {**counts, **rates(counts)}
    return out


def today(client: Any) -> date:
    """The server's today (the date gov.hotspot_windows ends its windows with)."""
    return date.fromisoformat(str(client.query(TODAY_SQL).result_rows[0][0]))


def hotspots(client: Any, database: str, day: date | None = None) -> list[dict[str, Any]]:
    """The hotspots of the window ending ``day`` (default the server's today: the current
    hotspots), most reports first; each a gov.hotspots row as a dict."""
    when = day or today(client)
    result = client.query(HOTSPOT_SQL, parameters={"db": database, "day": when})
    names = result.column_names
    return [dict(zip(names, row, strict=True)) for row in result.result_rows]


def supervision(client: Any, database: str) -> dict[str, int]:
    """督办 conditions warned of → orders (gov.work_orders.warnings, each once per order)."""
    rows = client.query(
        "SELECT w, count() FROM {db:Identifier}.work_orders FINAL "
        "ARRAY JOIN warnings AS w GROUP BY w",
        parameters={"db": database},
    ).result_rows
    return {str(w): int(n) for w, n in rows}


def hotspot_alerts(client: Any, database: str) -> list[str]:
    """热点预警: the root ids of the hotspot alerts in gov.alerts (source hotspot), sorted."""
    rows = client.query(
        "SELECT root_id FROM {db:Identifier}.alerts FINAL WHERE source = 'hotspot' "
        "ORDER BY root_id",
        parameters={"db": database},
    ).result_rows
    return [str(r[0]) for r in rows]


def repeats(client: Any, database: str) -> dict[str, str]:
    """重复诉求: report id → the report it repeats (gov.repeat_complaints)."""
    rows = client.query(
        "SELECT report_id, repeat_of FROM {db:Identifier}.repeat_complaints",
        parameters={"db": database},
    ).result_rows
    return {str(r): str(first) for r, first in rows}
