"""The stack supervisor: one background process that owns the embedded services.

``govstream stack up`` starts it detached; it starts each embedded service with its log
under ``<home>/logs``, restarts a service that dies (with backoff, a bounded number of
times), records pids in ``<home>/stack.json`` and, on SIGTERM, stops the services in
reverse order and removes the state file.

Run in the foreground with ``python -m pipelines.stack.supervisor``.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from pipelines.probes import services
from pipelines.settings import Settings, get_settings
from pipelines.stack.services import command

log = logging.getLogger("govstream.supervisor")

MAX_RESTARTS = 5
STOP_GRACE_S = 10.0


@dataclass
class Child:
    name: str
    address: str
    pid: int = 0
    started_at: float = 0.0
    restarts: int = 0
    state: str = "starting"  # running | restarting | failed | stopped
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    log_file: IO[bytes] | None = field(default=None, repr=False)

    def public(self) -> dict[str, Any]:
        keep = ("name", "address", "pid", "started_at", "restarts", "state")
        return {key: getattr(self, key) for key in keep}


def state_path(settings: Settings) -> Path:
    return settings.home / "stack.json"


def read_state(settings: Settings) -> dict[str, Any] | None:
    """The supervisor's last written state, or None when no stack was started here."""
    try:
        return json.loads(state_path(settings).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


class Supervisor:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.stopping = False
        self.children = [
            Child(svc.name, svc.address_text)
            for svc in services(settings)
            if svc.name in settings.embedded
        ]

    # --- lifecycle -----------------------------------------------------------------------

    def start(self, child: Child) -> None:
        self.settings.log_dir.mkdir(parents=True, exist_ok=True)
        if child.log_file is None:
            child.log_file = open(self.settings.log_dir / f"{child.name}.log", "ab")  # noqa: SIM115
        argv = command(child.name, self.settings)
        log.info("starting %s: %s", child.name, " ".join(argv))
        child.proc = subprocess.Popen(
            argv, stdout=child.log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        child.pid = child.proc.pid
        child.started_at = time.time()
        child.state = "running"

    def stop_all(self) -> None:
        self.stopping = True
        for child in reversed(self.children):
            proc = child.proc
            if proc is None or proc.poll() is not None:
                continue
            log.info("stopping %s (pid %d)", child.name, proc.pid)
            proc.terminate()
            try:
                proc.wait(STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in %.0f s; killing", child.name, STOP_GRACE_S)
                proc.kill()
                proc.wait()
            child.state = "stopped"

    def write_state(self) -> None:
        path = state_path(self.settings)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(
            json.dumps(
                {
                    "supervisor_pid": os.getpid(),
                    "home": str(self.settings.home.resolve()),
                    "services": [c.public() for c in self.children],
                },
                indent=2,
            )
        )
        os.replace(tmp, path)

    def check(self) -> None:
        """Restart a child that died, with exponential backoff, at most MAX_RESTARTS times."""
        for child in self.children:
            proc = child.proc
            if proc is None or proc.poll() is None or child.state == "failed":
                continue
            code = proc.returncode
            if child.restarts >= MAX_RESTARTS:
                log.error(
                    "%s exited with %s; gave up after %d restarts", child.name, code, child.restarts
                )
                child.state = "failed"
            else:
                delay = min(2**child.restarts * 0.5, 10.0)
                log.warning("%s exited with %s; restarting in %.1f s", child.name, code, delay)
                child.state = "restarting"
                self.write_state()
                time.sleep(delay)
                child.restarts += 1
                self.start(child)
            self.write_state()

    def run(self) -> int:
        self.settings.home.mkdir(parents=True, exist_ok=True)

        def _on_signal(signum: int, _frame: object) -> None:
            self.stopping = True

        signal.signal(signal.SIGTERM, _on_signal)
        signal.signal(signal.SIGINT, _on_signal)
        for child in self.children:
            self.start(child)
        self.write_state()
        while not self.stopping:
            time.sleep(0.25)
            if not self.stopping:
                self.check()
        self.stop_all()
        state_path(self.settings).unlink(missing_ok=True)
        log.info("stack stopped")
        return 0


def main() -> int:
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    return Supervisor(get_settings()).run()


if __name__ == "__main__":
    raise SystemExit(main())
