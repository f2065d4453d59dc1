"""Running one embedded HTTP service in the foreground (shared by the registry and ClickHouse)."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from socketserver import BaseServer
from types import FrameType


def configure_logging() -> None:
    logging.basicConfig(
        level=os.environ.get("GOVSTREAM_LOG_LEVEL", "INFO"),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )


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
