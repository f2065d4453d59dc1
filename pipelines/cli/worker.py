"""`govstream worker`: run the Faust worker (all agents) against the configured services."""

from __future__ import annotations

import typer

from pipelines import clickhouse
from pipelines.settings import get_settings


def worker(
    loglevel: str = typer.Option("info", "--loglevel", "-l", help="debug, info, warning, error."),
    migrate: bool = typer.Option(True, help="Apply ClickHouse migrations before starting."),
) -> None:
    """Run a worker: consume report, form-submission and alert into ClickHouse."""
    if loglevel.lower() not in ("debug", "info", "warning", "error", "critical"):
        raise typer.BadParameter(f"unknown log level {loglevel!r}", param_hint="--loglevel")
    settings = get_settings()
    if migrate:
        clickhouse.migrate(clickhouse.get_client(settings), settings.clickhouse_database)
    from pipelines.topics import ensure_topics

    ensure_topics(settings, extra=["report-routed"])

    import faust

    from agents.app import app

    faust.Worker(app, loglevel=loglevel.lower()).execute_from_commandline()
