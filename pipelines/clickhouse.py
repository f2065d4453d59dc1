"""ClickHouse access: client factory and versioned DDL migrations (`govstream db migrate`).

Migrations are the files ``schemas/clickhouse/NNNN_<name>.sql`` (installed inside the package as
``pipelines.schemas``, see :mod:`pipelines.resources`), applied in order and
recorded in ``<database>.schema_migrations`` with a checksum; applying them again does
nothing, and an applied migration whose file changed afterwards is refused. The SQL refers
to the database as ``{database}`` so tests can give every test its own database.
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

    def statements(self, database: str) -> list[str]:
        text = self.sql.replace("{database}", check_identifier(database))
        return [s.decode() for s in split_statements(text.encode())]


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
    client: Client, database: str, migrations: list[Migration] | None = None
) -> list[Migration]:
    """Apply the migrations not yet applied to ``database``; returns the ones applied now."""
    db = check_identifier(database)
    migrations = load_migrations() if migrations is None else migrations
    client.command(f"CREATE DATABASE IF NOT EXISTS {db}")
    client.command(
        f"CREATE TABLE IF NOT EXISTS {db}.schema_migrations ("
        " version UInt32, name String, checksum String,"
        " applied_at DateTime64(3, 'UTC') DEFAULT now64(3))"
        " ENGINE = ReplacingMergeTree ORDER BY version"
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
        for statement in migration.statements(db):
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
