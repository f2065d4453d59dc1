"""Avro schema references in the registry's parser: referenced types are parsed first and
named, not inlined, in the canonical text (as Confluent's AvroSchemaProvider); the store
keeps references, modes and config fields through its journal."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pipelines.stack.registry import RegistryError, RegistryStore, SchemaRequest
from pipelines.stack.registry_compat import (
    CompatibilityLevel,
    InvalidSchemaError,
    compatibility_errors,
    parse_avro,
)
from tests.unit.test_registry_store import kill, state

pytestmark = pytest.mark.unit

ADDRESS: dict[str, Any] = {
    "type": "record",
    "name": "Address",
    "namespace": "gov.test",
    "fields": [{"name": "city", "type": "string"}],
}
PERSON: dict[str, Any] = {
    "type": "record",
    "name": "Person",
    "namespace": "gov.test",
    "fields": [{"name": "name", "type": "string"}, {"name": "home", "type": "Address"}],
}


def test_a_referenced_type_is_known_and_written_as_a_name() -> None:
    schema = parse_avro(json.dumps(PERSON), [json.dumps(ADDRESS)])
    assert json.loads(schema.canonical)["fields"][1]["type"] == "Address"
    assert "gov.test.Address" in schema.named
    with pytest.raises(InvalidSchemaError):
        parse_avro(json.dumps(PERSON))  # without the reference the type is unknown


def test_references_resolve_in_order_and_an_invalid_one_is_refused() -> None:
    city = json.dumps({"type": "enum", "name": "City", "namespace": "gov.test", "symbols": ["HZ"]})
    address = json.dumps(
        {
            "type": "record",
            "name": "Address",
            "namespace": "gov.test",
            "fields": [{"name": "c", "type": "City"}],
        }
    )
    assert parse_avro(json.dumps(PERSON), [city, address]).canonical
    with pytest.raises(InvalidSchemaError, match="referenced schema"):
        parse_avro(json.dumps(PERSON), [address])  # City is not known before Address


def test_compatibility_sees_through_references() -> None:
    old = parse_avro(json.dumps(PERSON), [json.dumps(ADDRESS)])
    address_v2 = json.dumps(
        {
            "type": "record",
            "name": "Address",
            "namespace": "gov.test",
            "fields": [{"name": "city", "type": "string"}, {"name": "z", "type": "int"}],
        }
    )
    new = parse_avro(json.dumps(PERSON), [address_v2])
    problems = compatibility_errors(new, [old], CompatibilityLevel.BACKWARD)
    assert problems and "READER_FIELD_MISSING_DEFAULT_VALUE" in problems[0]


def test_references_modes_and_config_fields_replay_from_the_journal(tmp_path: Path) -> None:
    store = RegistryStore(tmp_path)
    store.register("address-value", SchemaRequest(json.dumps(ADDRESS)))
    ref = {"name": "gov.test.Address", "subject": "address-value", "version": -1}
    person = store.register("person-value", SchemaRequest(json.dumps(PERSON), (ref,)))
    store.set_mode("person-value", "READONLY", force=False)
    store.set_config(None, None, {"compatibilityGroup": "g"})
    before = state(store)
    kill(store)  # no compaction: the changes are in the journal only

    again = RegistryStore(tmp_path)
    assert state(again) == before
    assert again.schema_by_id(person["id"])["references"] == [{**ref, "version": 1}]
    assert again.mode("person-value") == "READONLY"
    assert again.get_config(None, default_to_global=False)["compatibilityGroup"] == "g"
    with pytest.raises(RegistryError) as excinfo:
        again.register("person-value", SchemaRequest(json.dumps({"type": "long"})))
    assert excinfo.value.error_code == 42205
