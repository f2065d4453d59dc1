"""Which workers run in a home, and how each one is: a registry of pid and web-port files.

``govstream worker`` writes ``<home>/workers/<pid>.json`` before it starts Faust and removes it
when it exits (atexit: a clean stop, SIGTERM or Ctrl-C). A worker killed with SIGKILL, or
crashed hard, leaves its file behind, so ``govstream stack status`` can say it is dead (the
embedded broker cannot: Tansu keeps a dead member listed in its group and has no member
listing API worth trusting, see the README's known limits). A new worker of the same app id
removes the files of dead ones: it replaces them.

The state of a worker (:func:`worker_status`):

``dead``           its pid is gone and its file was not removed (killed or crashed).
``not answering``  the pid lives but its ``/health`` did not answer within the timeout
                   (starting, stopped with SIGSTOP, or stuck).
``unhealthy``      ``/health`` answered 503: a service does not answer or an agent is stalled
                   (``stalled_agents``; ``agents/web.py``, ``pipelines.metrics``).
``healthy``        ``/health`` answered 200.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import socket
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pipelines.errors import ConfigError
from pipelines.probes import pid_alive
from pipelines.settings import Settings


def registry_dir(settings: Settings) -> Path:
    """``<home>/workers``: one ``<pid>.json`` per worker started in this home."""
    return settings.home / "workers"


def check_web_port(settings: Settings) -> None:
    """Raise :class:`ConfigError` (one line: the port, the address and the variable that moves
    it) when the worker's web port is taken, before Faust would die on it with OSError 98."""
    host, port = settings.worker_web_bind, settings.worker_web_port
    if port == 0:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as aiohttp binds it
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise ConfigError(
                f"the worker's web port {port} on {host} is taken ({exc.strerror}): another "
                "worker runs here? Set GOVSTREAM_WORKER_WEB_PORT to a free port"
            ) from None


def register(settings: Settings) -> Path:
    """Write this process's entry (pid, app id, web address, start time) and remove it at exit;
    first remove the entries of dead workers of the same app id. Returns the file."""
    directory = registry_dir(settings)
    directory.mkdir(parents=True, exist_ok=True)
    for entry in read_entries(settings):
        if entry.get("app_id") == settings.app_id and not pid_alive(int(entry["pid"])):
            (directory / f"{entry['pid']}.json").unlink(missing_ok=True)
    pid = os.getpid()
    path = directory / f"{pid}.json"
    entry = {
        "pid": pid,
        "app_id": settings.app_id,
        "web_host": settings.worker_web_bind,
        "web_port": settings.worker_web_port,
        "started_at": time.time(),
    }
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(entry), encoding="utf-8")
    tmp.replace(path)

    def remove() -> None:
        if os.getpid() == pid:  # not from a forked child
            path.unlink(missing_ok=True)

    atexit.register(remove)
    return path


def read_entries(settings: Settings) -> list[dict[str, Any]]:
    """Every registered worker's entry (unreadable files are skipped), by pid."""
    out = []
    directory = registry_dir(settings)
    if not directory.is_dir():
        return []
    for path in directory.glob("*.json"):
        with contextlib.suppress(OSError, ValueError):
            entry = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(entry, dict) and isinstance(entry.get("pid"), int):
                out.append(entry)
    return sorted(out, key=lambda e: int(e["pid"]))


@dataclass(frozen=True)
class WorkerStatus:
    pid: int
    app_id: str
    address: str
    state: str  # healthy | unhealthy | not answering | dead
    healthy: bool
    detail: str
    stalled_agents: tuple[str, ...] = ()  # agents its /health names stalled (unhealthy only)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def worker_status(entry: dict[str, Any], timeout: float = 3.0, token: str = "") -> WorkerStatus:
    """The state of one registered worker (see the module's docstring); ``token``: the
    workers' ``GOVSTREAM_WORKER_WEB_TOKEN``, sent as a bearer token when set."""
    pid = int(entry["pid"])
    host = str(entry.get("web_host") or "127.0.0.1")
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    port = int(entry.get("web_port") or 0)
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    app_id = str(entry.get("app_id", "?"))

    def status(state: str, detail: str, stalled: tuple[str, ...] = ()) -> WorkerStatus:
        return WorkerStatus(pid, app_id, address, state, state == "healthy", detail, stalled)

    if not pid_alive(pid):
        started = entry.get("started_at")
        since = ""
        if isinstance(started, int | float):
            since = f", started {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(started))}"
        return status("dead", f"process {pid} is gone without a clean stop{since}")
    url = f"http://{address}/health"
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 (own worker)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:  # noqa: S310
            body = resp.read(64_000)
            code = resp.status
    except urllib.error.HTTPError as exc:
        body, code = exc.read(64_000), exc.code
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return status("not answering", f"{url}: {reason}")
    return status(*_health_state(code, body))


def _health_state(code: int, body: bytes) -> tuple[str, str, tuple[str, ...]]:
    """(state, detail, stalled agents) from a worker's /health answer
    (``metrics.health_report``'s shape: {"healthy", "services": {name: {"healthy", "detail"}},
    "stalled_agents": [...]})."""
    try:
        report = json.loads(body)
    except ValueError:
        report = {}
    if code == 200:
        return "healthy", "all services answer, no agent stalled", ()
    if code == 401:
        return "unhealthy", "/health 401: wrong or missing GOVSTREAM_WORKER_WEB_TOKEN", ()
    problems = []
    stalled = report.get("stalled_agents") if isinstance(report, dict) else None
    names = tuple(map(str, stalled)) if isinstance(stalled, list) else ()
    if names:
        problems.append(f"stalled: {', '.join(names)}")
    services = report.get("services", {}) if isinstance(report, dict) else {}
    for name, svc in services.items() if isinstance(services, dict) else ():
        if isinstance(svc, dict) and not svc.get("healthy"):
            problems.append(f"{name} down")
    return "unhealthy", f"/health {code}: " + ("; ".join(problems) or "unhealthy"), names


def statuses(settings: Settings, timeout: float = 3.0) -> list[WorkerStatus]:
    """The state of every worker registered in this home, by pid (asking each one's /health
    with the workers' web token)."""
    token = settings.worker_web_token
    return [worker_status(entry, timeout, token) for entry in read_entries(settings)]
