"""`govstream stack up | down | status`: start, stop and inspect the embedded stack."""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass

from pipelines.errors import PortInUseError, StackError
from pipelines.probes import pid_alive, port_in_use, probe, services
from pipelines.settings import Settings, settings_env
from pipelines.stack.clickhouse_http import writer_password
from pipelines.stack.services import require_extras
from pipelines.stack.supervisor import read_state, state_path


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    address: str
    embedded: bool
    pid: int | None
    state: str  # running | restarting | failed | external | down
    healthy: bool
    detail: str

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def supervisor_pid(settings: Settings) -> int | None:
    """The pid of this home's running supervisor, or None."""
    state = read_state(settings)
    pid = state.get("supervisor_pid") if state else None
    return pid if pid_alive(pid) else None


def status(settings: Settings, timeout: float = 2.0) -> list[ServiceStatus]:
    """Every service of the stack with its pid, address and health."""
    state = read_state(settings) if supervisor_pid(settings) else None
    children = {c["name"]: c for c in (state or {}).get("services", [])}
    result = []
    for svc in services(settings):
        embedded = svc.name in settings.embedded
        child = children.get(svc.name)
        healthy, detail = probe(svc.name, settings, timeout)
        if not embedded:
            pid, run_state = None, "external"
        elif child and pid_alive(child["pid"]):
            pid, run_state = child["pid"], child["state"]
        else:
            pid, run_state = None, child["state"] if child else "down"
        result.append(
            ServiceStatus(svc.name, svc.address_text, embedded, pid, run_state, healthy, detail)
        )
    return result


@contextmanager
def _home_lock(settings: Settings) -> Iterator[None]:
    settings.home.mkdir(parents=True, exist_ok=True)
    with open(settings.home / "stack.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def up(settings: Settings) -> tuple[bool, list[ServiceStatus]]:
    """Start the embedded services and wait until each answers its protocol.

    With an embedded ClickHouse and no ``clickhouse_password``, the writer's password is
    generated into the home first (see :func:`writer_password`). Returns (started,
    statuses); started is False when this home's stack already ran.
    """
    with _home_lock(settings):
        if supervisor_pid(settings):
            return False, status(settings)
        require_extras(settings)  # one line naming the [embedded] extra, before any process
        for svc in services(settings):
            if svc.name in settings.embedded and port_in_use(*svc.address):
                raise PortInUseError(
                    f"port {svc.address[1]} ({svc.name}) is already in use on {svc.address[0]}; "
                    f"set {svc.setting} to a free address or stop what holds it"
                )
        settings.log_dir.mkdir(parents=True, exist_ok=True)
        if "clickhouse" in settings.embedded:
            writer_password(settings)  # generated (0600) before anything can connect
        state_path(settings).unlink(missing_ok=True)
        env = {**os.environ, **settings_env(settings)}
        with open(settings.log_dir / "supervisor.log", "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "pipelines.stack.supervisor"],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )
        try:
            _wait_healthy(settings, proc)
        except BaseException:
            _kill_group(proc)
            raise
        return True, status(settings)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """Stop a supervisor that never became healthy, and every service it started."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(15)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


def _wait_healthy(settings: Settings, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + settings.startup_timeout_s
    pending = [s.name for s in services(settings) if s.name in settings.embedded]
    while pending:
        if proc.poll() is not None:
            raise StackError(
                f"the stack supervisor exited with {proc.returncode}; "
                f"see {settings.log_dir / 'supervisor.log'}"
            )
        state = read_state(settings) or {}
        for child in state.get("services", []):
            if child["state"] == "failed":
                raise StackError(
                    f"{child['name']} failed to start; see {settings.log_dir / child['name']}.log"
                )
        pending = [name for name in pending if not probe(name, settings, timeout=1.0)[0]]
        if pending and time.monotonic() > deadline:
            raise StackError(
                f"{', '.join(pending)} did not answer within {settings.startup_timeout_s:.0f} s; "
                f"see the logs in {settings.log_dir}"
            )
        if pending:
            time.sleep(0.2)


def down(settings: Settings, timeout: float = 30.0) -> bool:
    """Stop what `up` started in this home; returns False when nothing was running."""
    pid = supervisor_pid(settings)
    if pid is None:
        state_path(settings).unlink(missing_ok=True)
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while pid_alive(pid):
        if time.monotonic() > deadline:
            raise StackError(f"the stack supervisor (pid {pid}) did not stop in {timeout:.0f} s")
        time.sleep(0.1)
    return True
