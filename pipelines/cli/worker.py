"""`govstream worker`: run the Faust worker (all agents) against the configured services."""

from __future__ import annotations

import typer
from clickhouse_connect.driver.exceptions import ClickHouseError

from pipelines import analysis, clickhouse, probes, workers
from pipelines.errors import StackError
from pipelines.settings import get_settings


def worker(
    loglevel: str = typer.Option("info", "--loglevel", "-l", help="debug, info, warning, error."),
    migrate: bool = typer.Option(True, help="Apply ClickHouse migrations before starting."),
) -> None:
    """Run a worker: consume report, form-submission and alert into ClickHouse."""
    if loglevel.lower() not in ("debug", "info", "warning", "error", "critical"):
        raise typer.BadParameter(f"unknown log level {loglevel!r}", param_hint="--loglevel")
    settings = get_settings()
    # one line instead of Faust's tracebacks (issue 17, item 3): the web port, then the services
    workers.check_web_port(settings)
    probes.require(["kafka", "registry", "clickhouse"], settings)
    if migrate:
        try:
            client = clickhouse.get_client(settings)
            clickhouse.migrate(
                client, settings.clickhouse_database, cluster=settings.clickhouse_cluster
            )
            # the thresholds of the repeat, hotspot and 每月一题 views: this worker's settings
            analysis.publish(client, settings.clickhouse_database, settings)
        except ClickHouseError as exc:
            raise StackError(
                f"cannot migrate ClickHouse: {' '.join(str(exc).split())[:300]}"
            ) from exc
    from pipelines.topics import ensure_topics

    ensure_topics(
        settings,
        extra=["report-routed"],
        replication_factor=settings.topic_replication_factor,
    )

    workers.register(settings)  # <home>/workers/<pid>.json, for `govstream stack status`
    import faust

    from agents.worker import app

    faust.Worker(app, loglevel=loglevel.lower()).execute_from_commandline()
