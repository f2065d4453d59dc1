"""ClickHouse access: client factory and versioned DDL migrations (`govstream db migrate`).

Migrations are the files ``schemas/clickhouse/NNNN_<name>.sql`` (installed inside the package as
``pipelines.schemas``, see :mod:`pipelines.resources`), applied in order and
recorded in ``<database>.schema_migrations`` with a checksum; applying them again does
nothing, and an applied migration whose file changed afterwards is refused. The SQL refers
to the database as ``{database}`` so tests can give every test its own database.

With a cluster configured (setting ``clickhouse_cluster``, the production twin's two replicas)
every statement is rendered for it by :func:`render_for_cluster`: DDL runs ``ON CLUSTER`` and
``*MergeTree`` engines become their ``Replicated*MergeTree`` twins, so each replica holds every
row and the files stay written for one server (the embedded path is unchanged).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import clickhouse_connect
from clickhouse_connect.driver.client import Client

from pipelines.chsql import split_statements
from pipelines.errors import GovstreamError
from pipelines.resources import schemas_dir
from pipelines.settings import Settings

#: ``schemas/clickhouse`` as installed (checkout or wheel)
MIGRATIONS_DIR = schemas_dir("clickhouse")
_NAME_RE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_IDENT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class MigrationError(GovstreamError):
    """A migration file is malformed, failed, or changed after it was applied."""


def get_client(settings: Settings, *, analyst: bool = False, **overrides: Any) -> Client:
    """A clickhouse-connect client for the configured server (writer or analyst user)."""
    return clickhouse_connect.get_client(**settings.clickhouse_kwargs(analyst=analyst, **overrides))


def check_identifier(name: str) -> str:
    """A database or table name we interpolate into DDL must be a plain identifier."""
    if not _IDENT_RE.match(name):
        raise MigrationError(f"{name!r} is not a plain identifier")
    return name


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()[:16]

    def statements(self, database: str, cluster: str = "") -> list[str]:
        """The migration's statements for ``database``, rendered for ``cluster`` when set."""
        text = self.sql.replace("{database}", check_identifier(database))
        statements = [s.decode() for s in split_statements(text.encode())]
        return [render_for_cluster(s, cluster) for s in statements] if cluster else statements


#: ZooKeeper/Keeper path and replica name of a replicated table: ClickHouse's documented
#: defaults (``default_replica_path``, ``default_replica_name``); ``{uuid}`` is the table's
#: UUID, which ``ON CLUSTER`` gives every replica alike, ``{shard}``/``{replica}`` are each
#: server's macros (deploy/clickhouse/cluster/macros-*.xml).
REPLICA_PATH = "/clickhouse/tables/{uuid}/{shard}"
REPLICA_NAME = "{replica}"

_LEADING = r"^(?P<lead>(?:\s+|--[^\n]*(?:\n|$)|/\*.*?\*/)*)"
_NAME = r"(?:`[^`]+`|[A-Za-z_][A-Za-z0-9_]*)(?:\.(?:`[^`]+`|[A-Za-z_][A-Za-z0-9_]*))?"
#: DDL kinds that take ``ON CLUSTER`` right after the object's name
_DDL_RE = re.compile(
    _LEADING + r"(?P<head>(?:CREATE\s+(?:OR\s+REPLACE\s+)?"
    r"(?:TABLE|VIEW|MATERIALIZED\s+VIEW|DATABASE|DICTIONARY)(?:\s+IF\s+NOT\s+EXISTS)?"
    r"|ALTER\s+TABLE|DROP\s+(?:TABLE|VIEW|DICTIONARY|DATABASE)(?:\s+IF\s+EXISTS)?"
    r"|TRUNCATE\s+TABLE(?:\s+IF\s+EXISTS)?)\s+" + _NAME + r")",
    re.IGNORECASE | re.DOTALL,
)
#: statements that change rows, not schema: a replicated table copies them to the other
#: replicas by itself, so they run once, as written
_DATA_RE = re.compile(_LEADING + r"(?:INSERT|SELECT|WITH)\b", re.IGNORECASE | re.DOTALL)
#: a string literal or comment (left as written), or an engine clause (rendered)
_ENGINE_RE = re.compile(
    r"(?P<skip>'(?:[^'\\]|\\.|'')*'|--[^\n]*|/\*.*?\*/)"
    r"|\bENGINE\s*=\s*(?P<kind>(?:Replacing|Summing|Aggregating|Collapsing|VersionedCollapsing"
    r"|Graphite)?MergeTree)\b(?:\s*\((?P<args>[^()]*)\))?",
    re.IGNORECASE | re.DOTALL,
)

_DEDUP_RE = re.compile(r"\bnon_replicated_deduplication_window\b")
#: DDL that also copies rows (CREATE TABLE … AS SELECT, a MATERIALIZED VIEW … POPULATE): refused
_COPIES_ROWS = re.compile(
    r"^\s*CREATE\s+(?:OR\s+REPLACE\s+)?TABLE\b[^;]*?\bAS\s+(?:SELECT|WITH)\b|\bPOPULATE\b",
    re.IGNORECASE | re.DOTALL,
)


def render_for_cluster(statement: str, cluster: str) -> str:
    """``statement`` (one statement of a migration) as it runs on ``cluster``.

    - DDL (CREATE/ALTER/DROP/TRUNCATE of tables, views, databases, dictionaries) gains
      ``ON CLUSTER '<cluster>'`` after the object's name, so every replica applies it (ClickHouse
      docs, "Distributed DDL Queries (ON CLUSTER Clause)"); an ALTER of a replicated table is
      then run once per shard by ClickHouse itself.
    - ``ENGINE = XMergeTree(args)`` becomes ``ReplicatedXMergeTree('<REPLICA_PATH>',
      '<REPLICA_NAME>', args)`` (ClickHouse docs, "Data Replication").
    - ``non_replicated_deduplication_window`` becomes ``replicated_deduplication_window``: the
      insert deduplication the sink's tokens rely on keeps the same window on a replica.
    - INSERT/SELECT run as written: replication copies their rows.

    Raises :class:`MigrationError` for any other statement (RENAME, DDL that copies rows:
    CREATE TABLE … AS SELECT, POPULATE) and for engine arguments with parentheses, so a
    migration the rendering does not understand fails in the unit tests rather than
    half-applied on a cluster.
    """
    cluster = check_identifier(cluster)
    if _DATA_RE.match(statement):
        return statement
    match = _DDL_RE.match(statement)
    if match and _COPIES_ROWS.search(statement):
        match = None  # every replica would run the SELECT into a replicated table
    if not match:
        first = " ".join(statement.split())[:60]
        raise MigrationError(f"cannot render for cluster {cluster!r}: {first!r}")
    rendered = match["lead"] + match["head"] + f" ON CLUSTER '{cluster}'" + statement[match.end() :]

    def replicated(engine: re.Match[str]) -> str:
        if engine["skip"]:
            return engine["skip"]
        if rendered[engine.end() :].lstrip().startswith("("):  # arguments with parentheses
            raise MigrationError(f"cannot render engine arguments of {engine.group(0)!r}")
        args = [f"'{REPLICA_PATH}'", f"'{REPLICA_NAME}'"]
        if engine["args"] and engine["args"].strip():
            args.append(engine["args"].strip())
        return f"ENGINE = Replicated{engine['kind']}({', '.join(args)})"

    rendered = _ENGINE_RE.sub(replicated, rendered)
    return _DEDUP_RE.sub("replicated_deduplication_window", rendered)


def load_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """The migrations in ``directory``, ordered by version.

    Raises :class:`MigrationError` for a misnamed file, a duplicate version, or a directory that
    holds no migration at all (a missing directory included): an install without its migrations
    must fail loudly, not report "up to date" on an empty database (issue 16).
    """
    migrations = []
    for path in sorted(directory.glob("*.sql")):
        match = _NAME_RE.match(path.name)
        if not match:
            raise MigrationError(f"{path.name}: migration files are named NNNN_name.sql")
        migrations.append(Migration(int(match[1]), match[2], path.read_text(encoding="utf-8")))
    if not migrations:
        raise MigrationError(
            f"no migration files (NNNN_name.sql) in {directory}: the install lacks "
            "pipelines.schemas; reinstall govstream"
        )
    versions = [m.version for m in migrations]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"duplicate migration versions in {directory}")
    return migrations


def applied_migrations(client: Client, database: str) -> dict[int, str]:
    """version → checksum of what is recorded as applied."""
    db = check_identifier(database)
    rows = client.query(f"SELECT version, checksum FROM {db}.schema_migrations FINAL").result_rows
    return {int(version): str(checksum) for version, checksum in rows}


def migrate(
    client: Client,
    database: str,
    migrations: list[Migration] | None = None,
    *,
    cluster: str = "",
) -> list[Migration]:
    """Apply the migrations not yet applied to ``database``; returns the ones applied now.

    ``cluster`` (setting ``clickhouse_cluster``): render every statement for that cluster
    (:func:`render_for_cluster`), the migration history included; empty: one server. When
    every migration is applied already nothing is sent, so a worker starts while one replica
    is down (an ``ON CLUSTER`` statement waits for every replica, 180 s by default).
    """
    db = check_identifier(database)
    migrations = load_migrations() if migrations is None else migrations
    try:  # every migration applied already: no DDL at all (ON CLUSTER waits for every replica)
        done = applied_migrations(client, db)
    except Exception:
        done = {}
    if done and all(done.get(m.version) == m.checksum for m in migrations):
        return []

    def ddl(statement: str) -> str:
        return render_for_cluster(statement, cluster) if cluster else statement

    client.command(ddl(f"CREATE DATABASE IF NOT EXISTS {db}"))
    client.command(
        ddl(
            f"CREATE TABLE IF NOT EXISTS {db}.schema_migrations ("
            " version UInt32, name String, checksum String,"
            " applied_at DateTime64(3, 'UTC') DEFAULT now64(3))"
            " ENGINE = ReplacingMergeTree ORDER BY version"
        )
    )
    done = applied_migrations(client, db)
    applied = []
    for migration in migrations:
        recorded = done.get(migration.version)
        if recorded is not None:
            if recorded != migration.checksum:
                raise MigrationError(
                    f"migration {migration.version:04d}_{migration.name} changed after it was "
                    "applied; add a new migration instead of editing an applied one"
                )
            continue
        for statement in migration.statements(db, cluster):
            try:
                client.command(statement)
            except Exception as exc:
                raise MigrationError(
                    f"migration {migration.version:04d}_{migration.name} failed: {exc}"
                ) from exc
        client.insert(
            f"{db}.schema_migrations",
            [[migration.version, migration.name, migration.checksum]],
            column_names=["version", "name", "checksum"],
        )
        applied.append(migration)
    return applied


@contextmanager
def temporary_database(client: Client, name: str) -> Iterator[str]:
    """Create a database for a test and drop it afterwards (clickhouse-connect's test idiom)."""
    db = check_identifier(name)
    client.command(f"CREATE DATABASE IF NOT EXISTS {db}")
    try:
        yield db
    finally:
        client.command(f"DROP DATABASE IF EXISTS {db}")
