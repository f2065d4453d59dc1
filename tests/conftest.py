"""Test fixtures.

Integration tests run against one embedded stack started for the whole test session on
free loopback ports, in a temporary home. To run them against services that already run
(another stack, or production-like servers), set ``GOVSTREAM_TEST_EXTERNAL=1`` together
with the usual ``GOVSTREAM_*`` addresses: the fixtures then reuse those and start nothing
(the pattern of confluent-kafka-python's test fixtures).
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pipelines.settings import Settings
from pipelines.stack import control


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, every: float = 0.3) -> None:
    """Return once ``predicate()`` is true; AssertionError naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def stack_settings(home: Path, **overrides: object) -> Settings:
    """Settings for a stack of our own on free ports under ``home``."""
    values: dict[str, object] = {
        "home": home,
        "kafka_bootstrap": f"127.0.0.1:{free_port()}",
        "schema_registry_url": f"http://127.0.0.1:{free_port()}",
        "clickhouse_url": f"http://127.0.0.1:{free_port()}",
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """Settings of a running stack: started once per test session, stopped at its end."""
    if os.environ.get("GOVSTREAM_TEST_EXTERNAL") == "1":
        yield Settings()
        return
    settings = stack_settings(tmp_path_factory.mktemp("stack"))
    control.up(settings)
    try:
        yield settings
    finally:
        control.down(settings)


@pytest.fixture
def unique() -> str:
    """A short unique suffix for a test's own topics, groups and databases."""
    return uuid.uuid4().hex[:10]
