"""Schema evolution: producers on a newer compatible schema (an added optional field) and on
an older one (without an optional field) are both consumed by the same worker."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from pipelines import clickhouse, contracts
from tests.reliability.conftest import Run

pytestmark = [pytest.mark.reliability, pytest.mark.integration]


def _schema_variant(change: str) -> str:
    schema = json.loads(contracts.load_schema(contracts.REPORT))
    fields = schema["fields"]
    if change == "newer":
        fields.append(
            {
                "name": "app_version",
                "type": ["null", "string"],
                "default": None,
                "doc": "Version of the reporting app (added in a later schema version).",
            }
        )
    else:  # older: before category_hint existed
        schema["fields"] = [f for f in fields if f["name"] != "category_hint"]
    return json.dumps(schema)


def _event(prefix: str, n: int) -> dict[str, Any]:
    line = (contracts.SCHEMA_DIR / "examples" / "report.jsonl").read_text("utf-8").splitlines()[0]
    at = datetime.now(UTC) - timedelta(minutes=5)
    event = dict(json.loads(line), event_id=str(uuid.uuid4()), report_id=f"{prefix}-{n}")
    event["occurred_at"] = at.isoformat()
    return contracts.from_json(contracts.REPORT, event)


def test_newer_and_older_producers_are_both_consumed(run: Run, unique: str) -> None:
    registry = SchemaRegistryClient(run.settings.registry_config())
    producer = Producer(run.settings.kafka_config())
    prefix = f"EVO{unique}"
    sent = []
    for n, change in enumerate(["newer", "older"]):
        serializer = AvroSerializer(registry, _schema_variant(change))
        record = _event(prefix, n)
        if change == "newer":
            record["app_version"] = "3.2.1"
        else:
            record.pop("category_hint", None)
        ctx = SerializationContext(contracts.REPORT, MessageField.VALUE)
        producer.produce(contracts.REPORT, serializer(record, ctx), key=record["report_id"])
        sent.append(record["report_id"])
    assert producer.flush(30) == 0
    versions = registry.get_versions(contracts.subject_for(contracts.REPORT))
    assert len(versions) >= 2  # both variants registered as compatible versions

    worker = run.worker()
    worker.start().wait_ready()
    client = clickhouse.get_client(run.settings)
    db = run.settings.clickhouse_database
    deadline = time.monotonic() + 90
    rows: list[tuple[Any, ...]] = []
    while time.monotonic() < deadline and len(rows) < 2:
        rows = client.query(
            f"SELECT report_id, category_code FROM {db}.reports FINAL "
            "WHERE startsWith(report_id, {p:String}) ORDER BY report_id",
            {"p": prefix},
        ).result_rows
        time.sleep(0.5)
    assert [r[0] for r in rows] == sent
    letters = client.command(f"SELECT count() FROM {db}.dead_letters")
    assert letters == 0
