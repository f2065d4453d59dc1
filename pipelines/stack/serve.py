"""Running one embedded HTTP service in the foreground (shared by the registry and ClickHouse)."""

from __future__ import annotations

import errno
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from socketserver import BaseServer
from types import FrameType
from typing import TypeVar

from pipelines.errors import PortInUseError, StackError
from pipelines.settings import Settings, get_settings

ServerT = TypeVar("ServerT", bound=BaseServer)


def configure_logging() -> None:
    logging.basicConfig(
        level=os.environ.get("GOVSTREAM_LOG_LEVEL", "INFO"),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )


def bind_error(exc: OSError, name: str, host: str, port: int, setting: str) -> StackError:
    """The error for ``name`` failing to listen on ``host:port``, naming ``setting``.

    :class:`PortInUseError` when the port is taken, else :class:`StackError`; raise it
    ``from exc``.
    """
    reason = exc.strerror or str(exc)
    if exc.errno == errno.EADDRINUSE:
        return PortInUseError(
            f"{name}: port {port} on {host} is in use ({reason}); stop what uses it "
            f"or set {setting} to another address"
        )
    return StackError(f"{name}: cannot listen on {host}:{port} ({reason}); check {setting}")


def open_server(make_server: Callable[[Settings], ServerT]) -> ServerT | None:
    """Configure logging and make the server from the settings, for a ``main()``.

    None when it cannot listen (a :class:`StackError`), after printing the one-line
    reason to stderr; ``main()`` then exits 2.
    """
    configure_logging()
    try:
        return make_server(get_settings())
    except StackError as exc:
        print(exc, file=sys.stderr)
        return None


def serve_until_signalled(server: BaseServer, name: str, log: logging.Logger) -> int:
    """Serve on a thread until SIGTERM/SIGINT, then shut the server down; returns 0."""
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.1}, name=name, daemon=True
    )
    thread.start()
    while not stop.wait(1.0):
        pass
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)
    log.info("%s stopped", name)
    return 0
