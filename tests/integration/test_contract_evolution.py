"""Each public schema can evolve compatibly (an optional field with a default) and the registry
refuses an incompatible change (a new required field, a changed type) with 409."""

from __future__ import annotations

import json

import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from pipelines import contracts
from pipelines.settings import Settings

pytestmark = pytest.mark.integration


def _variant(topic: str, change: str) -> Schema:
    schema = json.loads(contracts.load_schema(topic))
    if change == "optional field":
        schema["fields"].append(
            {"name": "added_later", "type": ["null", "string"], "default": None, "doc": "new"}
        )
    elif change == "required field":
        schema["fields"].append({"name": "added_later", "type": "string", "doc": "new"})
    else:  # a type change of an existing field
        first = next(f for f in schema["fields"] if f["type"] == "string")
        first["type"] = "long"
    return Schema(json.dumps(schema), "AVRO")


@pytest.mark.parametrize("topic", contracts.AVRO_TOPICS)
def test_compatible_and_incompatible_evolutions(stack: Settings, unique: str, topic: str) -> None:
    client = SchemaRegistryClient(stack.registry_config())
    subject = f"evolution-{unique}-{topic}-value"
    first = client.register_schema(subject, Schema(contracts.load_schema(topic), "AVRO"))
    assert client.test_compatibility(subject, _variant(topic, "optional field"))
    second = client.register_schema(subject, _variant(topic, "optional field"))
    assert second != first
    for change in ("required field", "type change"):
        assert not client.test_compatibility(subject, _variant(topic, change)), change
        with pytest.raises(SchemaRegistryError) as err:
            client.register_schema(subject, _variant(topic, change))
        assert err.value.http_status_code == 409, change
    assert len(client.get_versions(subject)) == 2


def _before_issue_19(topic: str) -> str:
    """The schema as registered before issue 19 (回访 and 转派): without the appended enum
    symbols (hotspot came later in the issue) and the optional fields that issue added."""
    schema = json.loads(contracts.load_schema(topic))
    added_symbols = {"REVISIT", "TRANSFER", "supervision", "hotspot"}
    schema["fields"] = [
        f for f in schema["fields"] if f["name"] not in ("satisfaction", "resident_solved")
    ]
    for f in schema["fields"]:
        if isinstance(f["type"], dict) and f["type"].get("type") == "enum":
            f["type"]["symbols"] = [s for s in f["type"]["symbols"] if s not in added_symbols]
    return json.dumps(schema)


@pytest.mark.parametrize("topic", [contracts.REPORT, contracts.ALERT])
def test_issue_19_evolution_is_registered_as_compatible(
    stack: Settings, unique: str, topic: str
) -> None:
    """REVISIT/TRANSFER, satisfaction and resident_solved (report) and the supervision source
    (alert) pass the registry's BACKWARD check against the version before them."""
    client = SchemaRegistryClient(stack.registry_config())
    subject = f"issue19-{unique}-{topic}-value"
    client.set_compatibility(subject, "BACKWARD")
    before = client.register_schema(subject, Schema(_before_issue_19(topic), "AVRO"))
    current = Schema(contracts.load_schema(topic), "AVRO")
    assert client.test_compatibility(subject, current)
    assert client.register_schema(subject, current) != before
    assert len(client.get_versions(subject)) == 2


def test_the_hotspot_source_is_registered_as_compatible(stack: Settings, unique: str) -> None:
    """issue 19, 热点预警: the alert schema with the hotspot source passes the registry's
    BACKWARD check against the version before it (supervision the last symbol)."""
    client = SchemaRegistryClient(stack.registry_config())
    subject = f"hotspot-{unique}-alert-value"
    client.set_compatibility(subject, "BACKWARD")
    schema = json.loads(contracts.load_schema(contracts.ALERT))
    source = next(f for f in schema["fields"] if f["name"] == "source")["type"]
    assert source["symbols"].pop() == "hotspot"
    before = client.register_schema(subject, Schema(json.dumps(schema), "AVRO"))
    current = Schema(contracts.load_schema(contracts.ALERT), "AVRO")
    assert client.test_compatibility(subject, current)
    assert client.register_schema(subject, current) != before
    assert len(client.get_versions(subject)) == 2


def test_corrected_category_is_registered_as_compatible(stack: Settings, unique: str) -> None:
    """issue 14, item 3: the report schema with corrected_category passes the registry's
    BACKWARD check against the version before it, and is registered as its next version."""
    client = SchemaRegistryClient(stack.registry_config())
    subject = f"issue14-{unique}-report-value"
    client.set_compatibility(subject, "BACKWARD")
    schema = json.loads(contracts.load_schema(contracts.REPORT))
    schema["fields"] = [f for f in schema["fields"] if f["name"] != "corrected_category"]
    before = client.register_schema(subject, Schema(json.dumps(schema), "AVRO"))
    current = Schema(contracts.load_schema(contracts.REPORT), "AVRO")
    assert client.test_compatibility(subject, current)
    assert client.register_schema(subject, current) != before
    assert len(client.get_versions(subject)) == 2
