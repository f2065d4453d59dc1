"""gov.analysis_settings: what the worker publishes is what the migration creates for the
defaults, quoted safely, and renders for a cluster like the migrations."""

from __future__ import annotations

from typing import Any

import pytest

from pipelines import analysis, clickhouse
from pipelines.settings import Settings

pytestmark = pytest.mark.unit

#: the newest migration that creates the view (0013 did with the view settings; 0016 adds the
#: 督办 thresholds)
MIGRATION = clickhouse.MIGRATIONS_DIR / "0016_supervision_settings.sql"


def test_the_migration_creates_the_view_the_defaults_publish() -> None:
    text = MIGRATION.read_text(encoding="utf-8")
    for statement in analysis.statements("dbx", Settings.model_construct()):
        assert statement.replace("dbx.", "{database}.") + ";" in text


def test_the_supervision_thresholds_are_published_with_their_defaults() -> None:
    create, _, comments = analysis.statements("gov", Settings.model_construct())
    for value, name in (
        ("toFloat64(24.0)", "supervision_no_response_hours"),
        ("toFloat64(3.0)", "supervision_no_progress_days"),
        ("toUInt32(2)", "supervision_dissatisfied_in_a_row"),
        ("toUInt32(3)", "supervision_problem_after"),
    ):
        assert f"{value} AS {name}" in create
        assert f"COMMENT COLUMN {name} 'GOVSTREAM_{name.upper()}: " in comments


def test_every_published_setting_is_a_setting_with_a_comment() -> None:
    for name, kind in analysis.PUBLISHED:
        assert name in Settings.model_fields and kind in ("UInt32", "Float64")
        assert analysis.column_comment(name).startswith(f"GOVSTREAM_{name.upper()}: ")


def test_values_and_quotes() -> None:
    settings = Settings.model_construct(hotspot_min_ratio=1.5, monthly_top_n=3)
    create, _, comments = analysis.statements("gov", settings)
    assert (
        "toFloat64(1.5) AS hotspot_min_ratio" in create and "toUInt32(3) AS monthly_top_n" in create
    )
    assert "window\\'s reports" in comments  # a quote inside a comment is escaped
    with pytest.raises(clickhouse.MigrationError):
        analysis.statements("gov; DROP TABLE x", settings)


def test_publish_runs_on_every_replica_of_a_cluster() -> None:
    sent: list[str] = []

    class Client:
        def command(self, sql: str) -> Any:
            sent.append(sql)

    settings = Settings.model_construct(clickhouse_cluster="gov_cluster")
    analysis.publish(Client(), "gov", settings)  # type: ignore[arg-type]
    assert len(sent) == 3
    assert all(" ON CLUSTER 'gov_cluster'" in sql for sql in sent)
    sent.clear()
    analysis.publish(Client(), "gov", Settings.model_construct(clickhouse_cluster=""))  # type: ignore[arg-type]
    assert sent and not any("ON CLUSTER" in sql for sql in sent)
