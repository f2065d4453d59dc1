"""What every agent shares: taking batches, the one dead-letter path, the key check and the
conversion of an unexpected failure into a dead letter.

Rules (issue 13):

* a bad event is dead-lettered and the rest of its batch goes through — an :class:`EventError`
  keeps its reason code; any other exception raised while processing one event (a bug, a
  ``ValueError`` from a 4,401-digit integer string, a ``RecursionError`` from nesting) becomes
  ``processing_error`` with the exception's type and message, so one poison event never
  crashes, restarts or stalls an agent;
* an event's message key must be the contract's key (``contracts.key_for``): tables are keyed by
  it and co-partitioned with the topic, so a missing or wrong key would fold one report, form or
  warning into another's state — it is dead-lettered ``bad_key`` instead;
* the dead-letter row and the dead-letter topic copy carry the record's identity (key, value,
  timestamp), so a new bad event at a reused offset is a new row (see migration 0007).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

from faust.streams import Stream
from faust.types import EventT, StreamT

from agents.app import app, settings
from pipelines import deadletter, kafka_admin, metrics, restore
from pipelines.clickhouse import get_client
from pipelines.contracts import MAX_EVENT_BYTES, check_event_size, check_key
from pipelines.errors import PROCESSING_ERROR, EventError, as_event_error
from pipelines.pii import scrub_text
from pipelines.sink import Batch, TableSpec, record_identity

log = logging.getLogger("govstream.agents")
T = TypeVar("T")


dead_topic = app.topic(deadletter.TOPIC, key_serializer="raw", value_serializer="raw")


@dataclass(frozen=True)
class Source:
    """A message-like description of a record kept for later (a buffered handling step that
    is dead-lettered when its wait expires): what :func:`dead_letter` reads of a message."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: float | None = None
    headers: tuple[tuple[str, bytes], ...] = ()


def batches(stream: StreamT) -> Any:
    """Up to sink_batch_rows events, or what arrived within sink_flush_s; acked by the caller."""
    return cast(Stream, stream).noack_take(settings.sink_batch_rows, within=settings.sink_flush_s)


def headers_of(message: Any) -> list[tuple[str, bytes]]:
    """A message's headers as (name, bytes) pairs, whatever shape the transport gave them in."""
    headers = message.headers or []
    items = headers.items() if isinstance(headers, dict) else headers
    return [(str(k), bytes(v or b"")) for k, v in items]


def identity_of(message: Any) -> bytes:
    """The source record's identity bytes (key, value, timestamp): see sink.record_identity."""
    return record_identity(message.key, message.value, message.timestamp)


def safe_mask(
    mask: Callable[[dict[str, Any]], dict[str, Any]], record: dict[str, Any] | None
) -> dict[str, Any] | None:
    """The masked record for a dead letter, or None (then only masked bytes are kept) when the
    record did not decode or masking itself fails on it."""
    if record is None:
        return None
    try:
        return mask(record)
    except Exception:  # a record poisonous enough to break masking: keep its masked bytes
        return None


async def dead_letter(
    agent: str,
    error: EventError,
    message: Any,
    batch: Batch,
    received: datetime,
    masked: dict[str, Any] | None,
    *,
    key: bytes | None = None,
    value: bytes | None = None,
    headers: list[tuple[str, bytes]] | None = None,
    identity: bytes | None = None,
) -> Awaitable[Any]:
    """Describe a bad event in gov.dead_letters (through ``batch``) and copy it to the
    dead-letter topic as it came; returns the pending send, to await before acknowledging.

    ``key``/``value``/``headers``/``identity`` default to the message's own (a buffered step
    that expires is dead-lettered later from the bytes it kept)."""
    key = message.key if key is None else key
    value = message.value if value is None else value
    letter = deadletter.DeadLetter.of(
        error, topic=message.topic, partition=message.partition, offset=message.offset,
        key=key, value=value,
        headers=headers_of(message) if headers is None else headers, received_at=received,
        dead_at=datetime.now(UTC), masked=masked,
        identity=identity_of(message) if identity is None else identity,
    )  # fmt: skip
    shown_key = scrub_text((key or b"")[:80].decode("utf-8", "replace"))  # form_id:<person>
    log.info(
        "dead letter %s[%d]@%d key=%s: %s: %s", message.topic, message.partition,
        message.offset, shown_key, error.reason, error.message,
    )  # fmt: skip
    batch.add("dead_letters", letter.row())
    batch.add(deadletter.PAYLOAD_TABLE, letter.payload_row())
    metrics.DEAD_LETTERS.labels(agent, error.reason).inc()
    return await send_copy(letter)


async def send_copy(letter: deadletter.DeadLetter) -> Awaitable[Any]:
    """Copy a dead letter's record to the dead-letter topic as it came (cut to the contract's
    size limit, with a ``dlq.truncated_from`` header, so the copy fits the broker); returns
    the pending send."""
    headers, value = letter.topic_headers(), letter.value
    if value is not None and len(value) > MAX_EVENT_BYTES:
        headers.append(("dlq.truncated_from", str(len(value)).encode()))
        value = value[:MAX_EVENT_BYTES]
    return cast(Awaitable[Any], await dead_topic.send(key=letter.key, value=value, headers=headers))


async def write(agent: str, sink: Any, batch: Batch) -> list[Awaitable[Any]]:
    """``sink.write(batch)``, then the dead-letter copies of the rows ClickHouse refused for
    good (the sink wrote their dead-letter rows itself); returns the pending sends, to await
    before acknowledging."""
    sends = []
    for letter in await sink.write(batch):
        metrics.DEAD_LETTERS.labels(agent, letter.reason).inc()
        sends.append(await send_copy(letter))
    return sends


#: The dead-letter tables every agent's sink writes (the analysts' masked rows, the
#: writer-only original bytes).
DEAD_LETTER_TABLES = (
    TableSpec("dead_letters", deadletter.COLUMNS),
    TableSpec(deadletter.PAYLOAD_TABLE, deadletter.PAYLOAD_COLUMNS),
)


def saw(batch: Batch, event: EventT) -> None:
    """Record the event's offset and identity in the batch, and count it in."""
    message = event.message
    batch.saw(message.topic, message.partition, message.offset, identity_of(message))


#: Processes one decoded event: checks it (raising EventError or anything else for a bad one)
#: and folds it into its table and the batch's rows.
Process = Callable[[dict[str, Any], EventT, Batch, datetime], None]
#: Puts back, before a batch is applied, the table state its events need and the table lost.
Restore = Callable[[list[tuple[EventT, dict[str, Any]]]], Awaitable[None]]


async def decode(decoder: Any, message: Any) -> dict[str, Any]:
    """The message's record: its size checked against the contract's limit (``event_too_large``
    past ``contracts.MAX_EVENT_BYTES``), then decoded, waiting out an unreachable registry."""
    check_event_size(message.value, message.key)
    return cast(dict[str, Any], await decoder.decode_waiting(message.value))


async def with_clickhouse(query: Callable[[Any], T], what: str) -> T:
    """Run ``query(client)`` in a thread with a fresh writer client, waiting out an
    unreachable ClickHouse with capped exponential backoff (as the sink does)."""

    def blocking() -> T:
        client = get_client(settings, database=settings.clickhouse_database)
        try:
            return query(client)
        finally:
            client.close()

    delay = 0.5
    while True:
        try:
            return await asyncio.to_thread(blocking)
        except Exception as exc:  # ClickHouse away: wait, never drop the batch
            log.warning("%s failed (%s); retrying in %.1f s", what, exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)


class LostState:
    """Which partitions of an agent's table lost their state (pipelines/restore.py): the
    changelog partition is empty while ClickHouse holds rows that came from that source
    partition (the embedded broker restarted, a changelog topic was recreated). Asked once
    per partition per worker process; the agent restores missing keys only there, so a
    worker whose tables recovered normally never queries ClickHouse for them."""

    def __init__(
        self,
        table: Any,
        source_table: str,
        held: Callable[[Any, str, list[int]], set[int]] | None = None,
    ) -> None:
        self.table = table
        self.source_table = source_table  # the ClickHouse table with source_partition
        #: (client, database, partitions) → those ClickHouse holds rows of; default: by the
        #: source table's source_partition column
        self.held = held or (
            lambda c, db, ps: restore.partitions_with_rows(c, db, self.source_table, ps)
        )
        self._lost: dict[int, bool] = {}

    async def lost(self, partitions: Iterable[int]) -> set[int]:
        """The partitions among ``partitions`` whose table state was lost."""
        wanted = set(partitions)
        unknown = sorted(wanted - set(self._lost))
        if unknown:
            topic = self.table.changelog_topic.get_topic_name()
            ends = await asyncio.to_thread(
                kafka_admin.log_end_offsets, settings, [(topic, p) for p in unknown]
            )
            empty = [p for p in unknown if ends.get((topic, p), 0) == 0]
            held: set[int] = set()
            if empty:
                db = settings.clickhouse_database
                held = await with_clickhouse(
                    lambda c: self.held(c, db, empty),
                    f"checking {topic} against ClickHouse",
                )
            for p in unknown:
                self._lost[p] = p in held
                if p in held:
                    log.warning(
                        "%s[%d] is empty but ClickHouse holds rows of partition %d: its keys "
                        "are restored from ClickHouse as events need them", topic, p, p,
                    )  # fmt: skip
        return {p for p in wanted if self._lost[p]}


async def put_back(
    table: Any,
    wanted: Mapping[Any, bytes],
    query: Callable[[Any, str, list[Any]], Mapping[Any, Any]],
    what: str,
) -> int:
    """Restore lost table state from ClickHouse: ``query(client, database, ids)`` rebuilds
    the states of the ids it finds (``pipelines.restore``), each is put back under the
    table key ``wanted[id]``. Returns how many were restored."""
    if not wanted:
        return 0
    db, ids = settings.clickhouse_database, list(wanted)
    states = await with_clickhouse(lambda client: query(client, db, ids), f"restoring {what}")
    for found, state in states.items():
        table[wanted[found]] = state
    if states:
        log.info("restored %d %s from ClickHouse", len(states), what)
    return len(states)


async def consume(
    stream: StreamT,
    agent: str,
    decoder: Any,
    sink: Any,
    process: Process,
    mask: Callable[[dict[str, Any]], dict[str, Any]],
    restore: Restore | None = None,
) -> None:
    """The loop of the form and alert agents: batches → decode → ``restore`` lost table
    state → key check → ``process`` → dead letter on any failure of one event →
    sink.write → dead-letter sends → ack.

    Offsets are acknowledged only after the batch's rows are in ClickHouse and its dead-letter
    copies are acknowledged by Kafka."""
    async for events in batches(stream):
        batch, sends = Batch(), cast(list[Any], [])
        decoded: list[tuple[EventT, dict[str, Any], datetime]] = []
        for event in events:
            message = event.message
            metrics.EVENTS_IN.labels(agent, message.topic).inc()
            saw(batch, event)
            received = datetime.now(UTC)
            try:
                decoded.append((event, await decode(decoder, message), received))
            except Exception as exc:  # not an event of this topic: dead-lettered
                sends.append(await failed(agent, exc, message, batch, received, None))
        if restore is not None:
            await restore([(event, record) for event, record, _ in decoded])
        for event, record, received in decoded:
            message = event.message
            try:
                check_key(message.topic, message.key, record)
                process(record, event, batch, received)
            except Exception as exc:  # one bad event never stops the stream
                sends.append(
                    await failed(agent, exc, message, batch, received, safe_mask(mask, record))
                )
        sends += await write(agent, sink, batch)
        metrics.record_written(agent, batch.rows, (e.message.timestamp for e in events))
        for pending in sends:
            await pending
        for event in events:
            await stream.ack(event)
        metrics.progressed(agent)


async def failed(
    agent: str,
    exc: Exception,
    message: Any,
    batch: Batch,
    received: datetime,
    masked: dict[str, Any] | None,
) -> Awaitable[Any]:
    """Dead-letter one event whose processing raised ``exc``; returns the pending send. An
    unexpected exception (not an EventError) is also logged as a warning."""
    error = as_event_error(exc)
    if error.reason == PROCESSING_ERROR:
        log.warning("%s[%d]@%d failed: %s", message.topic, message.partition, message.offset,
                    error.message)  # fmt: skip
    return await dead_letter(agent, error, message, batch, received, masked)
