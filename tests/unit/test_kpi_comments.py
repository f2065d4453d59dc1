"""The KPI views' rate columns say in their COMMENT the formula the view computes (issue 19):
0012 said 'resolved / received' for a rate computed as solved / rated_orders; an analyst reads
the comment, not the SQL."""

from __future__ import annotations

import re

import pytest

from pipelines import clickhouse

pytestmark = pytest.mark.unit

RATE = re.compile(r"if\((\w+) = 0, NULL, (\w+) / (\w+)\) AS (\w+_rate)")
COMMENT = re.compile(r"COMMENT COLUMN (\w+) '((?:[^'\\]|\\.)*)'")


def latest_comments() -> dict[tuple[str, str], str]:
    """(view, column) -> its comment after every migration, the last one winning."""
    out: dict[tuple[str, str], str] = {}
    for migration in clickhouse.load_migrations():
        for statement in migration.statements("gov"):
            table = re.search(r"ALTER TABLE gov\.(\w+)", statement)
            if table:
                for column, text in COMMENT.findall(statement):
                    out[(table[1], column)] = text
    return out


def test_every_kpi_rate_comment_states_the_views_formula() -> None:
    formulas: dict[str, tuple[str, str]] = {}
    for migration in clickhouse.load_migrations():  # the last migration defining a rate wins
        if not re.search(r"VIEW\s+(?:IF NOT EXISTS\s+)?\{database\}\.kpi_stats\b", migration.sql):
            continue  # another family of views (work_order_by_*: on_time_rate)
        for den, num, den2, name in RATE.findall(migration.sql):
            if den == den2:
                formulas[name] = (num, den)
    assert {"on_time_sign_rate", "response_rate", "resolution_rate", "satisfaction_rate",
            "on_time_close_rate", "reopen_rate"} <= set(formulas)  # fmt: skip
    comments = latest_comments()
    views = {view for view, column in comments if view.startswith("kpi_by_")}
    assert len(views) == 5
    for view in sorted(views | {"kpi_stats"}):
        for rate, (num, den) in formulas.items():
            text = comments.get((view, rate), "")
            assert f"{num} / {den}" in text, (view, rate, text)
