"""The embedded registry's store: a snapshot plus an append-only journal, crash-safe.

Torn writes are simulated by cutting the files where a killed process would have left them;
tests/integration/test_registry.py kills a real process while it registers.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from pipelines.stack import registry
from pipelines.stack.registry import (
    JOURNAL_FILE,
    STATE_FILE,
    RegistryError,
    RegistryStore,
    RegistryStoreError,
    SchemaRequest,
)
from pipelines.stack.registry_compat import CompatibilityLevel

pytestmark = pytest.mark.unit


def rec(name: str, *fields: str, **extra: Any) -> SchemaRequest:
    schema = {
        "type": "record",
        "name": name,
        "fields": [{"name": f, "type": "int"} for f in fields],
    }
    return SchemaRequest(json.dumps({**schema, **extra}))


def state(store: RegistryStore) -> dict[str, Any]:
    dump = store._dump()
    dump.pop("journal_seq")
    return dump


def kill(store: RegistryStore) -> None:
    """Stop using ``store`` as a killed process would: no compaction, no cleanup."""
    assert store._journal_fd is not None
    os.close(store._journal_fd)
    store._journal_fd = None


def journal_lines(directory: Path) -> list[bytes]:
    return (directory / JOURNAL_FILE).read_bytes().splitlines(keepends=True)


def test_a_change_appends_to_the_journal_and_leaves_the_snapshot_alone(tmp_path: Path) -> None:
    store = RegistryStore(tmp_path)
    snapshot = (tmp_path / STATE_FILE).read_bytes()
    first = store.register("a-value", rec("A", "x"))
    store.register("b-value", rec("B", "y"))
    store.set_config("a-value", CompatibilityLevel.FULL)
    store.delete_version("b-value", "1", permanent=False)
    assert (tmp_path / STATE_FILE).read_bytes() == snapshot
    assert len(journal_lines(tmp_path)) == 4

    again = RegistryStore(tmp_path)
    assert state(again) == state(store)
    assert again.register("a-value", rec("A", "x")) == first  # known: no new version
    assert again.versions("a-value", deleted=False, deleted_only=False) == [1]
    assert again.level("a-value") is CompatibilityLevel.FULL


@pytest.mark.parametrize("cut", [1, 9, 30, -1])
def test_a_torn_last_change_is_dropped_and_the_next_one_lands_cleanly(
    tmp_path: Path, cut: int
) -> None:
    store = RegistryStore(tmp_path)
    store.register("a-value", rec("A", "x"))
    before = state(store)
    store.register("b-value", rec("B", "y"))
    kill(store)
    lines = journal_lines(tmp_path)
    # the process was killed while writing the last line: only its first bytes are there
    torn = lines[-1][:cut]
    (tmp_path / JOURNAL_FILE).write_bytes(b"".join(lines[:-1]) + torn)

    reopened = RegistryStore(tmp_path)
    assert state(reopened) == before
    with pytest.raises(RegistryError) as excinfo:
        reopened.versions("b-value", deleted=True, deleted_only=False)
    assert excinfo.value.error_code == 40401
    # the torn bytes are gone, so the next change is not glued to them
    reopened.register("c-value", rec("C", "z"))
    after = state(reopened)
    assert state(RegistryStore(tmp_path)) == after


def test_a_damaged_line_before_the_last_is_corruption(tmp_path: Path) -> None:
    store = RegistryStore(tmp_path)
    store.register("a-value", rec("A", "x"))
    store.register("b-value", rec("B", "y"))
    kill(store)
    lines = journal_lines(tmp_path)
    lines[0] = lines[0].replace(b'"a-value"', b'"z-value"')  # CRC no longer matches
    (tmp_path / JOURNAL_FILE).write_bytes(b"".join(lines))
    with pytest.raises(RegistryStoreError, match="damaged"):
        RegistryStore(tmp_path)


def test_a_kill_between_snapshot_and_journal_reset_applies_nothing_twice(
    tmp_path: Path,
) -> None:
    store = RegistryStore(tmp_path)
    store.register("a-value", rec("A", "x"))
    store.set_config("a-value", CompatibilityLevel.NONE)
    store.register("a-value", rec("A", "x", "w"))
    store.delete_version("a-value", "1", permanent=False)
    journal = (tmp_path / JOURNAL_FILE).read_bytes()
    store._compact()  # new snapshot, journal emptied ...
    expected = state(store)
    store.close()
    (tmp_path / JOURNAL_FILE).write_bytes(journal)  # ... but the emptying never happened
    reopened = RegistryStore(tmp_path)
    assert state(reopened) == expected
    assert reopened.versions("a-value", deleted=True, deleted_only=False) == [1, 2]


def test_a_compaction_cut_short_leaves_the_old_state_and_no_temporary_file(
    tmp_path: Path,
) -> None:
    store = RegistryStore(tmp_path)
    store.register("a-value", rec("A", "x"))
    expected = state(store)
    kill(store)
    stray = tmp_path / f".{STATE_FILE}.abc123.tmp"
    stray.write_bytes(b'{"format": 2, "next_')  # a killed compaction's half-written file
    assert state(RegistryStore(tmp_path)) == expected
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.tmp"))


def test_a_failing_snapshot_write_removes_its_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = RegistryStore(tmp_path)
    store.register("a-value", rec("A", "x"))

    def refuse(*_: Any) -> None:
        raise UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed")

    monkeypatch.setattr(registry.os, "replace", refuse)
    with pytest.raises(UnicodeEncodeError):
        store._compact()
    assert not list(tmp_path.glob(".*.tmp"))


def test_the_journal_is_compacted_once_it_outgrows_the_snapshot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(registry, "COMPACT_MIN_BYTES", 2_000)
    store = RegistryStore(tmp_path)
    store.set_config(None, CompatibilityLevel.NONE)
    for i in range(30):
        store.register(f"s{i}-value", rec(f"R{i}", "x"))
    assert (tmp_path / JOURNAL_FILE).stat().st_size < 2_500
    snapshot = json.loads((tmp_path / STATE_FILE).read_bytes())
    assert snapshot["format"] == 2 and snapshot["journal_seq"] > 1
    assert state(RegistryStore(tmp_path)) == state(store)


def test_a_format_1_state_is_migrated_to_canonical_texts(tmp_path: Path) -> None:
    """Before canonical forms, a reordered schema got a second id; both ids stay readable and
    the schema is now found whichever spelling is sent."""
    plain = {"type": "record", "name": "R", "fields": [{"name": "a", "type": "int"}]}
    swapped = {"fields": [{"type": "int", "name": "a"}], "name": "R", "type": "record"}
    texts = [json.dumps(s, separators=(",", ":")) for s in (plain, swapped)]
    old = {
        "format": 1,
        "next_id": 3,
        "schemas": {
            "1": {"schema": texts[0], "guid": "g1"},
            "2": {"schema": texts[1], "guid": "g2"},
        },
        "subjects": {
            "a-value": [
                {"version": 1, "id": 1, "deleted": False},
                {"version": 2, "id": 2, "deleted": False},
            ]
        },
        "config": {"global": "BACKWARD", "subjects": {}},
    }
    (tmp_path / STATE_FILE).write_text(json.dumps(old), encoding="utf-8")
    store = RegistryStore(tmp_path)
    assert json.loads((tmp_path / STATE_FILE).read_bytes())["format"] == 2
    assert store.schema_by_id(1)["schema"] == store.schema_by_id(2)["schema"]
    assert store.register("b-value", SchemaRequest(json.dumps(swapped)))["id"] == 1
    found = store.lookup("a-value", SchemaRequest(json.dumps(plain)), deleted=False)
    assert found["version"] == 2  # the latest version with that schema, as Confluent


def test_a_journal_that_cannot_be_written_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = RegistryStore(tmp_path)
    store.register("a-value", rec("A", "x"))
    before = state(store)

    def full(*_: Any) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(registry.os, "write", full)
    with pytest.raises(RegistryStoreError) as excinfo:
        store.register("b-value", rec("B", "y"))
    assert excinfo.value.http_status == 500 and excinfo.value.error_code == 50001
    assert state(store) == before
    monkeypatch.undo()
    store.register("b-value", rec("B", "y"))
    assert state(RegistryStore(tmp_path)) == state(store)
