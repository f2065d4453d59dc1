"""The Faust (and mode) methods that agents/ordered.py, agents/recovery.py and agents/app.py
mirror, extend through a subclass or replace are the ones these were written against: a
changed upstream source fails here, so whoever upgrades faust-streaming re-reads them.

On a failure: read the upstream change, bring our subclass in line (the mirrored
``_drain_messages`` in particular), run the reliability suite, then record the new digests.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable
from importlib import metadata
from typing import Any

import faust.app.base
import faust.tables.manager
import faust.tables.recovery
import faust.transport.consumer
import faust.transport.drivers.aiokafka
import mode.services
import mode.utils.queues
import pytest

from agents import ordered, recovery
from agents.app import GovstreamApp

pytestmark = pytest.mark.unit

consumer, driver = faust.transport.consumer.Consumer, faust.transport.drivers.aiokafka

#: what we rely on → sha256 prefix of its source in faust-streaming 0.15.3 / mode-streaming
UPSTREAM: dict[str, tuple[Callable[[], Any], str]] = {
    # mirrored line by line (plus the guard) in agents/ordered.py
    "Consumer._drain_messages": (lambda: consumer._drain_messages, "44a2500309e83c63"),
    # extended by GuardedConsumer (super() first, then the guard)
    "Consumer.perform_seek": (lambda: consumer.perform_seek, "0e8c130ff4b0afd8"),
    "Consumer.seek": (lambda: consumer.seek, "b86a9fe05f956b30"),
    "Consumer.on_partitions_revoked": (lambda: consumer.on_partitions_revoked, "d04b7ae72c6fc206"),
    # mirrored: GuardedConsumer._new_consumer_thread returns our thread class instead
    "aiokafka.Consumer._new_consumer_thread": (
        lambda: driver.Consumer._new_consumer_thread,
        "0870ec53dea75083",
    ),
    # hard-codes fetch_max_wait_ms=1500, which ConsumerThread overrides after it; it also keeps
    # Faust's assignor (app.assignor.assigned_actives(), read by the SLA timer) with
    # table_standby_replicas 0 only because the app has changelog tables
    "AIOKafkaConsumerThread._create_worker_consumer": (
        lambda: driver.AIOKafkaConsumerThread._create_worker_consumer,
        "c2701bfc3e6f6cad",
    ),
    # replaced by ExactEndRecovery._build_highwaters (same contract: highwater = last offset)
    "Recovery._build_highwaters": (
        lambda: faust.tables.recovery.Recovery._build_highwaters,
        "91b4cc0d3724ae7b",
    ),
    # mirrored by recovery.TableManager.recovery
    "TableManager.recovery": (
        lambda: faust.tables.manager.TableManager.recovery.fget,
        "f0bf5de78b4c3d23",
    ),
    # mirrored by GovstreamApp._new_transport and GovstreamApp.flow_control
    "App._new_transport": (lambda: faust.app.base.App._new_transport, "42db531312dd776f"),
    "App.flow_control": (
        lambda: faust.app.base.App.__dict__["flow_control"]._cached_property__get,
        "f664abbe76e25985",
    ),
    # GovstreamApp.on_first_start (the warm-ups) extends it and relies on mode starting a
    # service's first start before its children (consumer, producer): ready before joining
    "App.on_first_start": (lambda: faust.app.base.App.on_first_start, "ec655d9c223403cc"),
    "Service._actually_start": (lambda: mode.services.Service._actually_start, "def664241401b666"),
    # extended by CountingFlowControl.resume
    "FlowControlEvent.resume": (
        lambda: mode.utils.queues.FlowControlEvent.resume,
        "4dcdc1253fd0dcb4",
    ),
}


def test_the_installed_faust_is_the_pinned_one() -> None:
    assert metadata.version("faust-streaming") == "0.15.3"


@pytest.mark.parametrize("name", sorted(UPSTREAM))
def test_upstream_source_is_the_one_mirrored_here(name: str) -> None:
    get, digest = UPSTREAM[name]
    source = inspect.getsource(get())
    assert hashlib.sha256(source.encode()).hexdigest()[:16] == digest, (
        f"{name} changed upstream: re-read it against agents/ (see this module's doc)"
    )


def test_the_app_uses_the_extension_points_not_assignments() -> None:
    # our behaviour lives in subclasses; the library's classes are untouched
    assert consumer._drain_messages is not ordered.GuardedConsumer._drain_messages
    assert "_govstream_ordered" not in vars(consumer)
    assert faust.tables.recovery.Recovery._build_highwaters is not (
        recovery.ExactEndRecovery._build_highwaters
    )
    assert ordered.Transport.Consumer is ordered.GuardedConsumer
    assert issubclass(GovstreamApp, faust.App)
