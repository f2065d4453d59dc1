"""Hotspot alerts (热点预警): a leader-only timer turns the current gov.hotspots into `alert`
events (``pipelines.hotspots``).

Every ``hotspot_check_interval_s`` seconds the one worker Faust elects leader of the group
(``on_leader=True``: with several workers exactly one runs it; after a rebalance the new
leader does) reads the hotspots of the window ending today (``closedloop.hotspots``), drops
those gov.alerts already holds as hotspot alerts and those this process sent, and sends the
rest to the ``alert`` topic with the project's producer (contract and the alert rules checked
first). The alert agent then writes them like any warning (gov.alerts, gov.alert_targets), so
they count in the warning-reach views. The alert id is derived from the grid, category and
window, so neither a restart nor a second leader sends a new warning (see
``pipelines/hotspots.py``). Nothing runs with ``hotspot_alert_enabled`` false.

A failed send (broker or registry away) is logged and retried at the next check; ClickHouse
away is waited out (``with_clickhouse``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from agents.app import app, settings
from agents.common import with_clickhouse
from pipelines import closedloop, contracts, hotspots
from pipelines.producer import EventProducer

log = logging.getLogger("govstream.agents.hotspots")

_sent: set[str] = set()  # alert ids this process sent (until the alert agent has written them)


def _send(records: Sequence[dict[str, Any]]) -> None:
    """Send the alerts and wait until Kafka acknowledged them (raises when it did not)."""
    with EventProducer(settings) as producer:
        for record in records:
            producer.send(contracts.ALERT, record, validate=True)


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
    records = hotspots.hotspot_alerts(rows, sent=sent | _sent, now=datetime.now(UTC))
    if not records:
        return
    try:
        await asyncio.to_thread(_send, records)
    except Exception as exc:  # broker or registry away: the next check sends them
        log.warning("hotspot alerts not sent (%s); retrying at the next check", exc)
        return
    _sent.update(str(r["alert_id"]) for r in records)
    for record in records:
        log.info("hotspot alert %s: %s", record["alert_id"], record["headline"])
