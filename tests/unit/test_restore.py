"""restore's chunking: keys go to ClickHouse CHUNK at a time, distinct and sorted, merged."""

from __future__ import annotations

from typing import Any

import pytest

from pipelines import restore

pytestmark = pytest.mark.unit


def test_keys_are_queried_in_chunks_and_the_answers_merged() -> None:
    calls: list[tuple[list[int], str]] = []

    @restore._chunked
    def query(client: Any, database: str, keys: list[int], suffix: str) -> dict[int, str]:
        calls.append((keys, suffix))
        return {k: f"{k}{suffix}" for k in keys if k % 2 == 0}

    keys = [*range(restore.CHUNK * 2 + 3), 0, 1]  # duplicates too
    found = query(None, "db", reversed(keys), "!")
    assert [len(part) for part, _ in calls] == [restore.CHUNK, restore.CHUNK, 3]
    assert [k for part, _ in calls for k in part] == sorted(set(keys))
    assert found == {k: f"{k}!" for k in set(keys) if k % 2 == 0}
    calls.clear()
    assert query(None, "db", [], "!") == {} and calls == []
