"""Migrations rendered for a replicated ClickHouse cluster (issue 16, item 7).

The rendering is pure text; ClickHouse's own parser (chDB's ``formatQuery``) checks that every
rendered statement is valid SQL, since no cluster with Keeper runs on the development machines.
"""

from __future__ import annotations

import re

import chdb
import pytest

from pipelines import clickhouse
from pipelines.clickhouse import MigrationError, render_for_cluster

pytestmark = pytest.mark.unit

CLUSTER = "govstream"


def all_statements(cluster: str) -> list[str]:
    return [s for m in clickhouse.load_migrations() for s in m.statements("gov", cluster)]


def sql_literal(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def parsed(statement: str) -> str:
    """ClickHouse's canonical form of ``statement`` (raises when it does not parse)."""
    return chdb.query(f"SELECT formatQuery({sql_literal(statement)})", "TSVRaw").bytes().decode()


def test_without_a_cluster_the_statements_are_the_files_as_written() -> None:
    for migration in clickhouse.load_migrations():
        assert migration.statements("gov") == migration.statements("gov", "")
        for statement in migration.statements("gov"):
            assert "ON CLUSTER" not in statement
            assert "Replicated" not in statement


def test_every_migration_renders_and_clickhouse_parses_it() -> None:
    for statement in all_statements(CLUSTER):
        assert parsed(statement)  # formatQuery raises on a syntax error


def test_every_ddl_runs_on_the_cluster_and_data_statements_run_once() -> None:
    ddl = data = 0
    for statement in all_statements(CLUSTER):
        canonical = parsed(statement)
        if canonical.startswith(("INSERT", "SELECT", "WITH")):
            data += 1
            assert "ON CLUSTER" not in canonical
        else:
            ddl += 1
            assert f"ON CLUSTER {CLUSTER}" in canonical, canonical[:120]
    assert ddl > 100 and data >= 1


def test_every_table_is_replicated_with_its_version_column_and_dedup_window() -> None:
    tables = [s for s in all_statements(CLUSTER) if re.search(r"\bENGINE\s*=", s)]
    assert len(tables) >= 9
    for statement in tables:
        engine = re.search(r"ENGINE = (\w+)\(([^)]*)\)", statement)
        assert engine, statement[-300:]
        assert engine[1].startswith("Replicated") and engine[1].endswith("MergeTree")
        assert engine[2].startswith("'/clickhouse/tables/{uuid}/{shard}', '{replica}'")
        assert "non_replicated_deduplication_window" not in statement
    reports = next(s for s in tables if "gov.reports " in s)
    engine = (
        "ReplicatedReplacingMergeTree('/clickhouse/tables/{uuid}/{shard}', '{replica}', version)"
    )
    assert engine in reports
    assert "SETTINGS replicated_deduplication_window = 10000" in reports


def test_comments_before_a_statement_and_inside_literals_are_left_alone() -> None:
    statement = "-- why\n/* more */ ALTER TABLE gov.x MODIFY COMMENT 'ENGINE = MergeTree'"
    assert render_for_cluster(statement, "c") == (
        "-- why\n/* more */ ALTER TABLE gov.x ON CLUSTER 'c' MODIFY COMMENT 'ENGINE = MergeTree'"
    )
    assert render_for_cluster("CREATE OR REPLACE VIEW gov.v AS SELECT 1", "c") == (
        "CREATE OR REPLACE VIEW gov.v ON CLUSTER 'c' AS SELECT 1"
    )
    assert render_for_cluster(
        "CREATE TABLE t (s String COMMENT 'a ''x'' ENGINE = MergeTree')"
        " ENGINE = MergeTree ORDER BY s",
        "c",
    ) == (
        "CREATE TABLE t ON CLUSTER 'c' (s String COMMENT 'a ''x'' ENGINE = MergeTree')"
        " ENGINE = ReplicatedMergeTree('/clickhouse/tables/{uuid}/{shard}', '{replica}') ORDER BY s"
    )


def test_a_statement_it_cannot_render_is_refused_not_run_on_one_replica() -> None:
    with pytest.raises(MigrationError, match="cannot render for cluster 'c'"):
        render_for_cluster("GRANT SELECT ON gov.reports TO analyst", "c")
    with pytest.raises(MigrationError, match="not a plain identifier"):
        render_for_cluster("ALTER TABLE gov.x DROP COLUMN y", "c; DROP TABLE gov.x")


class Recorder:
    """The commands ``migrate`` sends (a stand-in for the client: pure logic only)."""

    def __init__(self) -> None:
        self.commands: list[str] = []

    def command(self, sql: str) -> None:
        self.commands.append(sql)

    def query(self, sql: str) -> object:
        return type("Result", (), {"result_rows": []})()

    def insert(self, *args: object, **kwargs: object) -> None:
        pass


def test_migrate_renders_its_own_database_and_history_table_for_the_cluster() -> None:
    client = Recorder()
    clickhouse.migrate(client, "gov", cluster=CLUSTER)  # type: ignore[arg-type]
    assert client.commands[0] == f"CREATE DATABASE IF NOT EXISTS gov ON CLUSTER '{CLUSTER}'"
    assert "gov.schema_migrations ON CLUSTER" in client.commands[1]
    assert "ReplicatedReplacingMergeTree(" in client.commands[1]
    for command in client.commands:
        assert "ON CLUSTER" in command or parsed(command).startswith("INSERT"), command[:200]


class Applied(Recorder):
    """A server on which every migration is applied."""

    def query(self, sql: str) -> object:
        rows = [(m.version, m.checksum) for m in clickhouse.load_migrations()]
        return type("Result", (), {"result_rows": rows})()


def test_migrate_sends_no_ddl_when_everything_is_applied() -> None:
    """A worker starting while one replica is down must not wait on ON CLUSTER DDL."""
    client = Applied()
    assert clickhouse.migrate(client, "gov", cluster=CLUSTER) == []  # type: ignore[arg-type]
    assert client.commands == []


def test_ddl_it_cannot_render_safely_is_refused() -> None:
    """RENAME takes ON CLUSTER after its list; DDL that copies rows would copy them on every
    replica; an engine argument with parentheses would be split from its engine."""
    for statement in (
        "RENAME TABLE gov.a TO gov.b",
        "CREATE TABLE gov.t ENGINE = MergeTree ORDER BY x AS SELECT 1 AS x",
        "CREATE MATERIALIZED VIEW gov.m ENGINE = MergeTree ORDER BY x POPULATE AS SELECT 1 AS x",
        "CREATE TABLE gov.t (x UInt64) ENGINE = ReplacingMergeTree(toUInt64(x)) ORDER BY x",
    ):
        with pytest.raises(MigrationError):
            render_for_cluster(statement, CLUSTER)
