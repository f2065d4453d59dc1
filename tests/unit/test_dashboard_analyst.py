"""The analyst page's figures in summary.json (issue 19, item 6): read at most every
ANALYST_REFRESH_S per ClickHouse and database, JSON-ready, and an error there never hides the
work-order counts."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from pipelines import dashboard
from pipelines.settings import Settings

pytestmark = pytest.mark.unit


def test_analyst_figures_are_read_again_only_after_the_refresh_interval(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reads: list[str] = []

    def figures(settings: Settings) -> dict[str, Any]:
        reads.append(settings.clickhouse_database)
        return {"read": len(reads)}

    monkeypatch.setattr(dashboard, "analyst_figures", figures)
    monkeypatch.setattr(dashboard, "_analyst_cache", {})
    one = Settings(clickhouse_database="one_db")
    two = Settings(clickhouse_database="two_db")
    assert dashboard.cached_analyst_figures(one, now=100.0) == {"read": 1}
    assert dashboard.cached_analyst_figures(one, now=109.9) == {"read": 1}  # cached
    assert dashboard.cached_analyst_figures(two, now=109.9) == {"read": 2}  # another database
    assert dashboard.cached_analyst_figures(one, now=110.0) == {"read": 3}  # 10 s later
    assert reads == ["one_db", "two_db", "one_db"]


def test_hotspot_values_become_json() -> None:
    assert dashboard._jsonable(date(2026, 3, 2)) == "2026-03-02"
    assert dashboard._jsonable(float("nan")) is None
    assert dashboard._jsonable(2.5) == 2.5 and dashboard._jsonable(None) is None
