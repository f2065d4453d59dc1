"""Report agents: `report` → work orders (gov.reports), steps (gov.work_order_events) and
dead letters; 并单 merging on a table keyed by category and community.

Two hops so that merging is correct with any number of workers: the first agent validates,
classifies, routes and masks each report and sends the work order to `report-routed`, keyed by
(category, community); the second owns that key's table partition, links duplicates and
inserts the rows. Offsets of either topic are acknowledged only after the rows they produced
are in ClickHouse (and the forwarded messages are acknowledged by Kafka).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any, cast

from faust.streams import Stream
from faust.types import EventT, StreamT

from agents.app import app, settings
from pipelines import contracts, deadletter, metrics, reports
from pipelines.clickhouse import get_client
from pipelines.codec import AvroDecoder, RegistryUnavailable, registry_fetcher
from pipelines.errors import EventError
from pipelines.sink import Batch, ClickHouseSink, TableSpec

log = logging.getLogger("govstream.agents.reports")

report_topic = app.topic(contracts.REPORT, key_serializer="raw", value_serializer="raw")
routed_topic = app.topic(
    "report-routed",
    key_serializer="raw",
    value_serializer="json",
    internal=True,  # Faust creates it with the app's partition count
    partitions=settings.topic_partitions,
)
dead_topic = app.topic(deadletter.TOPIC, key_serializer="raw", value_serializer="raw")

open_orders = app.Table(
    "open-orders",
    default=list,
    key_type=bytes,  # Faust derives changelog serializers from types: raw keys, JSON values
    use_partitioner=True,  # key → partition exactly as report-routed is keyed
)

sink = ClickHouseSink(
    lambda: get_client(settings, database=settings.clickhouse_database),
    settings.clickhouse_database,
    [
        TableSpec("reports", reports.REPORT_COLUMNS),
        TableSpec("work_order_events", reports.STEP_COLUMNS),
        TableSpec("dead_letters", deadletter.COLUMNS),
    ],
)
decoder = AvroDecoder(
    contracts.load_schema(contracts.REPORT), registry_fetcher(settings.schema_registry_url)
)


async def decode(value: bytes | None) -> dict[str, Any]:
    """Decode, waiting out an unreachable registry (a good event is never dead-lettered)."""
    delay = 0.5
    while True:
        try:
            return await decoder.decode_async(value)
        except RegistryUnavailable as exc:
            log.warning("%s; retrying in %.1f s", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)


def _headers(message: Any) -> list[tuple[str, bytes]]:
    headers = message.headers or []
    items = headers.items() if isinstance(headers, dict) else headers
    return [(str(k), bytes(v or b"")) for k, v in items]


def batches(stream: StreamT) -> Any:
    """Up to sink_batch_rows events, or what arrived within sink_flush_s; acked by the caller."""
    return cast(Stream, stream).noack_take(settings.sink_batch_rows, within=settings.sink_flush_s)


@app.agent(report_topic)
async def process_reports(stream: StreamT) -> None:
    async for events in batches(stream):
        batch, sends = Batch(), []
        for event in events:
            message = event.message
            metrics.EVENTS_IN.labels("process_reports", message.topic).inc()  # metrics
            batch.saw(message.topic, message.partition, message.offset)
            received = datetime.now(UTC)
            record: dict[str, Any] | None = None
            try:
                record = await decode(message.value)
                reports.validate(record, received)
            except EventError as error:
                masked = reports.masked_record(record, settings.pii_salt) if record else None
                letter = deadletter.DeadLetter.of(
                    error, topic=message.topic, partition=message.partition,
                    offset=message.offset, key=message.key, value=message.value,
                    headers=_headers(message), received_at=received,
                    dead_at=datetime.now(UTC), masked=masked,
                )  # fmt: skip
                log.info("dead letter %s[%d]@%d: %s", message.topic, message.partition,
                         message.offset, error.reason)  # fmt: skip
                batch.add("dead_letters", letter.row())
                metrics.DEAD_LETTERS.labels("process_reports", error.reason).inc()  # metrics
                sends.append(
                    await dead_topic.send(
                        key=message.key, value=message.value, headers=letter.topic_headers()
                    )
                )
                continue
            if record["action"] == "SUBMIT":
                order = reports.work_order(
                    record, salt=settings.pii_salt, partition=message.partition,
                    offset=message.offset, received_at=received,
                    produced_at=datetime.fromtimestamp(message.timestamp, UTC),
                )  # fmt: skip
                key = reports.dedupe_key(order["category"]["code"], order["region_code"])
                metrics.CLASSIFIED.labels(order["category"]["code"]).inc()  # metrics
                sends.append(await routed_topic.send(key=key.encode(), value=order))
            else:
                batch.add(
                    "work_order_events",
                    reports.step_row(
                        record, salt=settings.pii_salt, partition=message.partition,
                        offset=message.offset, received_at=received,
                    ),
                )  # fmt: skip
        await sink.write(batch)
        metrics.record_written(  # metrics
            "process_reports", batch.rows, (e.message.timestamp for e in events)
        )
        for pending in sends:
            await pending
        for event in events:
            await stream.ack(event)


def _link(event: EventT) -> list[Any]:
    """Link one routed work order to the first open order at the same place, or open it."""
    order = cast(dict[str, Any], event.value)
    key = bytes(cast(bytes, event.key))  # bytes, as the raw changelog gives them back on recovery
    opened = open_orders[key]
    duplicate_of = reports.find_duplicate(
        opened, order, settings.duplicate_window_s, settings.duplicate_distance_m
    )
    if duplicate_of is None:
        open_orders[key] = reports.remember(opened, order, settings.duplicate_window_s)
    return reports.report_row(order, duplicate_of)


@app.agent(routed_topic)
async def link_work_orders(stream: StreamT) -> None:
    async for events in batches(stream):
        batch = Batch()
        for event in events:
            batch.saw(event.message.topic, event.message.partition, event.message.offset)
            batch.add("reports", _link(event))
        await sink.write(batch)
        metrics.EVENTS_IN.labels("link_work_orders", routed_topic.get_topic_name()).inc(  # metrics
            len(events)
        )
        metrics.record_written(  # metrics
            "link_work_orders", batch.rows, (e.message.timestamp for e in events)
        )
        for event in events:
            await stream.ack(event)
