"""The worker's web server: with a token set, every page needs it; Faust's own pages are off."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

import pytest

from pipelines import clickhouse
from pipelines.settings import Settings
from pipelines.workerproc import WorkerProcess
from tests.e2e.conftest import positioned_run

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

TOKEN = "worker-web-token-for-this-test"


def _status(url: str, token: str | None = None) -> int:
    request = urllib.request.Request(url)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 - loopback
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def test_every_page_needs_the_token_and_faust_pages_are_off(
    stack: Settings, unique: str, tmp_path: Path
) -> None:
    settings, _ = positioned_run(stack, "web", unique)
    settings = settings.model_copy(update={"worker_web_token": TOKEN})
    worker = WorkerProcess(settings, tmp_path / "worker.log")
    worker.start().wait_ready()
    try:
        base = f"http://{settings.worker_web_bind}:{settings.worker_web_port}"
        for path in ("/health", "/metrics", "/metrics.json", "/dashboard"):
            assert _status(base + path) == 401, path
            assert _status(base + path, "wrong-token") == 401, path
            assert _status(base + path, TOKEN) in (200, 503), path  # 503: health's verdict
        for path in ("/table/", "/router/", "/graph/", "/stats/"):
            assert _status(base + path, TOKEN) == 404, path
    finally:
        worker.stop()
        clickhouse.get_client(stack).command(
            f"DROP DATABASE IF EXISTS {settings.clickhouse_database}"
        )
