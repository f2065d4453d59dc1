"""`govstream db migrate | status`: the ClickHouse schema of the pipeline."""

from __future__ import annotations

import typer
from clickhouse_connect.driver.client import Client

from pipelines import clickhouse
from pipelines.errors import StackError
from pipelines.output import console, print_json, print_table
from pipelines.settings import Settings, get_settings

app = typer.Typer(help="ClickHouse schema: versioned migrations in schemas/clickhouse/.")


def _client() -> tuple[Settings, Client]:
    settings = get_settings()
    try:
        return settings, clickhouse.get_client(settings)
    except Exception as exc:
        raise StackError(f"ClickHouse at {settings.clickhouse_url} did not answer: {exc}") from exc


@app.command()
def migrate(json_: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Apply the migrations not yet applied (idempotent)."""
    settings, client = _client()
    applied = clickhouse.migrate(
        client, settings.clickhouse_database, cluster=settings.clickhouse_cluster
    )
    names = [f"{m.version:04d}_{m.name}" for m in applied]
    if json_:
        print_json({"database": settings.clickhouse_database, "applied": names})
    elif names:
        console.print(f"applied to {settings.clickhouse_database}: {', '.join(names)}")
    else:
        console.print(f"{settings.clickhouse_database} is up to date")


@app.command()
def status(json_: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Each migration and whether it is applied."""
    settings, client = _client()
    try:
        done = clickhouse.applied_migrations(client, settings.clickhouse_database)
    except Exception:
        done = {}
    rows = [
        {"version": f"{m.version:04d}", "name": m.name, "applied": m.version in done}
        for m in clickhouse.load_migrations()
    ]
    if json_:
        print_json({"database": settings.clickhouse_database, "migrations": rows})
    else:
        print_table(rows, ["version", "name", "applied"], title=settings.clickhouse_database)
