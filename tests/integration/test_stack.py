"""`govstream stack`: up twice, status, port in use, down."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipelines.errors import PortInUseError
from pipelines.settings import Settings, settings_env
from pipelines.stack import control
from tests.conftest import stack_settings

pytestmark = pytest.mark.integration


def run_cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", **settings_env(settings)}
    return subprocess.run(
        [sys.executable, "-m", "pipelines", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_status_json_reports_three_healthy_services(stack: Settings) -> None:
    result = run_cli(stack, "stack", "status", "--json")
    assert result.returncode == 0, result.stderr
    services = {s["name"]: s for s in json.loads(result.stdout)["services"]}
    assert set(services) == {"kafka", "registry", "clickhouse"}
    for svc in services.values():
        assert svc["healthy"] is True, svc
        assert svc["state"] == "running"
        assert isinstance(svc["pid"], int)


def test_second_up_reports_running_stack_instead_of_twins(stack: Settings) -> None:
    before = {s.name: s.pid for s in control.status(stack)}
    result = run_cli(stack, "stack", "up", "--json")
    assert result.returncode == 0, result.stderr
    after = {s["name"]: s["pid"] for s in json.loads(result.stdout)["services"]}
    assert after == before


def test_port_in_use_is_one_line_naming_port_and_setting(tmp_path: Path) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        settings = stack_settings(tmp_path, kafka_bootstrap=f"127.0.0.1:{port}")
        with pytest.raises(PortInUseError, match="GOVSTREAM_KAFKA_BOOTSTRAP"):
            control.up(settings)
        result = run_cli(settings, "stack", "up")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert str(port) in lines[0] and "GOVSTREAM_KAFKA_BOOTSTRAP" in lines[0]
    assert control.supervisor_pid(settings) is None


def test_up_down_own_stack_and_restart_of_a_dead_service(tmp_path: Path) -> None:
    settings = stack_settings(tmp_path, embedded=["kafka"], startup_timeout_s=30)
    started, statuses = control.up(settings)
    try:
        assert started
        kafka = next(s for s in statuses if s.name == "kafka")
        assert kafka.healthy and kafka.pid
        # the supervisor brings a killed broker back
        os.kill(kafka.pid, signal.SIGKILL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            now = next(s for s in control.status(settings) if s.name == "kafka")
            if now.healthy and now.pid != kafka.pid:
                break
            time.sleep(0.2)
        assert now.healthy and now.pid != kafka.pid
    finally:
        assert control.down(settings) is True
    assert control.supervisor_pid(settings) is None
    assert control.down(settings) is False
    assert not any(s.healthy for s in control.status(settings) if s.name == "kafka")
