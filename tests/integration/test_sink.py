"""The sink against the real (embedded) ClickHouse (issue 16, item 5): rows ClickHouse refuses
for good — a CHECK constraint, a value the column type cannot hold — are found by splitting the
batch and dead-lettered with the server's message; the rest land, once, also on a replay."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client

from pipelines import clickhouse, deadletter
from pipelines.settings import Settings
from pipelines.sink import REFUSED, Batch, ClickHouseSink, TableSpec, record_identity

pytestmark = pytest.mark.integration

POISON = TableSpec("poison", ("id", "qty", "note"))


@dataclass(frozen=True)
class Message:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: float | None = 1_700_000_000.0
    headers: tuple[tuple[str, bytes], ...] = (("trace", b"t-1"),)


@pytest.fixture
def database(stack: Settings, unique: str) -> Iterator[tuple[Client, str]]:
    client = clickhouse.get_client(stack)
    with clickhouse.temporary_database(client, f"sink_{unique}") as db:
        clickhouse.migrate(client, db)
        client.command(
            f"CREATE TABLE {db}.poison (id UInt32, qty Int32, note String,"
            " CONSTRAINT positive CHECK qty > 0) ENGINE = MergeTree ORDER BY id"
            " SETTINGS non_replicated_deduplication_window = 100"
        )
        yield client, db


def _sink(stack: Settings, db: str) -> ClickHouseSink:
    tables = [
        POISON,
        TableSpec("dead_letters", deadletter.COLUMNS),
        TableSpec(deadletter.PAYLOAD_TABLE, deadletter.PAYLOAD_COLUMNS),
    ]
    return ClickHouseSink(lambda: clickhouse.get_client(stack), db, tables, backoff_initial_s=0.01)


def _batch() -> Batch:
    """12 rows from offsets 100..111 of report/2: 3 and 8 break the CHECK, 6 holds a text where
    an Int32 goes (the client cannot serialize it); one row without a source breaks the CHECK."""
    batch = Batch()
    for i in range(12):
        message = Message("report", 2, 100 + i, f"R-{i}".encode(), f"v{i}".encode())
        qty: Any = -i if i in (3, 8) else ("many" if i == 6 else i + 1)
        batch.saw(message.topic, message.partition, message.offset,
                  record_identity(message.key, message.value, message.timestamp))  # fmt: skip
        batch.add("poison", (i, qty, f"row {i}"), source=message)
    batch.add("poison", (99, 0, "no source"))
    return batch


def _state(client: Client, db: str) -> tuple[list[int], list[tuple[Any, ...]], int]:
    ids = [r[0] for r in client.query(f"SELECT id FROM {db}.poison ORDER BY id").result_rows]
    letters = client.query(
        f"SELECT source_topic, source_partition, source_offset, reason, message, value "
        f"FROM {db}.dead_letters ORDER BY source_topic, source_offset"
    ).result_rows
    payloads = client.command(f"SELECT count() FROM {db}.{deadletter.PAYLOAD_TABLE}")
    return ids, [tuple(r) for r in letters], int(str(payloads))


def test_refused_rows_are_dead_lettered_and_the_rest_land(
    stack: Settings, database: tuple[Client, str]
) -> None:
    client, db = database
    sink = _sink(stack, db)
    batch = _batch()
    letters = sink.write_blocking(batch)

    ids, rows, payloads = _state(client, db)
    assert ids == [0, 1, 2, 4, 5, 7, 9, 10, 11]
    assert [(r[0], r[1], r[2], r[3]) for r in rows] == [
        ("report", 2, 103, REFUSED),
        ("report", 2, 106, REFUSED),
        ("report", 2, 108, REFUSED),
        ("sink:poison", 0, 0, REFUSED),
    ]
    by_offset = {r[2]: r for r in rows if r[0] == "report"}
    assert "VIOLATED_CONSTRAINT" in by_offset[103][4] and "poison" in by_offset[103][4]
    assert "no source" in rows[-1][5]  # the row itself, as the "record" of a sourceless row
    assert payloads == 4
    assert sorted((letter.topic, letter.offset) for letter in letters) == [
        ("report", 103), ("report", 106), ("report", 108), ("sink:poison", 0)
    ]  # fmt: skip
    assert letters[0].key == b"R-3" and letters[0].value == b"v3"  # for the dead-letter topic
    assert ("trace", b"t-1") in letters[0].topic_headers()
    assert sink.stats.refused == 4

    # a replay of the same batch (a crash before the offsets were committed) adds nothing
    sink.write_blocking(_batch())
    assert _state(client, db) == (ids, rows, payloads)
