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
views. The alert id is derived from the grid, category and window, and a grid and category
already warned of for an overlapping window is not warned again, so neither a restart nor a
second leader sends a new warning (see ``pipelines/hotspots.py``). Nothing runs with
``hotspot_alert_enabled`` false.

Each alert is checked and sent on its own: one the contract or the alert rules refuse is logged
once and skipped (the others still go); an alert counts as sent once Kafka acknowledged it, so a
failed send (broker or registry away) stops this check and is retried at the next one without
sending the acknowledged ones again. ClickHouse away is waited out (``with_clickhouse``); the
leadership is asked again before sending, after that wait.
"""

from __future__ import annotations

import asyncio
import logging
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
_refused: set[str] = set()  # alert ids the contract or the alert rules refused (logged once)


def _message(alert: dict[str, Any], now: datetime) -> tuple[bytes, bytes]:
    """(key, value) of one alert, checked as the producer API checks an event (raises
    FieldError or ValidationError when the contract or the alert rules refuse it)."""
    record = contracts.from_json(contracts.ALERT, alert)
    for problem in alerts.problems(record, now):
        raise problem
    key = contracts.key_for(contracts.ALERT, record)
    value = encoder.encode(record)
    contracts.check_event_size(value, key, record=record)
    return key.encode(), value


@app.timer(interval=settings.hotspot_check_interval_s, on_leader=True)
async def warn_hotspots() -> None:
    """Send an alert for each hotspot of today's window not warned of yet."""
    if not settings.hotspot_alert_enabled:
        return
    db = settings.clickhouse_database
    rows = await with_clickhouse(lambda c: closedloop.hotspots(c, db), "reading gov.hotspots")
    if not rows:
        return
    now = datetime.now(UTC)
    sent = await with_clickhouse(
        lambda c: hotspots.already_sent(c, db, rows, now), "reading the hotspot alerts sent"
    )
    records = [
        r
        for r in hotspots.hotspot_alerts(rows, sent=sent | _sent, now=now)
        if r["alert_id"] not in _refused
    ]
    if not records or not app.is_leader():  # leadership may have moved while ClickHouse waited
        return
    try:
        await asyncio.to_thread(encoder.schema_id)  # the registry, once: not on the loop
    except Exception as exc:  # registry away: the next check
        log.warning("hotspot alerts not sent (%s); retrying at the next check", exc)
        return
    for alert in records:
        alert_id = str(alert["alert_id"])
        try:
            key, value = _message(alert, now)
        except Exception as exc:  # refused by the contract or the alert rules: never sent
            _refused.add(alert_id)
            log.warning("hotspot alert %s refused: %s", alert_id, exc)
            continue
        try:
            await (await alert_topic.send(key=key, value=value))  # acknowledged by Kafka
        except Exception as exc:  # broker away: this and the rest at the next check
            log.warning("hotspot alert %s not sent (%s); retrying at the next check", alert_id, exc)
            return
        _sent.add(alert_id)
        log.info("hotspot alert %s: %s", alert_id, alert["headline"])
