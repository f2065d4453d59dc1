"""The Faust app. Agents are thin: they wire `pipelines` steps to topics, tables and the sink.

Run a worker with ``govstream worker`` (or ``faust -A agents.app worker``).
"""

from __future__ import annotations

import functools
from typing import Any

import faust

from agents import ordered, recovery
from pipelines.pii import install_log_scrubber
from pipelines.settings import Settings, get_settings

#: How long a worker's fetch waits for data. Faust hard-codes 1500 ms; Tansu answers a fetch
#: after about half the wait even when data is waiting, so that was ~0.75 s per hop.
FETCH_WAIT_MS = 100


def set_fetch_wait(ms: int) -> None:
    """Faust hard-codes fetch_max_wait_ms=1500 for its aiokafka consumer; set ours instead."""
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread as Thread

    create = getattr(Thread._create_worker_consumer, "__wrapped__", Thread._create_worker_consumer)

    @functools.wraps(create)
    def create_with_wait(self: Thread, transport: Any) -> Any:
        consumer = create(self, transport)
        consumer._fetch_max_wait_ms = ms  # read by AIOKafkaConsumer.start()
        return consumer

    Thread._create_worker_consumer = create_with_wait  # type: ignore[method-assign]


def create_app(settings: Settings) -> faust.App:
    set_fetch_wait(FETCH_WAIT_MS)
    ordered.install()  # no input record skipped across a rebalance or a Tansu offset hole
    recovery.install(settings)  # tables recover to the changelog's true end (Tansu understates it)
    brokers = [f"kafka://{server.strip()}" for server in settings.kafka_bootstrap.split(",")]
    web_host, _ = settings.kafka_address
    return faust.App(
        settings.app_id,
        broker=brokers,
        store="memory://",  # tables are rebuilt from their changelog topics on restart
        autodiscover=False,
        datadir=str(settings.home / "worker"),
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=1,
        key_serializer="raw",
        value_serializer="raw",
        consumer_auto_offset_reset="earliest",
        # Tansu delays a group join by about half the session timeout: keep it short.
        broker_session_timeout=10.0,
        broker_heartbeat_interval=1.0,
        broker_commit_interval=1.0,
        broker_commit_livelock_soft_timeout=120.0,
        # fewer, larger batches: Tansu's fetch work grows with the number of batches it stores
        # (4-min soak at 50 % load, p99 first → last minute: 884 → 1,415 ms at 5 ms linger,
        # 1,008 → 1,294 ms at 50 ms)
        producer_linger=0.05,
        stream_buffer_maxsize=max(4096, 2 * settings.sink_batch_rows),
        web_enabled=True,
        web_bind=web_host if web_host in ("127.0.0.1", "localhost", "::1") else "0.0.0.0",
        web_port=settings.worker_web_port,
        web_host=web_host,
        table_cleanup_interval=60.0,
    )


install_log_scrubber()  # no raw phone or ID number in any log line, at any level
settings = get_settings()
app = create_app(settings)

# register the agents (import for their side effect)
from agents import alerts, forms, reports  # noqa: E402,F401

# isort: split
# the worker's web pages (/metrics, /metrics.json, /health) and its lag timer
from agents import web  # noqa: E402,F401
