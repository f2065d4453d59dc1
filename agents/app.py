"""The Faust app. Agents are thin: they wire `pipelines` steps to topics, tables and the sink.

It registers no agent: ``agents.worker`` imports the agent modules (each registers its agents,
tables and pages on this app) and is what ``govstream worker`` runs (or ``faust -A
agents.worker worker``).
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Callable
from typing import cast

import faust
from faust.types import TransportT
from mode.utils.objects import cached_property
from mode.utils.queues import FlowControlEvent

from agents import ordered, recovery
from pipelines.pii import install_log_scrubber
from pipelines.settings import Settings, get_settings

log = logging.getLogger("govstream.agents.app")


class GovstreamApp(faust.App):
    """The Faust app with the project's transport (the offset guard, our fetch wait) and
    flow control (counting resumes); see agents/ordered.py. Agent modules register warm-ups
    (:meth:`warm_up`) that run before the worker joins its group."""

    @property
    def warm_ups(self) -> list[Callable[[], float]]:
        """What :meth:`on_first_start` runs, in registration order."""
        return cast(list[Callable[[], float]], self.__dict__.setdefault("_warm_ups", []))

    def warm_up(self, build: Callable[[], float]) -> Callable[[], float]:
        """Register ``build`` (returns the seconds it took) to run in a thread when the worker
        starts, before its consumer joins the group: a worker is then ready when Faust says
        "Ready". Built while joining instead, the report path took 5.1 s in a thread
        competing with the join and finished 5 s after "Ready"; the events of those seconds
        waited (a soak's first 10 s: p99 4.6 s, against 0.9–1.7 s for the rest)."""
        self.warm_ups.append(build)
        return build

    async def on_first_start(self) -> None:
        await super().on_first_start()
        for build in self.warm_ups:
            took = await asyncio.to_thread(build)
            log.info("warm-up %s.%s: %.1f s", build.__module__, build.__name__, took)
        freeze_startup_objects()

    def _new_transport(self) -> TransportT:
        return ordered.Transport(self.conf.broker_consumer, self)

    @cached_property
    def flow_control(self) -> FlowControlEvent:
        return ordered.CountingFlowControl(loop=self.loop)


def freeze_startup_objects() -> int:
    """Collect, then move every object the collector tracks into its permanent generation
    (``gc.freeze``, Python docs "gc"); returns how many. What the worker builds before it
    joins (Faust, the classifier and its dictionaries, the division index: ~390,000 tracked
    objects) lives as long as the process, yet each full collection scanned it all: 280 ms
    in-process, and 400–555 ms pauses of the event loop in a 90-s soak at 50 % load, the
    slowest batches of its p99. Frozen objects are still freed when their last reference
    goes; what stays is a cycle through a frozen object that later becomes garbage (it is
    never collected). Everything alive at the call is frozen, Faust's and asyncio's start-up
    objects too: a bounded, one-time set. Full collections run more often afterwards (Python
    starts one when the objects waiting exceed a quarter of the long-lived ones, now fewer):
    about every 15 s in that soak instead of every 35 s, each ~90-200 ms."""
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    log.info("froze %d start-up objects out of the garbage collector's full collections", frozen)
    return frozen


def create_app(settings: Settings) -> GovstreamApp:
    brokers = [f"kafka://{server.strip()}" for server in settings.kafka_bootstrap.split(",")]
    return GovstreamApp(
        settings.app_id,
        broker=brokers,
        store="memory://",  # tables are rebuilt from their changelog topics on restart
        autodiscover=False,
        datadir=str(settings.home / "worker"),
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication_factor,
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
        broker_credentials=settings.faust_broker_credentials(),  # SASL/SCRAM in production
        web_enabled=True,
        web_bind=settings.worker_web_bind,  # loopback unless set
        web_port=settings.worker_web_port,
        web_host=settings.worker_web_bind,
        # Faust's own pages would show table contents and routing to anyone who reaches the
        # port: only the project's /metrics, /health and /dashboard pages are served
        web_router_enabled=False,
        web_tables_enabled=False,
        web_graph_enabled=False,
        web_stats_enabled=False,
        table_cleanup_interval=60.0,
        table_standby_replicas=settings.table_standby_replicas,  # default 0: see Settings
        # tables recover to the changelog's true end (Tansu understates it)
        TableManager=recovery.TableManager,
    )


install_log_scrubber()  # no raw phone or ID number in any log line, at any level
settings = get_settings()
app = create_app(settings)
