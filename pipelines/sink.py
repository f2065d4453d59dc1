"""The ClickHouse sink: batched, idempotent inserts, retried until they succeed.

Rows are collected per table for a batch of source events; each insert carries an
``insert_deduplication_token`` derived from the table, the source offsets it covers *and the
content of the source records* (key, value, timestamp), so a retried insert of the same batch is
dropped by ClickHouse while another batch at the same offsets — after the broker's offsets
started again (a restarted embedded broker, a recreated topic) — is not; the tables are
ReplacingMergeTree keyed by the event's identity, so a replay that batches differently still
leaves one row per event (``FINAL`` or a merge collapses it). The caller acknowledges the
source offsets only after :meth:`ClickHouseSink.write` returned: offsets are never committed
ahead of the data.

When ClickHouse is down, :meth:`write` retries with exponential backoff (capped) for as long
as it takes. It never drops a batch and never returns early, which stops the agent from
fetching more (backpressure).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from clickhouse_connect.driver.client import Client

from pipelines import metrics

log = logging.getLogger("govstream.sink")


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

    def add(self, table: str, row: Sequence[Any]) -> None:
        self.rows[table].append(row)

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
    last_insert_s: float = 0.0


class ClickHouseSink:
    """Insert a :class:`Batch` into its tables; retry forever with backoff."""

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

    def _insert(self, batch: Batch) -> None:
        client: Client | None = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = self._factory()
        for table, rows in batch.rows.items():
            if not rows:
                continue
            spec = self.tables[table]
            client.insert(
                f"{self.database}.{table}",
                rows,
                column_names=list(spec.columns),
                settings={"insert_deduplication_token": batch.token(table)},
            )

    def write_blocking(self, batch: Batch, should_stop: Callable[[], bool] = lambda: False) -> None:
        """Insert every table of the batch, retrying until it succeeds (or should_stop)."""
        delay = self.backoff_initial_s
        while True:
            started = time.perf_counter()
            try:
                self._insert(batch)
            except Exception as exc:  # network errors and server errors alike: never drop
                self.stats.retries += 1
                metrics.SINK_RETRIES.inc()
                self._local.client = None
                if should_stop():
                    raise
                log.warning(
                    "insert of %d rows failed (%s); retrying in %.1f s", len(batch), exc, delay
                )
                time.sleep(delay)
                delay = min(delay * 2, self.backoff_max_s)
                continue
            elapsed = time.perf_counter() - started
            self.stats.batches += 1
            self.stats.rows += len(batch)
            self.stats.last_insert_s = elapsed
            metrics.SINK_INSERT_SECONDS.observe(elapsed)
            for table, rows in batch.rows.items():
                metrics.SINK_BATCH_ROWS.labels(table).observe(len(rows))
            return

    async def write(self, batch: Batch, should_stop: Callable[[], bool] = lambda: False) -> None:
        """:meth:`write_blocking` in a thread, so the event loop keeps heartbeating."""
        if len(batch):
            await asyncio.to_thread(self.write_blocking, batch, should_stop)
