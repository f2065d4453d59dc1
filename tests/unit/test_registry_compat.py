"""The registry's Avro compatibility checker, held against fastavro's own schema resolution.

Every rule case states the expected verdict once and asserts that both the checker and a
real fastavro round trip (encode with the writer schema, decode with the reader schema)
reach it, so the checker cannot drift from what the deserializers actually do.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.read import SchemaResolutionError

from pipelines.stack.registry_compat import (
    MAX_SCHEMA_DEPTH,
    CompatibilityLevel,
    InvalidSchemaError,
    compatibility_errors,
    parse_avro,
    reader_incompatibilities,
)

pytestmark = pytest.mark.unit


def record(name: str, *fields: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"type": "record", "name": name, "fields": list(fields), **extra}


def f(name: str, type_: Any, **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": type_, **extra}


def fastavro_reads(writer: Any, reader: Any, records: list[Any]) -> bool:
    """True when fastavro decodes every record written with ``writer`` using ``reader``."""
    w, r = parse_schema(writer), parse_schema(reader)
    for rec in records:
        buf = io.BytesIO()
        schemaless_writer(buf, w, rec)
        buf.seek(0)
        try:
            schemaless_reader(buf, w, r)
        except SchemaResolutionError:
            return False
    return True


def checker_reads(writer: Any, reader: Any) -> bool:
    return not reader_incompatibilities(
        parse_avro(json.dumps(reader)), parse_avro(json.dumps(writer))
    )


ADDRESS = record("Address", f("street", "string"))
ADDRESS_PLUS = record("Address", f("street", "string"), f("zip", "string"))
NODE = record("Node", f("value", "int"), f("next", ["null", "Node"], default=None))
NODE_PLUS = record(
    "Node",
    f("value", "int"),
    f("next", ["null", "Node"], default=None),
    f("label", "string", default=""),
)
COLOR = {"type": "enum", "name": "Color", "symbols": ["RED", "GREEN", "BLUE"]}
COLOR_RG = {"type": "enum", "name": "Color", "symbols": ["RED", "GREEN"]}
COLOR_RG_DEFAULT = {**COLOR_RG, "default": "RED"}

# (id, writer, reader, records written with writer, reader can read them)
RULES: list[tuple[str, Any, Any, list[Any], bool]] = [
    (
        "reader field added without default",
        record("R", f("a", "int")),
        record("R", f("a", "int"), f("b", "string")),
        [{"a": 1}],
        False,
    ),
    (
        "reader field added with default",
        record("R", f("a", "int")),
        record("R", f("a", "int"), f("b", "string", default="x")),
        [{"a": 1}],
        True,
    ),
    (
        "writer field dropped by reader",
        record("R", f("a", "int"), f("b", "string")),
        record("R", f("a", "int")),
        [{"a": 1, "b": "x"}],
        True,
    ),
    *[
        (f"promote {w} to {r}", record("R", f("v", w)), record("R", f("v", r)), [{"v": val}], True)
        for w, r, val in [
            ("int", "long", 7),
            ("int", "float", 7),
            ("int", "double", 7),
            ("long", "float", 2**40),
            ("long", "double", 2**40),
            ("float", "double", 1.5),
            ("string", "bytes", "hé"),
            ("bytes", "string", b"ok"),
        ]
    ],
    *[
        (f"no {w} to {r}", record("R", f("v", w)), record("R", f("v", r)), [{"v": val}], False)
        for w, r, val in [
            ("long", "int", 7),
            ("double", "float", 1.5),
            ("float", "long", 1.5),
            ("string", "int", "x"),
            ("boolean", "int", True),
        ]
    ],
    (
        "enum symbol unknown to reader",
        record("R", f("c", COLOR)),
        record("R", f("c", COLOR_RG)),
        [{"c": "RED"}, {"c": "BLUE"}],
        False,
    ),
    (
        "enum symbol unknown to reader with reader default",
        record("R", f("c", COLOR)),
        record("R", f("c", COLOR_RG_DEFAULT)),
        [{"c": "RED"}, {"c": "BLUE"}],
        True,
    ),
    (
        "enum symbol added by reader",
        record("R", f("c", COLOR_RG)),
        record("R", f("c", COLOR)),
        [{"c": "GREEN"}],
        True,
    ),
    (
        "writer union with a branch the reader lacks",
        record("R", f("v", ["null", "string"])),
        record("R", f("v", "string")),
        [{"v": "x"}, {"v": None}],
        False,
    ),
    (
        "reader union around the writer type",
        record("R", f("v", "string")),
        record("R", f("v", ["null", "string"])),
        [{"v": "x"}],
        True,
    ),
    (
        "union branches promoted",
        record("R", f("v", ["null", "int"])),
        record("R", f("v", ["null", "long"])),
        [{"v": None}, {"v": 3}],
        True,
    ),
    (
        "union branch removed",
        record("R", f("v", ["null", "string", "int"])),
        record("R", f("v", ["null", "string"])),
        [{"v": "x"}, {"v": 4}],
        False,
    ),
    (
        "nested record field added without default",
        record("R", f("home", ADDRESS)),
        record("R", f("home", ADDRESS_PLUS)),
        [{"home": {"street": "s"}}],
        False,
    ),
    (
        "nested record field added with default",
        record("R", f("home", ADDRESS)),
        record(
            "R",
            f("home", record("Address", f("street", "string"), f("zip", "string", default=""))),
        ),
        [{"home": {"street": "s"}}],
        True,
    ),
    (
        "named reference in the writer resolves to the changed type",
        record("R", f("home", ADDRESS), f("work", "Address")),
        record("R", f("work", ADDRESS_PLUS)),
        [{"home": {"street": "h"}, "work": {"street": "w"}}],
        False,
    ),
    (
        "named reference in both, compatible",
        record("R", f("home", ADDRESS), f("work", "Address")),
        record("R", f("home", ADDRESS), f("work", "Address")),
        [{"home": {"street": "h"}, "work": {"street": "w"}}],
        True,
    ),
    (
        "record renamed",
        record("R", f("a", "int")),
        record("S", f("a", "int")),
        [{"a": 1}],
        False,
    ),
    (
        "record renamed with alias of the old name",
        record("R", f("a", "int")),
        record("S", f("a", "int"), aliases=["R"]),
        [{"a": 1}],
        True,
    ),
    (
        "namespace changed, same name",
        record("R", f("a", "int"), namespace="old.ns"),
        record("R", f("a", "int"), namespace="new.ns"),
        [{"a": 1}],
        True,
    ),
    (
        "field renamed with alias of the old name",
        record("R", f("a", "int")),
        record("R", f("b", "int", aliases=["a"])),
        [{"a": 1}],
        True,
    ),
    (
        "fixed size changed",
        record("R", f("h", {"type": "fixed", "name": "H", "size": 4})),
        record("R", f("h", {"type": "fixed", "name": "H", "size": 8})),
        [{"h": b"1234"}],
        False,
    ),
    (
        "array items promoted",
        record("R", f("xs", {"type": "array", "items": "int"})),
        record("R", f("xs", {"type": "array", "items": "long"})),
        [{"xs": [1, 2]}],
        True,
    ),
    (
        "map values of another type",
        record("R", f("m", {"type": "map", "values": "string"})),
        record("R", f("m", {"type": "map", "values": "int"})),
        [{"m": {"k": "v"}}],
        False,
    ),
    (
        "recursive type gains a field with default",
        NODE,
        NODE_PLUS,
        [{"value": 1, "next": {"value": 2, "next": None}}],
        True,
    ),
    (
        "recursive type loses a field without default in reader",
        NODE_PLUS,
        record(
            "Node",
            f("value", "int"),
            f("next", ["null", "Node"], default=None),
            f("label", "string"),
            f("extra", "int"),
        ),
        [{"value": 1, "next": {"value": 2, "next": None, "label": "b"}, "label": "a"}],
        False,
    ),
]


@pytest.mark.parametrize(
    ("writer", "reader", "records", "expected"),
    [case[1:] for case in RULES],
    ids=[case[0] for case in RULES],
)
def test_checker_agrees_with_fastavro(
    writer: Any, reader: Any, records: list[Any], expected: bool
) -> None:
    assert fastavro_reads(writer, reader, records) is expected
    assert checker_reads(writer, reader) is expected


def test_enum_default_is_what_fastavro_decodes() -> None:
    writer = record("R", f("c", COLOR))
    reader = record("R", f("c", COLOR_RG_DEFAULT))
    buf = io.BytesIO()
    schemaless_writer(buf, parse_schema(writer), {"c": "BLUE"})
    buf.seek(0)
    assert schemaless_reader(buf, parse_schema(writer), parse_schema(reader)) == {"c": "RED"}
    assert checker_reads(writer, reader)


def test_incompatibility_names_the_rule_and_the_field() -> None:
    old = parse_avro(json.dumps(record("R", f("a", "int"))))
    new = parse_avro(json.dumps(record("R", f("a", "int"), f("b", "string"))))
    [problem] = reader_incompatibilities(new, old)
    assert problem.kind == "READER_FIELD_MISSING_DEFAULT_VALUE"
    assert problem.location == "/fields/1"
    assert "'b'" in problem.message


# --- modes ---------------------------------------------------------------------------------

V_A = record("R", f("a", "int"))
V_AB_DEFAULT = record("R", f("a", "int"), f("b", "int", default=0))
V_AB = record("R", f("a", "int"), f("b", "int"))


def errors(new: Any, previous: list[Any], level: str) -> list[str]:
    return compatibility_errors(
        parse_avro(json.dumps(new)),
        [parse_avro(json.dumps(p)) for p in previous],
        CompatibilityLevel(level),
    )


@pytest.mark.parametrize(
    ("previous", "new", "level", "compatible"),
    [
        # BACKWARD: the new schema reads data of the latest one
        ([V_A], V_AB_DEFAULT, "BACKWARD", True),
        ([V_A], V_AB, "BACKWARD", False),
        ([V_AB], V_A, "BACKWARD", True),
        # FORWARD: the latest schema reads data of the new one
        ([V_A], V_AB, "FORWARD", True),
        ([V_AB], V_A, "FORWARD", False),
        ([V_AB_DEFAULT], V_A, "FORWARD", True),
        # FULL: both
        ([V_A], V_AB_DEFAULT, "FULL", True),
        ([V_A], V_AB, "FULL", False),
        ([V_AB], V_A, "FULL", False),
        # non-transitive levels only look at the latest version ...
        ([V_A, V_AB_DEFAULT], V_AB, "BACKWARD", True),
        ([V_AB, V_AB_DEFAULT], V_A, "FORWARD", True),
        ([V_A, V_AB_DEFAULT], V_AB, "FULL", True),
        # ... transitive ones at all of them
        ([V_A, V_AB_DEFAULT], V_AB, "BACKWARD_TRANSITIVE", False),
        ([V_AB, V_AB_DEFAULT], V_A, "FORWARD_TRANSITIVE", False),
        ([V_A, V_AB_DEFAULT], V_AB, "FULL_TRANSITIVE", False),
        ([V_A, V_AB_DEFAULT], V_AB_DEFAULT, "FULL_TRANSITIVE", True),
        # NONE accepts anything; a first schema is always compatible
        ([V_A], record("R", f("a", "string")), "NONE", True),
        ([], V_AB, "FULL_TRANSITIVE", True),
    ],
)
def test_modes(previous: list[Any], new: Any, level: str, compatible: bool) -> None:
    assert (errors(new, previous, level) == []) is compatible


def test_full_reports_both_directions() -> None:
    old = record("R", f("a", "int"), f("gone", "string"))
    new = record("R", f("a", "int"), f("added", "string"))
    messages = errors(new, [old], "FULL")
    assert any("new schema cannot read" in m and "added" in m for m in messages)
    assert any("old schema cannot read" in m and "gone" in m for m in messages)


def test_level_properties() -> None:
    level = CompatibilityLevel("FULL_TRANSITIVE")
    assert level.backward and level.forward and level.transitive
    assert not CompatibilityLevel.FORWARD.backward
    assert not CompatibilityLevel.NONE.backward and not CompatibilityLevel.NONE.forward
    with pytest.raises(ValueError):
        CompatibilityLevel("SIDEWAYS")


# --- parsing -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "{not json",
        json.dumps({"type": "nosuchtype"}),
        json.dumps(record("R", f("a", "Undefined"))),
        json.dumps(record("R", f("a", "int", default="x"))),
        json.dumps({"type": "enum", "name": "E", "symbols": ["A"], "default": "Z"}),
        json.dumps(["int", "int"]),
        json.dumps(["null", ["int", "string"]]),
        json.dumps(record("R", f("a", ["null", ADDRESS, "Address"]))),
    ],
)
def test_invalid_schemas_are_rejected(text: str) -> None:
    with pytest.raises(InvalidSchemaError, match="Invalid schema"):
        parse_avro(text)


def test_canonical_text_ignores_whitespace_only() -> None:
    compact = parse_avro(json.dumps(V_A, separators=(",", ":")))
    spaced = parse_avro(json.dumps(V_A, indent=4))
    assert compact.canonical == spaced.canonical
    assert parse_avro(json.dumps(V_AB)).canonical != compact.canonical


def test_primitive_schema_parses() -> None:
    assert parse_avro('"string"').parsed == "string"
    assert checker_reads("int", "long") and not checker_reads("long", "int")


# --- canonical form: Confluent's schema identity ---------------------------------------------
# Confluent stores and compares AvroSchema.canonicalString() = Avro Java's Schema.toString()
# of the parsed schema (KafkaSchemaRegistry.canonicalizeSchema); see canonical_form.

REPORT_AVSC = Path(__file__).resolve().parents[2] / "schemas" / "avro" / "report.avsc"


def reordered(value: Any) -> Any:
    """The same JSON with every object's keys in reverse order."""
    if isinstance(value, dict):
        return {k: reordered(v) for k, v in reversed(list(value.items()))}
    if isinstance(value, list):
        return [reordered(v) for v in value]
    return value


def test_report_schema_with_its_keys_reordered_is_the_same_schema() -> None:
    text = REPORT_AVSC.read_text(encoding="utf-8")
    other = json.dumps(reordered(json.loads(text)), separators=(",", ":"), ensure_ascii=False)
    assert other != text
    assert parse_avro(other).canonical == parse_avro(text).canonical
    # the canonical text is itself a schema with the same canonical text
    canonical = parse_avro(text).canonical
    assert parse_avro(canonical).canonical == canonical


def test_canonical_form_writes_what_avro_java_writes() -> None:
    # fields in Avro's order, primitive objects collapsed, namespace and alias made relative,
    # order=ascending dropped, properties kept in their order after the reserved keys
    text = json.dumps(
        {
            "aliases": ["gov.Old"],
            "fields": [
                {
                    "order": "ascending",
                    "default": "x",
                    "doc": "d",
                    "type": {"type": "string"},
                    "name": "a",
                    "zz": 1,
                    "aa": 2,
                },
                {"name": "t", "type": {"logicalType": "timestamp-millis", "type": "long"}},
                {
                    "name": "e",
                    "type": {
                        "symbols": ["A", "B"],
                        "name": "E",
                        "type": "enum",
                        "namespace": "gov",
                        "default": "A",
                    },
                },
                {"name": "e2", "type": "gov.E"},
                {
                    "name": "n",
                    "type": {"type": "record", "name": "N", "namespace": "", "fields": []},
                },
            ],
            "custom": True,
            "doc": "top",
            "name": "R",
            "namespace": "gov",
            "type": "record",
        }
    )
    assert parse_avro(text).canonical == (
        '{"type":"record","name":"R","namespace":"gov","doc":"top","fields":['
        '{"name":"a","type":"string","doc":"d","default":"x","zz":1,"aa":2},'
        '{"name":"t","type":{"type":"long","logicalType":"timestamp-millis"}},'
        '{"name":"e","type":{"type":"enum","name":"E","symbols":["A","B"],"default":"A"}},'
        '{"name":"e2","type":"E"},'
        '{"name":"n","type":{"type":"record","name":"N","namespace":"","fields":[]}}],'
        '"custom":true,"aliases":["Old"]}'
    )


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ({"type": "string"}, "string"),
        (record("R", f("a", "int"), namespace="n"), record("n.R", f("a", "int"))),
        (
            record("R", f("x", record("S", f("b", "int"))), f("y", "S"), namespace="n"),
            record("R", f("x", record("S", f("b", "int"))), f("y", "n.S"), namespace="n"),
        ),
        (record("R", f("a", "int", order="ascending")), record("R", f("a", "int"))),
    ],
)
def test_equivalent_spellings_share_a_canonical_form(a: Any, b: Any) -> None:
    assert parse_avro(json.dumps(a)).canonical == parse_avro(json.dumps(b)).canonical


@pytest.mark.parametrize(
    "changed",
    [
        record("R", f("a", "int", doc="another doc")),
        record("R", f("a", "int", default=1)),
        record("R", f("a", "int"), doc="a record doc"),
        record("R", f("a", "int"), aliases=["Q"]),
        record("R", f("a", "int", order="descending")),
    ],
)
def test_doc_default_aliases_and_order_make_another_schema_as_in_confluent(changed: Any) -> None:
    base = parse_avro(json.dumps(record("R", f("a", "int"))))
    assert parse_avro(json.dumps(changed)).canonical != base.canonical


def nested_arrays(levels: int) -> Any:
    """An int inside ``levels`` arrays: ``levels`` JSON objects deep."""
    schema: Any = "int"
    for _ in range(levels):
        schema = {"type": "array", "items": schema}
    return schema


def test_deep_nesting_and_lone_surrogates_are_invalid_schemas() -> None:
    with pytest.raises(InvalidSchemaError, match="nested deeper"):
        parse_avro(json.dumps(nested_arrays(MAX_SCHEMA_DEPTH + 1)))
    with pytest.raises(InvalidSchemaError, match="nested deeper"):
        parse_avro("[" * 100_000 + "]" * 100_000)  # beyond json's own recursion limit
    parse_avro(json.dumps(nested_arrays(MAX_SCHEMA_DEPTH)))
    with pytest.raises(InvalidSchemaError, match="lone surrogate"):
        parse_avro(json.dumps(record("R", f("a", "int", doc="\ud800"))))
