"""`govstream stack up | down | status`."""

from __future__ import annotations

import typer

from pipelines import workers
from pipelines.output import console, print_json, print_table
from pipelines.settings import get_settings
from pipelines.stack import control

app = typer.Typer(help="Start, stop and inspect the embedded stack (Kafka, registry, ClickHouse).")

COLUMNS = ["name", "state", "pid", "address", "healthy", "detail"]


def _show(statuses: list[control.ServiceStatus], as_json: bool, title: str) -> None:
    if as_json:
        print_json({"services": [s.as_dict() for s in statuses]})
    else:
        rows = [{**s.as_dict(), "detail": s.detail[:60]} for s in statuses]
        print_table(rows, COLUMNS, title=title)


@app.command()
def up(json_: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Start the embedded services and wait until each one answers."""
    settings = get_settings()
    started, statuses = control.up(settings)
    title = (
        f"stack started (home {settings.home})"
        if started
        else f"stack already running (home {settings.home}); nothing started"
    )
    _show(statuses, json_, title)
    if not all(s.healthy for s in statuses):
        raise typer.Exit(1)


@app.command()
def down() -> None:
    """Stop the services `stack up` started in this home."""
    settings = get_settings()
    if control.down(settings):
        console.print(f"stack stopped (home {settings.home})")
    else:
        console.print(f"no stack running (home {settings.home})")


WORKER_COLUMNS = ["pid", "app_id", "address", "state", "detail"]


@app.command()
def status(json_: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Each service with its pid, address and health, and each worker started in this home
    with its state (healthy, unhealthy, not answering, dead; see pipelines/workers.py); exit 1
    when a service or a worker is not healthy."""
    settings = get_settings()
    statuses = control.status(settings)
    running = workers.statuses(settings)
    if json_:
        print_json(
            {
                "services": [s.as_dict() for s in statuses],
                "workers": [w.as_dict() for w in running],
            }
        )
    else:
        _show(statuses, False, "govstream stack")
        if running:
            rows = [{**w.as_dict(), "detail": w.detail[:70]} for w in running]
            print_table(rows, WORKER_COLUMNS, title="workers")
        else:
            console.print(f"no worker started in {settings.home}")
    if not all(s.healthy for s in statuses) or not all(w.healthy for w in running):
        raise typer.Exit(1)
