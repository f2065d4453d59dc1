"""Issue 20 item 7: the embedded registry answers Confluent's API beyond the serializers'
needs — schema references, ``/schemas``, ``/contexts``, ``/v1/metadata/id``, modes, configs
without a compatibility level, JSON errors for any method or path, and JSON Schema / Protobuf
answered as an Avro-only Confluent registry does. Driven with confluent-kafka's
``SchemaRegistryClient`` where it has a method, with urllib or curl otherwise."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.schema_registry import (
    Schema,
    SchemaReference,
    ServerConfig,
)
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext

from tests.integration import test_registry as base
from tests.integration.test_registry import (
    Running,
    avro,
    http,
    raw_request,
    registry_settings,
    sr_error,
)
from tests.unit.test_registry_references import ADDRESS, PERSON

pytestmark = pytest.mark.integration

PERSON_V2 = {  # BACKWARD compatible: a new field with a default
    **PERSON,
    "fields": [*PERSON["fields"], {"name": "age", "type": "int", "default": 0}],
}
PERSON_BAD = {  # not BACKWARD compatible: a new field without a default
    **PERSON,
    "fields": [*PERSON["fields"], {"name": "owner", "type": "string"}],
}
ADDRESS_REF = SchemaReference("gov.test.Address", "address-value", 1)


registry = base.registry  # the fixture: a registry served in this process


def with_refs(schema: dict[str, Any], *refs: SchemaReference) -> Schema:
    return Schema(json.dumps(schema), "AVRO", list(refs))


def curl(url: str, *args: str) -> tuple[int, dict[str, str], Any]:
    """curl ``args`` ``url``: (status, headers, JSON body or None when there is none)."""
    out = subprocess.run(
        ["curl", "-sS", "-i", "--max-time", "10", *args, url],
        capture_output=True,
        check=True,
        text=True,
    ).stdout
    head, _, body = out.replace("\r\n", "\n").partition("\n\n")
    lines = head.splitlines()
    headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:])}
    return int(lines[0].split()[1]), headers, json.loads(body) if body.strip() else None


# --- schema references ---------------------------------------------------------------------


def test_references_register_resolve_and_come_back(registry: Running) -> None:
    client = registry.client()
    address_id = client.register_schema("address-value", avro(ADDRESS))
    person = with_refs(PERSON, ADDRESS_REF)
    person_id = client.register_schema("person-value", person)
    assert person_id != address_id

    fresh = registry.client()
    latest = fresh.get_latest_version("person-value")
    assert latest.schema_id == person_id
    refs = [(r.name, r.subject, r.version) for r in latest.schema.references or []]
    assert refs == [("gov.test.Address", "address-value", 1)]
    # the stored text names the referenced type, it does not inline it
    assert json.loads(latest.schema.schema_str or "null")["fields"][1]["type"] == "Address"
    by_id = fresh.get_schema(person_id)
    assert [r.subject for r in by_id.references or []] == ["address-value"]
    status, _, body = http(f"{registry.url}/schemas/ids/{person_id}")
    assert status == 200
    assert body["references"] == [
        {"name": "gov.test.Address", "subject": "address-value", "version": 1}
    ]
    # a schema without references answers none, as Confluent (empty lists are left out)
    assert "references" not in http(f"{registry.url}/schemas/ids/{address_id}")[2]

    # same text and references: same id, no new version; lookup finds it
    assert registry.client().register_schema("person-value", person) == person_id
    found = registry.client().lookup_schema("person-value", person)
    assert (found.version, found.schema_id) == (1, person_id)

    assert client.get_referenced_by("address-value", 1) == [person_id]
    assert client.get_referenced_by("address-value", "latest") == [person_id]
    assert client.get_referenced_by("person-value", 1) == []


def test_references_are_resolved_for_compatibility_and_serializers(registry: Running) -> None:
    client = registry.client()
    client.register_schema("address-value", avro(ADDRESS))
    client.register_schema("person-value", with_refs(PERSON, ADDRESS_REF))
    v2 = with_refs(PERSON_V2, ADDRESS_REF)
    assert client.test_compatibility("person-value", v2) is True
    assert client.test_compatibility("person-value", with_refs(PERSON_BAD, ADDRESS_REF)) is False
    with pytest.raises(SchemaRegistryError) as excinfo:
        client.register_schema("person-value", with_refs(PERSON_BAD, ADDRESS_REF))
    assert sr_error(excinfo) == (409, 409)
    v2_id = client.register_schema("person-value", v2)

    # the serializer sends the references, the deserializer fetches them by subject/version
    ctx = SerializationContext("person", MessageField.VALUE)
    serializer = AvroSerializer(
        client, v2, conf={"auto.register.schemas": False, "use.latest.version": True}
    )
    payload = serializer({"name": "Li", "home": {"city": "Hangzhou"}, "age": 3}, ctx)
    assert payload is not None and int.from_bytes(payload[1:5], "big") == v2_id
    decoded = AvroDeserializer(registry.client())(payload, ctx)
    assert decoded == {"name": "Li", "home": {"city": "Hangzhou"}, "age": 3}


def test_reference_errors_and_latest(registry: Running) -> None:
    client = registry.client()
    # without its reference the type is unknown; a missing reference is an invalid schema
    with pytest.raises(SchemaRegistryError) as excinfo:
        client.register_schema("person-value", avro(PERSON))
    assert sr_error(excinfo) == (422, 42201)
    with pytest.raises(SchemaRegistryError) as excinfo:
        client.register_schema("person-value", with_refs(PERSON, ADDRESS_REF))
    assert sr_error(excinfo) == (422, 42201)
    assert excinfo.value.error_message == (
        'Invalid schema: No schema reference found for subject "address-value" and version 1'
    )
    status, _, body = http(
        f"{registry.url}/subjects/person-value/versions",
        "POST",
        {"schema": json.dumps(PERSON), "references": [{"name": "x", "subject": "s"}]},
    )
    assert (status, body["error_code"]) == (422, 42201)

    client.register_schema("address-value", avro(ADDRESS))
    address_v2 = {
        **ADDRESS,
        "fields": [
            *ADDRESS["fields"],
            {"name": "zip", "type": ["null", "string"], "default": None},
        ],
    }
    client.register_schema("address-value", avro(address_v2))
    # version -1 is the latest, stored as the number it resolved to
    person_id = client.register_schema(
        "person-value", with_refs(PERSON, SchemaReference("gov.test.Address", "address-value", -1))
    )
    stored = registry.client().get_version("person-value", 1).schema.references
    assert [(r.subject, r.version) for r in stored or []] == [("address-value", 2)]
    assert client.get_referenced_by("address-value", 2) == [person_id]
    assert client.get_referenced_by("address-value", 1) == []

    # a referenced version cannot be deleted while a live version refers to it
    message = (
        "One or more references exist to the schema "
        "{magic=1,keytype=SCHEMA,subject=address-value,version=2}."
    )
    with pytest.raises(SchemaRegistryError) as excinfo:
        client.delete_version("address-value", 2)
    assert sr_error(excinfo) == (422, 42206)
    assert excinfo.value.error_message == message
    with pytest.raises(SchemaRegistryError) as excinfo:
        client.delete_subject("address-value")
    assert sr_error(excinfo) == (422, 42206)
    assert client.delete_version("address-value", 1) == 1  # not referenced
    assert client.delete_subject("person-value") == [1]
    assert client.get_referenced_by("address-value", 2) == []
    assert client.delete_subject("address-value") == [2]


def test_references_modes_and_config_fields_survive_a_restart(tmp_path: Path) -> None:
    first = Running(registry_settings(tmp_path))
    try:
        first.client().register_schema("address-value", avro(ADDRESS))
        person_id = first.client().register_schema("person-value", with_refs(PERSON, ADDRESS_REF))
        first.client().update_mode("person-value", "READONLY")
        first.client().set_config("person-value", ServerConfig(compatibility_group="g"))
    finally:
        first.stop()
    second = Running(registry_settings(tmp_path))
    try:
        client = second.client()
        assert [r.subject for r in client.get_schema(person_id).references or []] == [
            "address-value"
        ]
        assert client.get_referenced_by("address-value", 1) == [person_id]
        # compatibility after the restart parses the stored schema with its reference
        assert client.test_compatibility("person-value", with_refs(PERSON_V2, ADDRESS_REF))
        # modes and config fields are kept too
        assert client.get_mode("person-value") == "READONLY"
        assert client.get_config("person-value").compatibility_group == "g"
    finally:
        second.stop()


# --- /schemas, /contexts, /v1/metadata/id ---------------------------------------------------


def test_schemas_listing_raw_schema_contexts_and_metadata(registry: Running) -> None:
    client = registry.client()
    a1 = client.register_schema("a-value", avro(ADDRESS))
    a2 = client.register_schema(
        "a-value",
        avro(
            {**ADDRESS, "fields": [*ADDRESS["fields"], {"name": "n", "type": "int", "default": 1}]}
        ),
    )
    b1 = client.register_schema("b-value", avro({"type": "string"}))
    client.delete_version("a-value", 1)

    # GET /schemas/ids/{id}/schema: the schema text alone
    status, headers, body = http(f"{registry.url}/schemas/ids/{a1}/schema")
    assert (status, body) == (200, ADDRESS)
    assert headers["Content-Type"] == "application/vnd.schemaregistry.v1+json"
    assert http(f"{registry.url}/schemas/ids/{b1}/schema")[2] == "string"
    status, _, body = http(f"{registry.url}/schemas/ids/999/schema")
    assert (status, body["error_code"]) == (404, 40403)

    def listed(query: str = "") -> list[tuple[str, int, int]]:
        status, _, body = http(f"{registry.url}/schemas{query}")
        assert status == 200
        return [(s["subject"], s["version"], s["id"]) for s in body]

    assert listed() == [("a-value", 2, a2), ("b-value", 1, b1)]
    assert listed("?deleted=true") == [("a-value", 1, a1), ("a-value", 2, a2), ("b-value", 1, b1)]
    assert listed("?deleted=true&latestOnly=true") == [("a-value", 2, a2), ("b-value", 1, b1)]
    assert listed("?subjectPrefix=b") == [("b-value", 1, b1)]
    assert listed("?deleted=true&offset=1&limit=1") == [("a-value", 2, a2)]
    entry = http(f"{registry.url}/schemas?subjectPrefix=b")[2][0]
    assert json.loads(entry["schema"]) == "string" and entry["guid"]
    assert registry.client().get_subjects(offset=1, limit=1) == ["b-value"]

    assert registry.client().get_contexts() == ["."]
    status, _, body = http(f"{registry.url}/v1/metadata/id")
    assert status == 200 and body["id"] == ""
    assert body["scope"]["clusters"]["schema-registry-cluster"] == "schema-registry"


# --- modes ---------------------------------------------------------------------------------


def test_readonly_mode_refuses_changes_with_42205(registry: Running) -> None:
    client = registry.client()
    a1 = client.register_schema("a-value", avro(ADDRESS))
    assert client.get_global_mode() == "READWRITE"
    assert client.update_global_mode("READONLY") == "READONLY"
    assert registry.client().get_global_mode() == "READONLY"

    with pytest.raises(SchemaRegistryError) as excinfo:
        registry.client().register_schema(
            "a-value", avro(PERSON_V2 | {"fields": [{"name": "x", "type": "int", "default": 0}]})
        )
    assert sr_error(excinfo) == (422, 42205)
    assert excinfo.value.error_message == "Subject a-value is in read-only mode"
    # a schema the subject already has still answers its id (Confluent looks it up first)
    assert registry.client().register_schema("a-value", avro(ADDRESS)) == a1
    for delete in (
        lambda: client.delete_version("a-value", 1),
        lambda: client.delete_subject("a-value"),
    ):
        with pytest.raises(SchemaRegistryError) as excinfo:
            delete()
        assert sr_error(excinfo) == (422, 42205)

    # a subject's own mode overrides the global one, and goes back to it when deleted
    assert client.update_mode("b-value", "READWRITE") == "READWRITE"
    assert client.get_mode("b-value") == "READWRITE"
    assert client.register_schema("b-value", avro(ADDRESS)) == a1
    assert client.delete_mode("b-value") == "READWRITE"
    with pytest.raises(SchemaRegistryError) as excinfo:
        client.get_mode("b-value")
    assert sr_error(excinfo) == (404, 40409)
    assert http(f"{registry.url}/mode/b-value?defaultToGlobal=true")[2] == {"mode": "READONLY"}
    with pytest.raises(SchemaRegistryError) as excinfo:
        client.delete_mode("b-value")
    assert sr_error(excinfo) == (404, 40401)

    status, _, body = http(f"{registry.url}/mode", "PUT", {"mode": "SIDEWAYS"})
    assert (status, body["error_code"]) == (422, 42204)
    status, _, body = http(f"{registry.url}/mode", "DELETE")
    assert (status, body) == (200, {"mode": "READONLY"})
    assert client.get_global_mode() == "READWRITE"
    assert client.register_schema("c-value", avro(PERSON_V2 | {"fields": []})) > 0


def test_import_mode(registry: Running) -> None:
    client = registry.client()
    client.register_schema("a-value", avro(ADDRESS))
    with pytest.raises(SchemaRegistryError) as excinfo:
        client.update_global_mode("IMPORT")
    assert sr_error(excinfo) == (422, 42205)
    assert excinfo.value.error_message == "Cannot import since found existing subjects"
    assert client.update_mode("imported-value", "IMPORT") == "IMPORT"  # an empty subject

    url = f"{registry.url}/subjects/imported-value/versions"
    status, _, body = http(url, "POST", {"schema": json.dumps(PERSON_V2 | {"fields": []})})
    assert (status, body["error_code"]) == (422, 42205)  # no id: not in read-write mode
    # an id (and a version) are kept as given, without compatibility checks
    status, _, body = http(url, "POST", {"schema": '"string"', "id": 100, "version": 7})
    assert (status, body["id"]) == (200, 100)
    status, _, body = http(url, "POST", {"schema": '"int"', "id": 100})
    assert (status, body["error_code"]) == (422, 42205)  # id 100 is another schema
    assert client.get_versions("imported-value") == [7]
    assert client.get_version("imported-value", 7).schema_id == 100
    # outside IMPORT an id is refused; new ids continue after the imported ones
    status, _, body = http(
        f"{registry.url}/subjects/a-value/versions", "POST", {"schema": '"long"', "id": 200}
    )
    assert (status, body["error_code"]) == (422, 42205)
    assert client.delete_mode("imported-value") == "IMPORT"
    assert client.register_schema("c-value", avro({"type": "long"})) == 101
    assert client.update_global_mode("IMPORT", force=True) == "IMPORT"


# --- config --------------------------------------------------------------------------------


def test_config_without_a_compatibility_level(registry: Running) -> None:
    client = registry.client()
    answer = client.set_config(config=ServerConfig(compatibility_group="application.major.version"))
    assert answer == {"compatibilityGroup": "application.major.version"}
    config = client.get_config()
    assert config.compatibility_group == "application.major.version"
    assert config.compatibility_level is not None and config.compatibility_level.value == "BACKWARD"

    status, _, body = http(f"{registry.url}/config/a-value", "PUT", {"compatibilityGroup": "g"})
    assert (status, body) == (200, {"compatibilityGroup": "g"})
    assert http(f"{registry.url}/config/a-value")[2] == {"compatibilityGroup": "g"}
    # the level keeps the group, and the group the level
    client.set_compatibility("a-value", "FULL")
    assert http(f"{registry.url}/config/a-value")[2] == {
        "compatibilityLevel": "FULL",
        "compatibilityGroup": "g",
    }
    status, _, body = http(f"{registry.url}/config/a-value", "PUT", {"normalize": True})
    assert (status, body) == (200, {"normalize": True})
    status, _, body = http(f"{registry.url}/config/a-value", "PUT", {"normalize": "yes"})
    assert (status, body["error_code"]) == (422, 422)
    deleted = client.delete_config("a-value")
    assert deleted.compatibility_group == "g" and deleted.compatibility_level is not None
    status, _, body = http(f"{registry.url}/config/a-value")
    assert (status, body["error_code"]) == (404, 40408)


# --- methods and paths ---------------------------------------------------------------------


def test_unsupported_methods_and_unknown_paths_answer_json(registry: Running) -> None:
    url = registry.url
    for args, path, status, code in [
        (["-X", "PATCH"], "/subjects", 405, 405),
        (["-X", "OPTIONS"], "/config", 405, 405),
        (["-X", "BREW"], "/schemas/types", 405, 405),
        (["-X", "POST", "-H", "Content-Type: application/json", "-d", "{}"], "/schemas", 405, 405),
        (["-X", "PATCH"], "/no/such/path", 404, 404),
        ([], "/no/such/path", 404, 404),
    ]:
        got, headers, body = curl(url + path, *args)
        assert (got, body) == (status, {"error_code": code, "message": body["message"]}), path
        assert body["message"].startswith(f"HTTP {code} ")
        assert headers["content-type"] == "application/vnd.schemaregistry.v1+json"
    got, headers, body = curl(url + "/schemas/types", "-I")  # HEAD: GET's status, no body
    assert (got, body) == (200, None)
    # errors raised by the HTTP layer itself are JSON too
    status, body = raw_request(url, "GET /sub jects HTTP/1.1\r\nHost: x")
    assert status == 400 and body["error_code"] == 400
    assert body["message"].startswith("HTTP 400 Bad request syntax")


# --- JSON Schema and Protobuf --------------------------------------------------------------


@pytest.mark.parametrize(
    ("schema_type", "text"),
    [("JSON", '{"type": "object"}'), ("PROTOBUF", 'syntax = "proto3"; message M { int32 a = 1; }')],
)
def test_other_schema_types_answer_as_an_avro_only_confluent(
    registry: Running, schema_type: str, text: str
) -> None:
    client = registry.client()
    client.register_schema("a-value", avro(ADDRESS))
    assert client.get_schema_types() == ["AVRO"]
    schema = Schema(text, schema_type)
    calls = [
        lambda: client.register_schema("a-value", schema),
        lambda: client.register_schema("new-value", schema),
        lambda: client.lookup_schema("a-value", schema),
        lambda: client.test_compatibility("a-value", schema),
    ]
    for call in calls:
        with pytest.raises(SchemaRegistryError) as excinfo:
            call()
        assert sr_error(excinfo) == (422, 42201)
        assert excinfo.value.error_message == f"Invalid schema type {schema_type}"
    assert client.get_subjects() == ["a-value"]
