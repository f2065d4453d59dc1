"""The README's promise on every command (issue 17, item 3): one line on stderr, exit 2 for
bad input or settings, exit 1 for a system failure, never a traceback; --version; snake_case
JSON keys. No service runs: the addresses point at free ports."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import free_port

pytestmark = pytest.mark.unit


def govstream(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run the CLI with every service address on a free (dead) port, in a temporary home."""
    base = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "GOVSTREAM_HOME": str(tmp_path / "home"),
        "GOVSTREAM_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}",
        "GOVSTREAM_SCHEMA_REGISTRY_URL": f"http://127.0.0.1:{free_port()}",
        "GOVSTREAM_CLICKHOUSE_URL": f"http://127.0.0.1:{free_port()}",
        "GOVSTREAM_WORKER_WEB_PORT": str(free_port()),
    }
    return subprocess.run(
        [sys.executable, "-m", "pipelines", *args],
        capture_output=True,
        text=True,
        env={**base, **env},
        timeout=60,
    )


def one_line(done: subprocess.CompletedProcess[str], code: int) -> str:
    lines = done.stderr.strip().splitlines()
    assert done.returncode == code, (done.returncode, done.stderr[-2000:])
    assert len(lines) == 1, done.stderr[-2000:]
    assert "Traceback" not in done.stderr and lines[0].startswith("govstream: error: ")
    return lines[0]


def test_worker_with_the_stack_down_is_one_line_and_exit_1(tmp_path: Path) -> None:
    line = one_line(govstream(tmp_path, "worker"), 1)
    for name in ("kafka", "registry", "clickhouse"):
        assert f"{name} at 127.0.0.1:" in line
    assert "GOVSTREAM_KAFKA_BOOTSTRAP" in line and "govstream stack up" in line


def test_worker_on_a_taken_web_port_is_one_line_and_exit_2(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        done = govstream(tmp_path, "worker", GOVSTREAM_WORKER_WEB_PORT=str(port))
    line = one_line(done, 2)
    assert f"web port {port}" in line and "GOVSTREAM_WORKER_WEB_PORT" in line


def test_lag_with_kafka_down_names_the_reason_quickly(tmp_path: Path) -> None:
    t0 = time.monotonic()
    done = govstream(tmp_path, "lag")
    elapsed = time.monotonic() - t0
    line = one_line(done, 1)
    assert "kafka at 127.0.0.1:" in line and "nothing listens" in line
    assert elapsed < 8, elapsed  # was 10.5 s of waiting, then no reason


@pytest.mark.parametrize(
    ("command", "variable", "value"),
    [
        ("stack status", "GOVSTREAM_KAFKA_BOOTSTRAP", "kafka:notaport"),
        ("stack status", "GOVSTREAM_KAFKA_BOOTSTRAP", "http://kafka:9092"),
        ("stack status", "GOVSTREAM_KAFKA_BOOTSTRAP", "a:9092,,b:9092"),
        ("stack status", "GOVSTREAM_SCHEMA_REGISTRY_URL", "registry:8081"),
        ("stack status", "GOVSTREAM_CLICKHOUSE_URL", "http://ch:99999"),
        ("lag", "GOVSTREAM_CLICKHOUSE_URL", "ftp://ch:8123"),
        ("worker", "GOVSTREAM_KAFKA_BOOTSTRAP", "kafka:notaport"),
        ("topic read report", "GOVSTREAM_SCHEMA_REGISTRY_URL", "http://r:0"),
    ],
)
def test_bad_addresses_exit_2(tmp_path: Path, command: str, variable: str, value: str) -> None:
    line = one_line(govstream(tmp_path, *command.split(), **{variable: value}), 2)
    assert variable in line


def test_good_addresses_are_accepted() -> None:
    from pipelines.settings import Settings

    settings = Settings(
        kafka_bootstrap="k1:9092, k2:19092,kafka",
        schema_registry_url="https://user@registry.example/",
        clickhouse_url="http://[::1]:8123",
    )
    assert settings.clickhouse_address == ("::1", 8123)


def test_version(tmp_path: Path) -> None:
    done = govstream(tmp_path, "--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("govstream ") and done.stderr == ""


def _keys(value: Any, path: str = "") -> list[str]:
    if isinstance(value, dict):
        return [f"{path}/{k}" for k in value] + [
            key for k, v in value.items() for key in _keys(v, f"{path}/{k}")
        ]
    if isinstance(value, list):
        return [key for v in value for key in _keys(v, path)]
    return []


def test_simulate_json_keys_are_snake_case(tmp_path: Path) -> None:
    done = govstream(
        tmp_path, "simulate", "--reports", "20", "--dry-run", "--out", str(tmp_path / "o"), "--json"
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    summary.pop("manifest_data")  # the manifest file's own format (keyed by codes and names)
    bad = [k for k in _keys(summary) if not k.rsplit("/", 1)[1].replace("_", "a").isalnum()]
    assert bad == [] and "topic_form_submission" in summary
    assert all(k.rsplit("/", 1)[1].islower() for k in _keys(summary))
