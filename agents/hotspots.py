"""Hotspot alerts (热点预警): a leader-only timer turns the current gov.hotspots into `alert` events
(``pipelines.hotspots``).

Every ``hotspot_check_interval_s`` seconds the one worker Faust elects leader of the group
(``on_leader=True``: with several workers exactly one runs it; after a rebalance the new leader
does) reads the hotspots of the window ending today (``closedloop.hotspots``), drops those
gov.alerts already holds as hotspot alerts and those this process sent, and sends the rest to
the ``alert`` topic with the worker's own Faust producer, keyed by the alert id, Confluent-
framed Avro of the project's alert schema (``codec.AvroEncoder``: the schema id is registered
under ``alert-value`` once, as the producer API does), after the contract and the alert rules
are checked (``contracts.from_json``, ``alerts.problems``). No second producer is opened: on the
embedded broker a worker that had opened a confluent-kafka idempotent producer of its own lost
report events sent after its restart (tests/e2e/test_hotspot_alerts.py). The alert agent then
writes them like any warning (gov.alerts, gov.alert_targets), so they count in the warning-reach
views. The alert id is derived from the grid, category and window, so neither a restart nor a
second leader sends a new warning (see ``pipelines/hotspots.py``). Nothing runs with
``hotspot_alert_enabled`` false.

A failed send (broker or registry away) is logged and retried at the next check; ClickHouse away
is waited out (``with_clickhouse``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from agents.app import app, settings
from agents.common import with_clickhouse
from pipelines import alerts, closedloop, codec, contracts, hotspots

log = logging.getLogger("govstream.agents.hotspots")

alert_topic = app.topic(contracts.ALERT, key_serializer="raw", value_serializer="raw")
encoder = codec.AvroEncoder(
    contracts.load_schema(contracts.ALERT),
    contracts.subject_for(contracts.ALERT),
    settings.registry_config(),
)

_sent: set[str] = set()  # alert ids this process sent (until the alert agent has written them)


def _messages(records: Sequence[dict[str, Any]], now: datetime) -> list[tuple[bytes, bytes]]:
    """(key, value) of each alert, checked as the producer API checks an event (raises
    FieldError or ValidationError for one the contract or the alert rules refuse)."""
    out = []
    for alert in records:
        record = contracts.from_json(contracts.ALERT, alert)
        for problem in alerts.problems(record, now):
            raise problem
        key = contracts.key_for(contracts.ALERT, record)
        value = encoder.encode(record)
        contracts.check_event_size(value, key, record=record)
        out.append((key.encode(), value))
    return out


@app.timer(interval=settings.hotspot_check_interval_s, on_leader=True)
async def warn_hotspots() -> None:
    """Send an alert for each hotspot of today's window not warned of yet."""
    if not settings.hotspot_alert_enabled:
        return
    db = settings.clickhouse_database
    rows = await with_clickhouse(lambda c: closedloop.hotspots(c, db), "reading gov.hotspots")
    if not rows:
        return
    ids = {hotspots.root_of(row) for row in rows} - _sent
    sent = await with_clickhouse(
        lambda c: hotspots.already_sent(c, db, ids), "reading the hotspot alerts sent"
    )
    now = datetime.now(UTC)
    records = hotspots.hotspot_alerts(rows, sent=sent | _sent, now=now)
    if not records:
        return
    try:
        await asyncio.to_thread(encoder.schema_id)  # the registry, once: not on the loop
        pending = [
            await alert_topic.send(key=key, value=value) for key, value in _messages(records, now)
        ]
        for future in pending:
            await future  # acknowledged by Kafka
    except Exception as exc:  # registry or broker away, a refused record: the next check
        log.warning("hotspot alerts not sent (%s); retrying at the next check", exc)
        return
    _sent.update(str(r["alert_id"]) for r in records)
    for record in records:
        log.info("hotspot alert %s: %s", record["alert_id"], record["headline"])
