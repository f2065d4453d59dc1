"""The Faust app. Agents are thin: they wire `pipelines` steps to topics, tables and the sink.

It registers no agent: ``agents.worker`` imports the agent modules (each registers its agents,
tables and pages on this app) and is what ``govstream worker`` runs (or ``faust -A
agents.worker worker``).
"""

from __future__ import annotations

import faust
from faust.types import TransportT
from mode.utils.objects import cached_property
from mode.utils.queues import FlowControlEvent

from agents import ordered, recovery
from pipelines.pii import install_log_scrubber
from pipelines.settings import Settings, get_settings


class GovstreamApp(faust.App):
    """The Faust app with the project's transport (the offset guard, our fetch wait) and
    flow control (counting resumes); see agents/ordered.py."""

    def _new_transport(self) -> TransportT:
        return ordered.Transport(self.conf.broker_consumer, self)

    @cached_property
    def flow_control(self) -> FlowControlEvent:
        return ordered.CountingFlowControl(loop=self.loop)


def create_app(settings: Settings) -> faust.App:
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
