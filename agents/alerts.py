"""Alert agent: `alert` → gov.alerts (one row per warning, current state), gov.alert_targets
(one row per village/community reached) and dead letters.

The topic is keyed by the root alert id (see CONTRACT.md), so every message of a warning
arrives on one partition, in order, and the ``alert-state`` table (co-partitioned with the
topic) holds the warning's state: Update and Cancel supersede what they reference. Offsets are
acknowledged only after the rows are in ClickHouse.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from faust.types import EventT, StreamT

from agents.app import app, settings
from agents.common import DEAD_LETTER_TABLES, LostState, consume, put_back
from pipelines import alerts, contracts, restore
from pipelines.clickhouse import get_client
from pipelines.codec import AvroDecoder, registry_fetcher
from pipelines.sink import Batch, ClickHouseSink, TableSpec

log = logging.getLogger("govstream.agents.alerts")

alert_topic = app.topic(contracts.ALERT, key_serializer="raw", value_serializer="raw")

state_table = app.Table(
    "alert-state",
    default=None,
    # Faust derives the changelog serializers from the types: raw keys, JSON values. (A
    # Schema(key_serializer="raw") wrote raw keys but recovery read them back as JSON, so a
    # restarted worker never finished recovery once the table held one key.)
    key_type=bytes,
    use_partitioner=True,  # keyed by the message key (the root id): the source partition
)

sink = ClickHouseSink(
    lambda: get_client(settings, database=settings.clickhouse_database),
    settings.clickhouse_database,
    [
        TableSpec("alerts", alerts.ALERT_COLUMNS),
        TableSpec("alert_targets", alerts.TARGET_COLUMNS),
        *DEAD_LETTER_TABLES,
    ],
)
decoder = AvroDecoder(
    contracts.load_schema(contracts.ALERT), registry_fetcher(settings.registry_config())
)


def _process(record: dict[str, Any], event: EventT, batch: Batch, received: datetime) -> None:
    """Check one message (raises EventError) and fold it into its warning's state and the
    batch's rows."""
    alerts.validate(record, received)
    message = event.message
    key = bytes(message.key or b"")  # the root alert id: agents.common.check_key
    state, change = alerts.apply(
        state_table.get(key), record, received_at=received,
        partition=message.partition, offset=message.offset,
    )  # fmt: skip
    state_table[key] = state
    batch.add("alerts", alerts.alert_row(state), source=message)
    for row in alerts.target_rows(state, change.lifted):
        batch.add("alert_targets", row, source=message)
    log.debug("alert %s: %s", record["alert_id"], change.outcome)


_lost = LostState(state_table, "alerts")


async def _restore(decoded: list[tuple[EventT, dict[str, Any]]]) -> None:
    """Put back from ClickHouse the warnings an Update or Cancel of this batch refers to and
    the table lost (its changelog was lost, see pipelines/restore.py)."""
    lost = await _lost.lost({event.message.partition for event, _ in decoded})
    wanted = {
        bytes(event.message.key).decode("utf-8", "replace"): bytes(event.message.key)
        for event, record in decoded
        if event.message.partition in lost and record.get("references") and event.message.key
        and state_table.get(bytes(event.message.key)) is None
    }  # fmt: skip
    await put_back(state_table, wanted, restore.alert_states, "warnings")


@app.agent(alert_topic)
async def process_alerts(stream: StreamT) -> None:
    await consume(stream, "process_alerts", decoder, sink, _process, alerts.masked_record, _restore)
