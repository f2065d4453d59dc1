"""The ClickHouse sink: batched, idempotent inserts; transient failures retried, refused rows
dead-lettered.

Rows are collected per table for a batch of source events; each insert carries an
``insert_deduplication_token`` derived from the table, the source offsets it covers *and the
content of the source records* (key, value, timestamp), so a retried insert of the same batch is
dropped by ClickHouse while another batch at the same offsets — after the broker's offsets
started again (a restarted embedded broker, a recreated topic) — is not; the tables are
ReplacingMergeTree keyed by the event's identity, so a replay that batches differently still
leaves one row per event (``FINAL`` or a merge collapses it). The caller acknowledges the
source offsets only after :meth:`ClickHouseSink.write` returned: offsets are never committed
ahead of the data.

Failures are typed (:func:`is_refusal`, issue 16 item 5):

* **transient** — the network, an overloaded or read-only server, a replica without Keeper, a
  table or user not there yet (:data:`RETRIED_CODES`, or no server code at all): the insert is
  retried with exponential backoff (capped) for as long as it takes. The batch is never dropped
  and :meth:`write` never returns early, which stops the agent from fetching more
  (backpressure).
* **refused** — any other ClickHouse error code (a CHECK constraint, a value out of a column's
  range, …) or a row the client cannot serialize to its column type: the rows are split in
  halves until the refused ones are found (one insert per half, so ``k`` bad rows among ``n``
  cost about ``2·k·log2(n)`` inserts); the others land, and each refused row becomes a dead
  letter (:data:`REFUSED`, the server's message) in the same write, for its source record when
  the agent gave one (``batch.add(table, row, source=message)``). :meth:`write` returns those
  dead letters so the agent can copy them to the dead-letter topic before acknowledging.

An insert of one table is one block (a batch is far below ``max_insert_block_size``, 1,048,449
rows), which ClickHouse writes atomically: a refused insert leaves nothing behind.

A table's column types are read from the server once (clickhouse-connect's insert context) and
passed with every later insert of it, instead of clickhouse-connect asking the server before
each insert (one HTTP request more per table and batch: 3 % of a form worker's CPU, measured
with py-spy; on the embedded endpoint a 20-row insert took 20 ms with the request, 15.5 ms
without). Any failed insert forgets them, so the retry, or the halves of a refused batch,
are sent with the types the table has then (a column changed by a migration while the worker
runs cannot make good rows look refused).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import struct
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from clickhouse_connect.driver import exceptions as ch_errors
from clickhouse_connect.driver.client import Client

from pipelines import metrics
from pipelines.deadletter import PAYLOAD_TABLE, DeadLetter
from pipelines.errors import EventError

log = logging.getLogger("govstream.sink")

#: Dead-letter reason of a row ClickHouse refused for good (gov.dead_letters.reason).
REFUSED = "rejected_by_clickhouse"
#: The table dead letters go to (migration 0001), with their payloads in PAYLOAD_TABLE.
DEAD_LETTERS_TABLE = "dead_letters"

#: ClickHouse error codes that say "not now" rather than "not this row": the insert is retried.
#: Names and numbers from ClickHouse's ``src/Common/ErrorCodes.cpp``, checked with
#: ``errorCodeToName`` on chDB 4.4 (ClickHouse 26.x). Overload and timeouts: 159
#: TIMEOUT_EXCEEDED, 201 QUOTA_EXCEEDED, 202 TOO_MANY_SIMULTANEOUS_QUERIES, 203
#: NO_FREE_CONNECTION, 241 MEMORY_LIMIT_EXCEEDED, 252 TOO_MANY_PARTS, 439 CANNOT_SCHEDULE_TASK.
#: Network and shutdown: 209 SOCKET_TIMEOUT, 210 NETWORK_ERROR, 236 ABORTED, 279
#: ALL_CONNECTION_TRIES_FAILED, 394 QUERY_WAS_CANCELLED, 425 SYSTEM_ERROR. Replication and
#: Keeper: 225 NO_ZOOKEEPER, 242 TABLE_IS_READ_ONLY, 285 TOO_FEW_LIVE_REPLICAS, 286
#: UNSATISFIED_QUORUM_FOR_PREVIOUS_WRITE, 319 UNKNOWN_STATUS_OF_INSERT, 415 ALL_REPLICAS_LOST,
#: 999 KEEPER_EXCEPTION. Set-up, which no row causes and an operator fixes (splitting the batch
#: would refuse every row): 16 NO_SUCH_COLUMN_IN_TABLE, 60 UNKNOWN_TABLE, 81 UNKNOWN_DATABASE,
#: 164 READONLY, 192 UNKNOWN_USER, 497 ACCESS_DENIED, 516 AUTHENTICATION_FAILED.
RETRIED_CODES: frozenset[int] = frozenset(
    {159, 201, 202, 203, 241, 252, 439}
    | {209, 210, 236, 279, 394, 425}
    | {225, 242, 285, 286, 319, 415, 999}
    | {16, 60, 81, 164, 192, 497, 516}
)

#: Errors clickhouse-connect raises while serializing a row to its column types, before anything
#: is sent (a str for an Int32, an int out of range, …): the row is refused, like a server code.
_CLIENT_REFUSALS = (ch_errors.DataError, TypeError, ValueError, OverflowError, struct.error)
_URL_SUFFIX = re.compile(r"\s*\(for url [^)]*\)\s*$")


def is_refusal(exc: BaseException) -> bool:
    """True when ``exc`` refuses the rows for good (split the batch), False when the insert
    should be retried as it is: a server error code outside :data:`RETRIED_CODES`, or a row the
    client could not serialize (``DataError``, ``TypeError``, ``ValueError``, ``OverflowError``,
    ``struct.error``), is a refusal; a code in the list, a server error without a code (HTTP
    5xx from a proxy), a network error (clickhouse-connect's ``OperationalError``, ``OSError``)
    or anything else is transient."""
    if isinstance(exc, ch_errors.DataError):
        return True
    if isinstance(exc, ch_errors.Error):  # DatabaseError and OperationalError carry .code
        code = exc.code
        return code is not None and code not in RETRIED_CODES
    return isinstance(exc, _CLIENT_REFUSALS)  # OSError (network) is not among them


def server_message(exc: BaseException) -> str:
    """The server's (or serializer's) words for a refusal, without the client's request URL."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return _URL_SUFFIX.sub("", text)[:1500]


class SourceRecord(Protocol):
    """What the sink reads of a row's source record to dead-letter it: a Faust message, or any
    object with these attributes (agents/common.py ``Source``)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def timestamp(self) -> float | None: ...
    @property
    def headers(self) -> Any: ...


@dataclass(frozen=True)
class TableSpec:
    """A sink table: its name (without database) and the columns rows are given in."""

    name: str
    columns: tuple[str, ...]


@dataclass
class Batch:
    """Rows for several tables, produced from a run of source offsets."""

    rows: dict[str, list[Sequence[Any]]] = field(default_factory=lambda: defaultdict(list))
    offsets: dict[tuple[str, int], tuple[int, int]] = field(default_factory=dict)
    content: Any = field(default_factory=hashlib.sha256)  # of every source record seen
    #: per table, the source record of each row (None when the agent gave none), rows' order
    sources: dict[str, list[SourceRecord | None]] = field(default_factory=lambda: defaultdict(list))

    def add(self, table: str, row: Sequence[Any], *, source: SourceRecord | None = None) -> None:
        """Add ``row`` (in the table's column order) to ``table``'s insert. ``source`` is the
        record the row came from: when ClickHouse refuses the row for good, that record is
        dead-lettered (without it, the row itself is, under the pseudo-topic ``sink:<table>``)."""
        self.rows[table].append(row)
        self.sources[table].append(source)

    def saw(self, topic: str, partition: int, offset: int, content: bytes = b"") -> None:
        """Record that the batch covers this source offset, whose record is ``content``
        (its key, value and timestamp; see :func:`record_identity`)."""
        key = (topic, partition)
        low, high = self.offsets.get(key, (offset, offset))
        self.offsets[key] = (min(low, offset), max(high, offset))
        self.content.update(len(content).to_bytes(8, "big"))
        self.content.update(content)

    def token(self, table: str) -> str:
        """Deduplication token of this table's insert: table, every source offset range and
        the digest of the source records, so equal offsets with other records differ."""
        ranges = ",".join(f"{t}/{p}/{lo}-{hi}" for (t, p), (lo, hi) in sorted(self.offsets.items()))
        digest = self.content.hexdigest()
        return hashlib.sha256(f"{table}|{ranges}|{digest}".encode()).hexdigest()[:32]

    def source_of(self, table: str, index: int) -> SourceRecord | None:
        """The source record of ``table``'s row number ``index`` (None when not given)."""
        sources = self.sources.get(table, [])
        return sources[index] if index < len(sources) else None

    def __len__(self) -> int:
        return sum(len(r) for r in self.rows.values())


def record_identity(key: bytes | None, value: bytes | None, timestamp: float | None) -> bytes:
    """The bytes that identify a source record apart from its offset: key, value and record
    timestamp (a replay of the record gives the same bytes; a new record at a reused offset
    does not, unless it repeats key, value and timestamp to the millisecond)."""
    ts = b"" if timestamp is None else repr(round(timestamp, 3)).encode()
    k, v = key or b"", value or b""
    return b"".join((len(k).to_bytes(4, "big"), k, len(v).to_bytes(4, "big"), v, ts))


@dataclass
class SinkStats:
    batches: int = 0
    rows: int = 0
    retries: int = 0
    refused: int = 0
    last_insert_s: float = 0.0


class ClickHouseSink:
    """Insert a :class:`Batch` into its tables: transient failures retried forever with
    backoff, refused rows found by splitting and dead-lettered (see the module docstring).

    Refused rows are dead-lettered into the ``dead_letters`` table (and ``dead_letter_payloads``)
    when those are among ``tables``; without them a refused row is logged and counted only."""

    def __init__(
        self,
        client_factory: Callable[[], Client],
        database: str,
        tables: Iterable[TableSpec],
        *,
        backoff_initial_s: float = 0.2,
        backoff_max_s: float = 5.0,
    ) -> None:
        self._factory = client_factory
        self._local = threading.local()  # one client per thread: inserts run in executor threads
        self.database = database
        self.tables = {t.name: t for t in tables}
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.stats = SinkStats()
        self._column_types: dict[str, Sequence[Any]] = {}  # table → as the server gave them

    # --- one insert ---------------------------------------------------------------------

    def _client(self) -> Client:
        client: Client | None = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = self._factory()
        return client

    def _insert(self, table: str, rows: Sequence[Sequence[Any]], token: str) -> None:
        client, name = self._client(), f"{self.database}.{table}"
        columns = list(self.tables[table].columns)
        types = self._column_types.get(table)
        if types is None:  # the table's types as the server tells them (one DESCRIBE)
            types = client.create_insert_context(name, columns).column_types
            self._column_types[table] = types
        client.insert(
            name,
            list(rows),
            column_names=columns,
            column_types=types,
            settings={"insert_deduplication_token": token},
        )

    def _land(
        self, table: str, rows: Sequence[Sequence[Any]], token: str, should_stop: Callable[[], bool]
    ) -> BaseException | None:
        """Insert ``rows`` into ``table``, retrying transient failures with backoff until it
        lands (None) or is refused (the error). Raises the failure when should_stop()."""
        delay = self.backoff_initial_s
        while True:
            started = time.perf_counter()
            try:
                self._insert(table, rows, token)
                self._local.landed_s = self._landed_s() + time.perf_counter() - started
                return None
            except Exception as exc:
                self._column_types.pop(table, None)  # the next try reads them again
                if is_refusal(exc):
                    return exc
                self.stats.retries += 1
                metrics.SINK_RETRIES.inc()
                self._local.client = None
                if should_stop():
                    raise
                log.warning(
                    "insert of %d rows into %s failed (%s); retrying in %.1f s",
                    len(rows), table, exc, delay,
                )  # fmt: skip
                time.sleep(delay)
                delay = min(delay * 2, self.backoff_max_s)

    def _landed_s(self) -> float:
        """Seconds this thread's write spent in inserts that landed (failed tries and backoff
        sleeps not counted): what ``govstream_sink_insert_seconds`` observes per write."""
        return float(getattr(self._local, "landed_s", 0.0))

    def _land_all(
        self, table: str, rows: Sequence[Sequence[Any]], token: str, should_stop: Callable[[], bool]
    ) -> list[tuple[int, BaseException]]:
        """Land what ClickHouse takes of ``rows``; returns (row index, refusal) of each row it
        refused. One insert when all is well; on a refusal, halves are tried in turn (a slice
        ``lo+n`` carries the token ``<token>/<lo>+<n>``, the same on a replay) down to the rows
        that ClickHouse refuses alone."""
        error = self._land(table, rows, token, should_stop)
        if error is None:
            return []
        refused: list[tuple[int, BaseException]] = []
        pending = [(0, len(rows), error)]
        while pending:
            lo, n, error = pending.pop()
            if n == 1:
                refused.append((lo, error))
                continue
            half = n // 2
            for start, size in ((lo + half, n - half), (lo, half)):  # popped low half first
                part_error = self._land(
                    table, rows[start : start + size], f"{token}/{start}+{size}", should_stop
                )
                if part_error is not None:
                    pending.append((start, size, part_error))
        return sorted(refused, key=lambda item: item[0])

    # --- dead letters of refused rows ----------------------------------------------------

    def _letter(self, batch: Batch, table: str, index: int, error: BaseException) -> DeadLetter:
        row = batch.rows[table][index]
        masked = dict(zip(self.tables[table].columns, row, strict=False))
        message = f"{table}: ClickHouse refused the row: {server_message(error)}"
        now = datetime.now(UTC)
        source = batch.source_of(table, index)
        if source is None:  # the row alone is what we have: it becomes the "record"
            value = json.dumps(masked, ensure_ascii=False, default=str).encode()
            return DeadLetter(
                f"sink:{table}", 0, 0, None, value, [], REFUSED, message, now, now, masked,
                record_identity(None, value, None),
            )  # fmt: skip
        return DeadLetter.of(
            EventError(REFUSED, message), topic=source.topic, partition=source.partition,
            offset=source.offset, key=source.key, value=source.value,
            headers=_headers(source.headers), received_at=now, dead_at=now, masked=masked,
            identity=record_identity(source.key, source.value, source.timestamp),
        )  # fmt: skip

    # --- a batch --------------------------------------------------------------------------

    def write_blocking(
        self, batch: Batch, should_stop: Callable[[], bool] = lambda: False
    ) -> list[DeadLetter]:
        """Insert every table of the batch: retried until it lands (or should_stop, which
        raises the last failure), refused rows dead-lettered in the same write. Returns the
        dead letters of the refused rows (one per source record), for the dead-letter topic."""
        self._local.landed_s = 0.0
        letters: dict[tuple[str, int, int, bytes], DeadLetter] = {}
        refused_dead = 0
        dead_tables = (DEAD_LETTERS_TABLE, PAYLOAD_TABLE)
        tables = [t for t, rows in batch.rows.items() if rows and t not in dead_tables]
        for table in tables:
            for index, error in self._land_all(table, batch.rows[table], batch.token(table),
                                               should_stop):  # fmt: skip
                letter = self._letter(batch, table, index, error)
                log.error("%s[%d]@%d: %s", letter.topic, letter.partition, letter.offset,
                          letter.message)  # fmt: skip
                metrics.SINK_REFUSED_ROWS.labels(table).inc()
                self.stats.refused += 1
                letters.setdefault((letter.topic, letter.partition, letter.offset,
                                    letter.identity), letter)  # fmt: skip
        new = list(letters.values())
        for table, make in (
            (DEAD_LETTERS_TABLE, DeadLetter.row),
            (PAYLOAD_TABLE, DeadLetter.payload_row),
        ):
            rows = [*batch.rows.get(table, []), *(make(letter) for letter in new)]
            if not rows:
                continue
            if table not in self.tables:
                if new and table == DEAD_LETTERS_TABLE:
                    log.error("%d refused rows have no dead-letter table in this sink", len(new))
                continue
            token = batch.token(table) + (f"+{len(new)}" if new else "")
            for index, error in self._land_all(table, rows, token, should_stop):
                refused_dead += 1  # nothing further to write it to: said loudly, then dropped
                metrics.SINK_REFUSED_ROWS.labels(table).inc()
                log.error("%s row %d refused and dropped: %s", table, index, server_message(error))
        elapsed = self._landed_s()
        self.stats.batches += 1
        self.stats.rows += len(batch)
        self.stats.refused += refused_dead
        self.stats.last_insert_s = elapsed
        metrics.SINK_INSERT_SECONDS.observe(elapsed)
        for table, rows in batch.rows.items():
            metrics.SINK_BATCH_ROWS.labels(table).observe(len(rows))
        return new

    async def write(
        self, batch: Batch, should_stop: Callable[[], bool] = lambda: False
    ) -> list[DeadLetter]:
        """:meth:`write_blocking` in a thread, so the event loop keeps heartbeating; returns
        the dead letters of refused rows (the caller copies them to the dead-letter topic)."""
        if not len(batch):
            return []
        return await asyncio.to_thread(self.write_blocking, batch, should_stop)


def _headers(headers: Any) -> list[tuple[str, bytes]]:
    """A record's headers as (name, bytes) pairs, whatever shape the transport gave them in."""
    items = headers.items() if isinstance(headers, dict) else (headers or [])
    return [(str(k), bytes(v or b"")) for k, v in items]
