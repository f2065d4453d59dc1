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
