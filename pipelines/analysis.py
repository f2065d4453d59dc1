"""The settings the analyst views of repeats, hotspots and 每月一题 depend on, and the 督办
thresholds the worker warns with, in ClickHouse.

A view cannot read the environment, so the worker publishes the settings it runs with as the
one-row view ``gov.analysis_settings`` (migration 0013 creates it with the defaults, migration
0016 adds the 督办 thresholds; ``govstream worker`` replaces it after migrating).
``gov.hotspot_windows``, ``gov.hotspots`` and ``gov.monthly_top_issues`` read their window,
baseline, thresholds and N from it; the ``supervision_*`` columns say with which thresholds the
督办 warnings in gov.alerts / gov.work_orders.warnings were raised (hours, days, counts). An
analyst reads there what the figures were computed with. Every column has a COMMENT: the
variable and the setting's description.
"""

from __future__ import annotations

from clickhouse_connect.driver.client import Client

from pipelines.clickhouse import check_identifier, render_for_cluster
from pipelines.settings import Settings

#: the settings published, each with its ClickHouse type
PUBLISHED: tuple[tuple[str, str], ...] = (
    ("repeat_window_days", "UInt32"),
    ("hotspot_window_days", "UInt32"),
    ("hotspot_baseline_windows", "UInt32"),
    ("hotspot_min_reports", "UInt32"),
    ("hotspot_min_ratio", "Float64"),
    ("monthly_top_n", "UInt32"),
    ("supervision_no_response_hours", "Float64"),
    ("supervision_no_progress_days", "Float64"),
    ("supervision_dissatisfied_in_a_row", "UInt32"),
    ("supervision_problem_after", "UInt32"),
)

VIEW = "analysis_settings"
VIEW_COMMENT = (
    "The settings the worker runs with that the repeat, hotspot and monthly top-issue views "
    "depend on, and its supervision (督办) thresholds (one row; govstream worker publishes it)"
)


def _quoted(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def column_comment(name: str) -> str:
    """GOVSTREAM_<NAME>: the setting's description."""
    description = Settings.model_fields[name].description or ""
    return f"GOVSTREAM_{name.upper()}: {description}"


def statements(database: str, settings: Settings) -> list[str]:
    """The DDL that makes ``database.analysis_settings`` show ``settings``: the view, its
    comment and one comment per column (a replaced view keeps no comment)."""
    db = check_identifier(database)
    values = ", ".join(
        f"to{kind}({getattr(settings, name)!r}) AS {name}" for name, kind in PUBLISHED
    )
    comments = ", ".join(
        f"COMMENT COLUMN {name} {_quoted(column_comment(name))}" for name, _ in PUBLISHED
    )
    return [
        f"CREATE OR REPLACE VIEW {db}.{VIEW} AS SELECT {values}",
        f"ALTER TABLE {db}.{VIEW} MODIFY COMMENT {_quoted(VIEW_COMMENT)}",
        f"ALTER TABLE {db}.{VIEW} {comments}",
    ]


def published(client: Client, database: str) -> dict[str, object] | None:
    """The values ``database.analysis_settings`` shows now, or None when it cannot be read."""
    db = check_identifier(database)
    try:
        result = client.query(f"SELECT * FROM {db}.{VIEW}")
    except Exception:  # no view yet, or another shape: publish
        return None
    rows = result.result_rows
    return dict(zip(result.column_names, rows[0], strict=True)) if len(rows) == 1 else None


def publish(client: Client, database: str, settings: Settings) -> bool:
    """Replace ``database.analysis_settings`` with the values of ``settings`` (on every
    replica of ``settings.clickhouse_cluster`` when set, as the migrations run); returns
    whether it did. Nothing is sent when the view already shows these values (and has its
    comment): a worker starting while one replica is down must not wait for ON CLUSTER DDL."""
    current = published(client, database)
    wanted = {name: getattr(settings, name) for name, _kind in PUBLISHED}
    db = check_identifier(database)
    if current is not None and all(current.get(k) == v for k, v in wanted.items()):
        comment = client.command(
            "SELECT comment FROM system.tables WHERE database = {db:String} AND name = {v:String}",
            parameters={"db": db, "v": VIEW},
        )
        if comment == VIEW_COMMENT:
            return False
    cluster = settings.clickhouse_cluster
    for statement in statements(database, settings):
        client.command(render_for_cluster(statement, cluster) if cluster else statement)
    return True
