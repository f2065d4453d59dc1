"""A Faust worker as a child process: started, awaited, stopped or killed.

The demo, the end-to-end tests and the benchmarks run real workers (``govstream worker``)
this way, with the settings passed as ``GOVSTREAM_*`` variables.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from pipelines.errors import StackError
from pipelines.settings import Settings, settings_env

READY_LINE = "[^Worker]: Ready"


class WorkerProcess:
    """One ``govstream worker`` process writing its log to ``log_path``.

    ``program`` is the command that runs govstream (default: this interpreter's
    ``python -m pipelines``; the wheel test gives an installed ``govstream`` script) and ``cwd``
    its working directory (default: this process's).
    """

    def __init__(
        self,
        settings: Settings,
        log_path: Path,
        *,
        loglevel: str = "info",
        program: list[str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.settings = settings
        self.log_path = log_path
        self.loglevel = loglevel
        self.program = program or [sys.executable, "-m", "pipelines"]
        self.cwd = cwd
        self.proc: subprocess.Popen[bytes] | None = None
        self._log_offset = 0

    def start(self) -> WorkerProcess:
        if self.running:
            raise StackError("the worker is already running")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        env = {**os.environ, **settings_env(self.settings), "PYTHONUNBUFFERED": "1"}
        if self.program[0] != sys.executable:  # an installed program: its own packages only
            env = {k: v for k, v in env.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [*self.program, "worker", "--loglevel", self.loglevel],
                env=env,
                cwd=self.cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        return self

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_text(self) -> str:
        """What the worker logged since its last start."""
        if not self.log_path.exists():
            return ""
        with self.log_path.open("rb") as fh:
            fh.seek(self._log_offset)
            return fh.read().decode("utf-8", "replace")

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Return once the worker joined its group and recovered its tables."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if READY_LINE in self.log_text():
                return
            if not self.running:
                raise StackError(f"the worker exited early; see {self.log_path}")
            time.sleep(0.2)
        raise StackError(f"the worker was not ready within {timeout:.0f} s; see {self.log_path}")

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM (a clean shutdown), then SIGKILL after ``timeout``; returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        return self.proc.returncode

    def kill(self) -> None:
        """SIGKILL, as a crash would: nothing is flushed or committed."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def __enter__(self) -> WorkerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
