"""Is a service there, is a process alive: probes that start nothing.

The three services of the pipeline (Kafka, the schema registry, ClickHouse), where each one is
and which setting moves it, and a probe that speaks each one's real protocol, so it works the
same against the embedded stack and against production servers. Commands check their services
with :func:`require` before they do any work; ``/health`` reports :func:`probe`.
"""

from __future__ import annotations

import os
import socket
import urllib.error
import urllib.request
from dataclasses import dataclass

from pipelines.errors import StackError
from pipelines.settings import Settings, host_port


@dataclass(frozen=True)
class Service:
    """One service of the pipeline (embedded or a server)."""

    name: str
    setting: str  # the env variable that moves it
    address: tuple[str, int]

    @property
    def address_text(self) -> str:
        return f"{self.address[0]}:{self.address[1]}"


def services(settings: Settings) -> list[Service]:
    """The pipeline's services, in the stack's start order."""
    return [
        Service("kafka", "GOVSTREAM_KAFKA_BOOTSTRAP", settings.kafka_address),
        Service("registry", "GOVSTREAM_SCHEMA_REGISTRY_URL", settings.registry_address),
        Service("clickhouse", "GOVSTREAM_CLICKHOUSE_URL", settings.clickhouse_address),
    ]


def port_in_use(host: str, port: int) -> bool:
    """True when something already accepts connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def probe(name: str, settings: Settings, timeout: float = 2.0) -> tuple[bool, str]:
    """Ask a service whether it answers its protocol; returns (healthy, detail)."""
    try:
        if name == "kafka":
            return _probe_kafka(settings, timeout)
        if name == "registry":
            return _probe_http(settings.schema_registry_url.rstrip("/") + "/subjects", timeout)
        if name == "clickhouse":
            ok, detail = _probe_http(settings.clickhouse_url.rstrip("/") + "/ping", timeout)
            return ok and detail.strip() == "Ok.", detail.strip()
    except Exception as exc:  # a probe reports, it never raises
        return False, f"{type(exc).__name__}: {exc}"
    raise StackError(f"unknown service {name!r}")


def require(names: list[str], settings: Settings, timeout: float = 3.0) -> None:
    """Raise :class:`StackError` (one line naming the service, its address, why, and the
    setting that moves it) unless every service of ``names`` answers its protocol within
    ``timeout`` seconds (see :func:`probe`). Commands call it before they do any work."""
    by_name = {svc.name: svc for svc in services(settings)}
    down = []
    for name in names:
        ok, detail = probe(name, settings, timeout)
        if not ok:
            svc = by_name[name]
            why = " ".join(detail.split())[:160] or "no answer"
            down.append(f"{name} at {svc.address_text} does not answer ({why}; {svc.setting})")
    if down:
        raise StackError(
            "; ".join(down) + " — start the stack (`govstream stack up`) or fix the address"
        )


def _probe_kafka(settings: Settings, timeout: float) -> tuple[bool, str]:
    from confluent_kafka.admin import AdminClient

    addresses = [host_port(a.strip(), 9092) for a in settings.kafka_bootstrap.split(",")]
    if not any(port_in_use(host, port) for host, port in addresses):  # any broker will do
        return False, "nothing listens on " + ", ".join(f"{h}:{p}" for h, p in addresses)
    admin = AdminClient(
        settings.kafka_config(**{"socket.timeout.ms": int(timeout * 1000), "log_level": 0})
    )
    try:
        md = admin.list_topics(timeout=timeout)
    except Exception as exc:
        return False, str(exc)
    return bool(md.brokers), f"{len(md.brokers)} broker(s), {len(md.topics)} topic(s)"


def _probe_http(url: str, timeout: float) -> tuple[bool, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 (configured URL)
            body = resp.read(200).decode("utf-8", "replace")
            return resp.status == 200, body
    except (urllib.error.URLError, OSError) as exc:
        return False, str(getattr(exc, "reason", exc))


def pid_alive(pid: int | None) -> bool:
    """Whether process ``pid`` lives (a zombie child of ours is reaped and counts as gone)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child of ours still "exists": reap it if it is ours
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        return True
