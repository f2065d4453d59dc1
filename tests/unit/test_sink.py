"""Typed sink errors (issue 16, item 5) with a fake client: what is retried, what is split."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import pytest
from clickhouse_connect.driver.exceptions import DatabaseError, DataError, OperationalError

from pipelines.sink import (
    REFUSED,
    RETRIED_CODES,
    Batch,
    ClickHouseSink,
    TableSpec,
    is_refusal,
    server_message,
)

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("exc", "refused"),
    [
        (OperationalError("Error executing HTTP request"), False),  # network, no code
        (DatabaseError("HTTP driver received HTTP status 503"), False),  # a proxy, no code
        (ConnectionRefusedError(), False),
        (TimeoutError(), False),
        (DatabaseError("x", code=241), False),  # MEMORY_LIMIT_EXCEEDED
        (DatabaseError("x", code=252), False),  # TOO_MANY_PARTS
        (OperationalError("x", code=242), False),  # TABLE_IS_READ_ONLY, after a client retry
        (DatabaseError("x", code=60), False),  # UNKNOWN_TABLE: not migrated yet, no row's fault
        (DatabaseError("x", code=516), False),  # AUTHENTICATION_FAILED
        (DatabaseError("x", code=469), True),  # VIOLATED_CONSTRAINT
        (DatabaseError("x", code=53), True),  # TYPE_MISMATCH
        (DataError("bad value"), True),
        (TypeError("'str' object cannot be interpreted as an integer"), True),
        (OverflowError("int too big to convert"), True),
        (RuntimeError("anything else"), False),
    ],
)
def test_what_is_a_refusal(exc: BaseException, refused: bool) -> None:
    assert is_refusal(exc) is refused


def test_the_retried_codes_are_the_documented_ones() -> None:
    assert {159, 202, 209, 210, 241, 242, 252, 319, 999} <= RETRIED_CODES
    assert 469 not in RETRIED_CODES


def test_server_message_drops_the_request_url() -> None:
    exc = DatabaseError(
        "Received ClickHouse exception, code: 469, server response: Code: 469. "
        "DB::Exception: Constraint `positive` is violated. (VIOLATED_CONSTRAINT) "
        "(for url http://127.0.0.1:8123)",
        code=469,
    )
    assert server_message(exc).endswith("(VIOLATED_CONSTRAINT)")


class Picky:
    """Refuses inserts that hold a negative first column; fails ``transient`` times first."""

    def __init__(self, transient: int = 0) -> None:
        self.transient = transient
        self.calls = 0
        self.landed: list[Any] = []
        self.tokens: list[str] = []
        self.described: list[str] = []  # tables whose column types were asked for

    def create_insert_context(self, table: str, columns: list[str]) -> Any:
        self.described.append(table)
        return SimpleNamespace(column_types=[f"type of {c}" for c in columns])

    def insert(self, table: str, rows: list[Any], **kwargs: Any) -> None:
        self.calls += 1
        if self.transient:
            self.transient -= 1
            raise DatabaseError("too many parts", code=252)
        if table.endswith(".t") and any(row[0] < 0 for row in rows):
            raise DatabaseError("Code: 469. violated (VIOLATED_CONSTRAINT)", code=469)
        self.tokens.append(kwargs["settings"]["insert_deduplication_token"])
        self.landed.extend((table, *row) for row in rows)


def test_column_types_are_asked_once_per_table_and_again_after_a_failed_insert() -> None:
    client = Picky(transient=1)
    sink = ClickHouseSink(
        lambda: cast(Any, client), "db", [TableSpec("t", ("a",))], backoff_initial_s=0.001
    )
    for values in ([1, 2], [3], [4]):
        batch = Batch()
        for v in values:
            batch.add("t", (v,))
        sink.write_blocking(batch)
    # the first insert failed (transient): its retry asked again; then no more questions
    assert client.described == ["db.t", "db.t"]
    assert sorted(r[1] for r in client.landed) == [1, 2, 3, 4]


def test_split_finds_the_refused_rows_and_lands_the_rest() -> None:
    client = Picky(transient=2)
    sink = ClickHouseSink(
        lambda: cast(Any, client),
        "db",
        [TableSpec("t", ("a",)), TableSpec("dead_letters", ("x",) * 13)],
        backoff_initial_s=0.001,
    )
    batch = Batch()
    values = list(range(64))
    values[5], values[40] = -5, -40
    for v in values:
        batch.add("t", (v,))
    letters = sink.write_blocking(batch)
    assert sorted(r[1] for r in client.landed if r[0] == "db.t") == [v for v in values if v >= 0]
    assert [letter.reason for letter in letters] == [REFUSED, REFUSED]
    assert [letter.topic for letter in letters] == ["sink:t", "sink:t"]  # rows without a source
    assert sum(1 for r in client.landed if r[0] == "db.dead_letters") == 2
    assert sink.stats.retries == 2 and sink.stats.refused == 2
    # 2 bad rows among 64: 1 whole try + at most 2 * 2 * log2(64) halves + the dead letters
    assert client.calls <= 2 + 1 + 24 + 1
    assert len(set(client.tokens)) == len(client.tokens)  # every slice has its own token


def test_transient_failures_are_retried_until_should_stop() -> None:
    client = Picky(transient=10**6)
    sink = ClickHouseSink(
        lambda: cast(Any, client), "db", [TableSpec("t", ("a",))], backoff_initial_s=0.001
    )
    batch = Batch()
    batch.add("t", (1,))
    stops = iter([False, False, True])
    with pytest.raises(DatabaseError):
        sink.write_blocking(batch, should_stop=lambda: next(stops))
    assert client.calls == 3 and not client.landed
