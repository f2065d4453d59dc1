"""Avro schema references in the registry's parser: referenced types are parsed first and
named, not inlined, in the canonical text (as Confluent's AvroSchemaProvider)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pipelines.stack.registry_compat import (
    CompatibilityLevel,
    InvalidSchemaError,
    compatibility_errors,
    parse_avro,
)

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
