"""`govstream topic read` (issue 17, item 4): records decoded with their schema, masked unless
--raw, from an offset or a time; one line and exit 2 for a topic that is not the project's."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pipelines import contracts
from pipelines.producer import EventProducer
from pipelines.settings import Settings
from tests.integration.test_stack import run_cli

pytestmark = pytest.mark.integration

PHONE = "13912345678"
EXAMPLES = Path(contracts.SCHEMA_DIR) / "examples" / "report.jsonl"


def _send(settings: Settings, topic: str, value: Any, **raw: Any) -> tuple[int, int]:
    """Send one event (or raw bytes with ``raw``); its (partition, offset)."""
    where: list[tuple[int, int]] = []

    def delivered(err: Any, msg: Any) -> None:
        assert err is None, err
        where.append((msg.partition(), msg.offset()))

    with EventProducer(settings) as producer:
        if raw:
            producer.produce_raw(topic, value, on_delivery=delivered, **raw)
        else:
            producer.send(topic, value, on_delivery=delivered)
    return where[0]


def _read(settings: Settings, *args: str) -> list[dict[str, Any]]:
    done = run_cli(settings, "topic", "read", *args, "--json")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_reads_a_report_decoded_and_masked(stack: Settings, unique: str) -> None:
    event = json.loads(EXAMPLES.read_text(encoding="utf-8").splitlines()[0])
    event["report_id"] = f"T-{unique}"
    event["description"] = f"井盖缺失，联系电话 {PHONE}"
    before = datetime.now(UTC) - timedelta(seconds=1)
    partition, offset = _send(stack, "report", event)
    args = ("report", "--partition", str(partition), "--from-offset", str(offset), "--max", "1")

    [record] = _read(stack, *args)
    assert (record["partition"], record["offset"]) == (partition, offset)
    assert record["key"] == f"T-{unique}" and record["error"] is None
    assert record["value"]["report_id"] == f"T-{unique}"
    assert PHONE not in json.dumps(record, ensure_ascii=False)
    assert "139****5678" in record["value"]["description"]
    assert record["timestamp"].endswith("+08:00")  # Asia/Shanghai, as analysts read times

    [raw] = _read(stack, *args, "--raw")
    assert PHONE in raw["value"]["description"]

    since = _read(stack, "report", "--partition", str(partition), "--from-time",
                  before.isoformat(), "--max", "1")  # fmt: skip
    assert since and since[0]["offset"] == offset
    later = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
    assert _read(stack, "report", "--partition", str(partition), "--from-time", later) == []


def test_reads_a_dead_letter_as_it_came_with_its_headers(stack: Settings, unique: str) -> None:
    headers = {"dlq.reason": b"not_avro_framed", "dlq.source.topic": b"report"}
    value = f"garbage {unique} {PHONE}".encode()
    partition, offset = _send(stack, "dead-letter", value, key=f"k-{unique}", headers=headers)
    [record] = _read(stack, "dead-letter", "--partition", str(partition),
                     "--from-offset", str(offset), "--max", "1")  # fmt: skip
    assert record["headers"]["dlq.reason"] == "not_avro_framed"
    assert record["value"] == f"garbage {unique} 139****5678"
    last = _read(stack, "dead-letter", "--partition", str(partition), "--from-offset", "-1")
    assert [r["offset"] for r in last] == [offset]


@pytest.mark.parametrize("topic", ["_schemas", "no-such-topic"])
def test_a_topic_that_is_not_the_projects_is_exit_2(stack: Settings, topic: str) -> None:
    done = run_cli(stack, "topic", "read", topic)
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr


def test_a_project_topic_that_does_not_exist_is_exit_2(stack: Settings, unique: str) -> None:
    settings = stack.model_copy(update={"app_id": f"x{unique}"})
    done = run_cli(settings, "topic", "read", f"x{unique}-nothing-changelog")
    assert done.returncode == 2, done.stderr
    assert "does not exist" in done.stderr and len(done.stderr.strip().splitlines()) == 1
