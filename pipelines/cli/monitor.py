"""`govstream monitor`: lag, workers and a verdict on a web page that outlives the worker."""

from __future__ import annotations

import asyncio
import ipaddress
import sys

import typer

from pipelines import monitor as monitormod
from pipelines.settings import get_settings


def _check_bind(bind: str) -> str:
    if bind == "localhost":
        return "127.0.0.1"
    try:
        return str(ipaddress.ip_address(bind))
    except ValueError:
        raise typer.BadParameter(
            f"{bind!r} is not an IP address (e.g. 127.0.0.1, 0.0.0.0, ::1)", param_hint="--bind"
        ) from None


def monitor(
    bind: str = typer.Option(
        "127.0.0.1", "--bind", help="Address to listen on (loopback: only this machine)."
    ),
    port: int = typer.Option(
        monitormod.DEFAULT_PORT, "--port", help="Port to listen on (0: any free port)."
    ),
    interval: float = typer.Option(5.0, "--interval", help="Seconds between two observations."),
    stall_after: float | None = typer.Option(
        None,
        "--stall-after",
        help="A partition with lag whose committed offset has not moved for this many seconds "
        "is stalled (default: GOVSTREAM_STALL_AFTER_S).",
    ),
    timeout: float = typer.Option(
        3.0, "--timeout", help="Seconds to wait for each answer from Kafka or a worker."
    ),
) -> None:
    """Serve the operator's view on its own port, alive when the worker is not: / (a page
    refreshing itself), /status.json and /health (200 only when a worker of the group is
    healthy and no input partition is stalled, else 503 with the reasons). With
    GOVSTREAM_WORKER_WEB_TOKEN set, every page needs `Authorization: Bearer <token>`."""
    host = _check_bind(bind)
    if not 0 <= port <= 65535:
        raise typer.BadParameter("must be between 0 and 65535", param_hint="--port")
    for name, value in (("--interval", interval), ("--timeout", timeout)):
        if value <= 0:
            raise typer.BadParameter("must be > 0", param_hint=name)
    if stall_after is not None and stall_after <= 0:
        raise typer.BadParameter("must be > 0", param_hint="--stall-after")
    settings = get_settings()
    token = settings.worker_web_token
    sock = monitormod.bind_socket(host, port)
    watcher = monitormod.Monitor(
        settings,
        interval=interval,
        stall_after_s=settings.stall_after_s if stall_after is None else stall_after,
        timeout=timeout,
    )

    def ready(url: str) -> None:
        print(
            f"govstream monitor on {url} (group {settings.app_id}, home {settings.home}); "
            "Ctrl-C stops it",
            flush=True,
        )
        if not token and not ipaddress.ip_address(host).is_loopback:
            print(
                f"govstream: warning: {host} is reachable from other machines and no "
                "GOVSTREAM_WORKER_WEB_TOKEN is set",
                file=sys.stderr,
                flush=True,
            )

    try:
        asyncio.run(monitormod.serve(watcher, sock, token, ready))
    finally:
        sock.close()
