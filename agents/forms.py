"""Form agent: `form-submission` → gov.form_submissions (latest per respondent), derived alerts
(gov.alerts / gov.alert_targets, source ``form``) and dead letters.

The topic is keyed by ``form_id:respondent`` (see CONTRACT.md), so a respondent's submissions
arrive on one partition, in order, and the ``form-latest`` table (co-partitioned with the topic)
holds their state locally: a resubmission replaces, a retry or replay changes nothing. Offsets
are acknowledged only after the rows are in ClickHouse. On startup the worker fills gov.roster
(registered population, the denominator of the completion views) from the division data.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from faust.types import EventT, StreamT

from agents.app import app, settings
from agents.reports import _headers, batches
from pipelines import alerts, contracts, deadletter, forms
from pipelines.clickhouse import get_client
from pipelines.codec import AvroDecoder, registry_fetcher
from pipelines.errors import EventError
from pipelines.sink import Batch, ClickHouseSink, TableSpec

log = logging.getLogger("govstream.agents.forms")

form_topic = app.topic(contracts.FORM_SUBMISSION, key_serializer="raw", value_serializer="raw")
dead_topic = app.topic(deadletter.TOPIC, key_serializer="raw", value_serializer="raw")

latest = app.Table(
    "form-latest",
    default=None,
    # Faust derives the changelog serializers from the types: raw keys, JSON values. (A
    # Schema(key_serializer="raw") wrote raw keys but recovery read them back as JSON, so a
    # restarted worker never finished recovery once the table held one key.)
    key_type=bytes,
    # batches are taken with noack_take, outside per-event iteration: the changelog partition
    # comes from the key, which is the message key, so it is the source event's partition
    use_partitioner=True,
)

sink = ClickHouseSink(
    lambda: get_client(settings, database=settings.clickhouse_database),
    settings.clickhouse_database,
    [
        TableSpec("form_submissions", forms.FORM_COLUMNS),
        TableSpec("alerts", alerts.ALERT_COLUMNS),
        TableSpec("alert_targets", alerts.TARGET_COLUMNS),
        TableSpec("dead_letters", deadletter.COLUMNS),
    ],
)


async def dead_letter(
    error: EventError,
    event: EventT,
    batch: Batch,
    received: datetime,
    masked: dict[str, Any] | None,
) -> Any:
    """Describe a bad event in gov.dead_letters (via the batch) and copy it to the dead-letter
    topic; returns the pending send, to await before acknowledging."""
    message = event.message
    letter = deadletter.DeadLetter.of(
        error, topic=message.topic, partition=message.partition, offset=message.offset,
        key=message.key, value=message.value, headers=_headers(message), received_at=received,
        dead_at=datetime.now(UTC), masked=masked,
    )  # fmt: skip
    log.info("dead letter %s[%d]@%d: %s", message.topic, message.partition, message.offset,
             error.reason)  # fmt: skip
    batch.add("dead_letters", letter.row())
    return await dead_topic.send(
        key=message.key, value=message.value, headers=letter.topic_headers()
    )


decoder = AvroDecoder(
    contracts.load_schema(contracts.FORM_SUBMISSION), registry_fetcher(settings.schema_registry_url)
)


def _fold(record: dict[str, Any], checked: forms.Checked, event: EventT, batch: Batch) -> None:
    """Fold one valid submission into its respondent's state and add the rows it produced."""
    message, received = event.message, datetime.now(UTC)
    entry = forms.submission(
        record, checked, salt=settings.pii_salt, partition=message.partition,
        offset=message.offset, received_at=received,
    )  # fmt: skip
    key = bytes(message.key or contracts.key_for(contracts.FORM_SUBMISSION, record).encode())
    state, outcome = forms.merge(latest.get(key), entry)
    state, alert_rows, target_rows = forms.follow_up(
        state, received_at=received, partition=message.partition, offset=message.offset
    )
    latest[key] = state
    batch.add("form_submissions", forms.form_row(state))
    for row in alert_rows:
        batch.add("alerts", row)
    for row in target_rows:
        batch.add("alert_targets", row)
    if outcome == "duplicate":
        log.debug("submission %s seen before", record["submission_id"])


async def consume(
    stream: StreamT,
    decoder: AvroDecoder,
    sink: ClickHouseSink,
    check: Callable[[dict[str, Any], datetime], Any],
    fold: Callable[[dict[str, Any], Any, EventT, Batch], None],
    mask: Callable[[dict[str, Any]], dict[str, Any]],
) -> None:
    """The loop of an agent: batches → decode → ``check`` (raises EventError, returns what
    ``fold`` needs) → dead letter, or ``fold`` into rows → sink.write → ack."""
    async for events in batches(stream):
        batch, sends = Batch(), []
        for event in events:
            message = event.message
            batch.saw(message.topic, message.partition, message.offset)
            received = datetime.now(UTC)
            record: dict[str, Any] | None = None
            try:
                record = await decoder.decode_waiting(message.value)
                checked = check(record, received)
            except EventError as error:
                masked = mask(record) if record else None
                sends.append(await dead_letter(error, event, batch, received, masked))
                continue
            fold(record, checked, event, batch)
        await sink.write(batch)
        for pending in sends:
            await pending
        for event in events:
            await stream.ack(event)


@app.agent(form_topic)
async def process_forms(stream: StreamT) -> None:
    await consume(
        stream, decoder, sink, forms.validate, _fold,
        lambda record: forms.masked_record(record, settings.pii_salt),
    )  # fmt: skip


def _load_roster_blocking() -> int:
    client = get_client(settings, database=settings.clickhouse_database)
    try:
        return forms.load_roster(client, settings.clickhouse_database)
    finally:
        client.close()


@app.task
async def load_roster() -> None:
    """Fill gov.roster on startup (idempotent), retrying while ClickHouse is unreachable."""
    delay = 0.5
    while True:
        try:
            loaded = await asyncio.to_thread(_load_roster_blocking)
        except Exception as exc:  # ClickHouse down or not migrated yet: wait, never crash
            log.warning("roster not loaded (%s); retrying in %.1f s", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)
            continue
        log.info("roster: %d divisions loaded", loaded)
        return
