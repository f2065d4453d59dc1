"""Avro schema parsing and compatibility checking for the embedded schema registry.

Pure functions, no I/O. Schemas are parsed with fastavro's ``parse_schema`` (the same
parser the serializers use), and compatibility follows the Avro specification's schema
resolution rules as fastavro applies them when it decodes with a writer and a reader
schema (``fastavro._read_py.match_schemas`` / ``read_record`` / ``read_enum`` /
``read_union``), checked eagerly over the whole schema instead of per record:

- a reader record field missing from the writer needs a default;
- writer fields the reader lacks are skipped;
- named types match by unqualified name or by a reader alias; fixed sizes must agree;
- a writer enum symbol unknown to the reader needs a reader enum default;
- promotions int→long→float→double, int/long→float/double, string↔bytes;
- every branch of a writer union must be readable; a reader union must have a branch
  that can read the writer's type;
- arrays and maps resolve their items and values; named references resolve recursively
  (recursive types are assumed compatible on re-entry).

The modes are those of Confluent Schema Registry: BACKWARD means the new schema (as
reader) can read data written with the previous one (the latest, or all for
``_TRANSITIVE``), FORWARD the reverse, FULL both.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from fastavro import parse_schema

from pipelines.errors import GovstreamError

PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
NAMED = frozenset({"record", "error", "enum", "fixed"})

# writer type -> reader types it may be promoted to (Avro spec, "Schema Resolution")
PROMOTIONS: dict[str, frozenset[str]] = {
    "int": frozenset({"long", "float", "double"}),
    "long": frozenset({"float", "double"}),
    "float": frozenset({"double"}),
    "string": frozenset({"bytes"}),
    "bytes": frozenset({"string"}),
}


class CompatibilityLevel(StrEnum):
    """Confluent's compatibility levels."""

    NONE = "NONE"
    BACKWARD = "BACKWARD"
    BACKWARD_TRANSITIVE = "BACKWARD_TRANSITIVE"
    FORWARD = "FORWARD"
    FORWARD_TRANSITIVE = "FORWARD_TRANSITIVE"
    FULL = "FULL"
    FULL_TRANSITIVE = "FULL_TRANSITIVE"

    @property
    def transitive(self) -> bool:
        return self.value.endswith("_TRANSITIVE")

    @property
    def backward(self) -> bool:
        return self.value.startswith(("BACKWARD", "FULL"))

    @property
    def forward(self) -> bool:
        return self.value.startswith(("FORWARD", "FULL"))


DEFAULT_LEVEL = CompatibilityLevel.BACKWARD


class InvalidSchemaError(GovstreamError):
    """The text is not a valid Avro schema."""


@dataclass(frozen=True)
class AvroSchema:
    """A parsed Avro schema: its canonical text (:func:`canonical_form`), fastavro's parsed
    form and named types."""

    canonical: str
    parsed: Any
    named: dict[str, Any] = field(repr=False, compare=False)


@dataclass(frozen=True)
class Incompatibility:
    """One reason why a reader cannot read what a writer wrote."""

    kind: str  # e.g. READER_FIELD_MISSING_DEFAULT_VALUE, as Avro's SchemaCompatibility
    location: str  # JSON-pointer-like path in the reader schema
    message: str

    def __str__(self) -> str:
        return (
            f"{{errorType:'{self.kind}', location:'{self.location}', description:'{self.message}'}}"
        )


# Keys the Avro Java parser reads itself; every other key of a schema or field is a
# property, written back in the order it came (org.apache.avro.Schema SCHEMA_RESERVED,
# ENUM_RESERVED, FIELD_RESERVED).
SCHEMA_RESERVED = frozenset(
    {"doc", "fields", "items", "name", "namespace", "size", "symbols", "values", "type", "aliases"}
)
ENUM_RESERVED = SCHEMA_RESERVED | {"default"}
FIELD_RESERVED = frozenset({"default", "doc", "name", "order", "type", "aliases"})

# JSON nesting a schema may have (objects and arrays, counted from the top). Deeper text is
# refused before any recursive walk: Python's recursion limit must never be what stops it.
MAX_SCHEMA_DEPTH = 100


def canonical_form(schema_json: Any, known: frozenset[str] | set[str] = frozenset()) -> str:
    """The text Confluent Schema Registry stores and compares for an Avro schema.

    Confluent parses a schema with Avro Java and keeps ``AvroSchema.canonicalString()``,
    which is ``org.apache.avro.Schema.toString()`` of the parsed schema
    (``KafkaSchemaRegistry.canonicalizeSchema`` sets it as the schema text; register and
    lookup find an existing schema by that text). This function writes what that method
    writes, so two texts get one id exactly when Confluent gives them one:

    - whitespace and the order of the reserved keys do not matter (``type``, ``name``,
      ``namespace``, ``doc``, ``fields``/``symbols``/``size``/``items``/``values``,
      ``default``, ``order``, ``aliases`` are written in Avro's fixed order);
    - ``{"type": "string"}`` is ``"string"``; a named type used again is written as a
      reference, short when it is in the enclosing namespace; ``namespace`` is written only
      when it differs from the enclosing one; a field's ``"order": "ascending"`` is dropped;
    - ``doc``, ``default``, ``aliases`` and other properties are kept, so a schema that
      differs in a doc or a default is another schema (another id, another version), as in
      Confluent; other properties keep their order, as Avro Java's ``JsonProperties`` do.

    Not Parsing Canonical Form (the Avro spec's fingerprint form drops docs, defaults and
    aliases): Confluent compares ``canonicalString()``, not that form.

    ``schema_json`` must be a schema fastavro's ``parse_schema`` accepted. ``known`` holds
    the full names of types defined elsewhere (by schema references): they are written as
    names, as Avro Java does for the types a ``Schema.Parser`` already knows.
    """
    writer = _CanonicalWriter()
    writer.known.update(known)
    return json.dumps(writer.schema(schema_json, None), separators=(",", ":"), ensure_ascii=False)


class _CanonicalWriter:
    """``org.apache.avro.Schema.toJson`` over parsed JSON: names are resolved and written
    relative to the enclosing record's namespace, as the Java parser and writer do."""

    def __init__(self) -> None:
        self.known: set[str] = set()

    def schema(self, schema: Any, space: str | None) -> Any:
        if isinstance(schema, list):
            return [self.schema(branch, space) for branch in schema]
        if isinstance(schema, str):
            return self.reference(schema, space)
        kind = schema["type"]
        if isinstance(kind, (dict, list)):  # {"type": {...}}: the inner schema
            return self.schema(kind, space)
        if kind in PRIMITIVES:
            props = _props(schema, SCHEMA_RESERVED)
            return {"type": kind, **props} if props else kind
        if kind in NAMED:
            return self.named(schema, kind, space)
        if kind == "array":
            return {
                "type": "array",
                "items": self.schema(schema["items"], space),
                **_props(schema, SCHEMA_RESERVED),
            }
        if kind == "map":
            return {
                "type": "map",
                "values": self.schema(schema["values"], space),
                **_props(schema, SCHEMA_RESERVED),
            }
        return self.reference(kind, space)  # {"type": "SomeRecord"}

    def reference(self, name: str, space: str | None) -> str:
        if name in PRIMITIVES:
            return name
        full = name if "." in name or not space else f"{space}.{name}"
        if full not in self.known and name in self.known:  # Java: retry in no namespace
            full = name
        namespace, _, short = full.rpartition(".")
        return short if (namespace or None) == space else full

    def named(self, schema: dict[str, Any], kind: str, space: str | None) -> Any:
        name = str(schema["name"])
        if "." in name:
            namespace: str | None = name.rpartition(".")[0]
        else:
            given = schema.get("namespace")
            namespace = given if isinstance(given, str) else space
        namespace = namespace or None
        short = name.rpartition(".")[2]
        full = f"{namespace}.{short}" if namespace else short
        if full in self.known:  # fastavro refuses redefinitions; written as a reference
            return self.reference(full, space)
        self.known.add(full)
        out: dict[str, Any] = {"type": kind, "name": short}
        if namespace != space:
            out["namespace"] = namespace or ""
        doc = schema.get("doc")
        if isinstance(doc, str):
            out["doc"] = doc
        reserved = SCHEMA_RESERVED
        if kind in ("record", "error"):
            out["fields"] = [self.field(fld, namespace) for fld in schema["fields"]]
        elif kind == "enum":
            reserved = ENUM_RESERVED
            out["symbols"] = list(schema["symbols"])
            if isinstance(schema.get("default"), str):
                out["default"] = schema["default"]
        else:
            out["size"] = schema["size"]
        out.update(_props(schema, reserved))
        aliases = schema.get("aliases") or []
        if aliases:
            out["aliases"] = [_alias(str(a), namespace) for a in aliases]
        return out

    def field(self, fld: dict[str, Any], space: str | None) -> dict[str, Any]:
        out: dict[str, Any] = {"name": fld["name"], "type": self.schema(fld["type"], space)}
        if isinstance(fld.get("doc"), str):
            out["doc"] = fld["doc"]
        if "default" in fld:
            out["default"] = fld["default"]
        order = str(fld.get("order", "ascending")).lower()
        if order != "ascending":
            out["order"] = order
        if fld.get("aliases"):
            out["aliases"] = list(fld["aliases"])
        out.update(_props(fld, FIELD_RESERVED))
        return out


def _props(node: dict[str, Any], reserved: frozenset[str]) -> dict[str, Any]:
    return {k: v for k, v in node.items() if k not in reserved}


def _alias(alias: str, namespace: str | None) -> str:
    """An alias as Avro Java writes it: short when in the type's own namespace."""
    if "." not in alias:
        return alias
    alias_space, _, short = alias.rpartition(".")
    return short if alias_space == namespace else alias


def json_depth(value: Any) -> int:
    """How deeply JSON arrays and objects nest in ``value`` (a scalar is 0), without
    recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        depth += 1
        deepest = max(deepest, depth)
        stack.extend((child, depth) for child in children)
    return deepest


def _load_json(text: str) -> Any:
    """The JSON of a schema text, refused (:class:`InvalidSchemaError`) when it is not JSON
    or nests deeper than :data:`MAX_SCHEMA_DEPTH`."""
    try:
        schema_json = json.loads(text)
    except RecursionError:
        raise InvalidSchemaError(
            f"Invalid schema: nested deeper than {MAX_SCHEMA_DEPTH} levels"
        ) from None
    except (TypeError, ValueError) as exc:
        raise InvalidSchemaError(f"Invalid schema: not JSON: {exc}") from exc
    if json_depth(schema_json) > MAX_SCHEMA_DEPTH:
        raise InvalidSchemaError(f"Invalid schema: nested deeper than {MAX_SCHEMA_DEPTH} levels")
    return schema_json


def parse_avro(text: str, references: Sequence[str] = ()) -> AvroSchema:
    """Parse and validate Avro schema text; raises :class:`InvalidSchemaError` for text
    that is not JSON, nests deeper than :data:`MAX_SCHEMA_DEPTH`, holds a lone surrogate
    (it has no UTF-8 form, so it could be neither stored nor sent) or is no valid Avro.

    ``references`` are the texts of the schemas it refers to (Confluent schema references),
    each after the ones it refers to itself: their named types are parsed first, with the
    same parser, so that ``text`` may use them by name, as Confluent's ``AvroSchemaProvider``
    does. They are not part of the canonical text, which names them."""
    named: dict[str, Any] = {}
    for ref_text in references:
        try:
            parse_schema(_load_json(ref_text), named_schemas=named)
        except InvalidSchemaError:
            raise
        except Exception as exc:  # noqa: BLE001 (as below)
            raise InvalidSchemaError(
                f"Invalid schema: a referenced schema: {type(exc).__name__}: {exc}"
            ) from exc
    referenced = frozenset(named)
    schema_json = _load_json(text)
    try:
        parsed = parse_schema(schema_json, named_schemas=named)
    except Exception as exc:  # fastavro raises SchemaParseException, UnknownType, TypeError…
        raise InvalidSchemaError(f"Invalid schema: {type(exc).__name__}: {exc}") from exc
    _check_unions(parsed, named, set())
    canonical = canonical_form(schema_json, referenced)
    try:
        canonical.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidSchemaError(
            "Invalid schema: it contains a lone surrogate (\\ud800-\\udfff), which has no "
            "UTF-8 encoding"
        ) from None
    return AvroSchema(canonical, parsed, named)


def _check_unions(schema: Any, named: dict[str, Any], seen: set[str]) -> None:
    """Reject what fastavro lets through but the Avro spec forbids in unions."""
    if isinstance(schema, list):
        keys: list[str] = []
        for branch in schema:
            if isinstance(branch, list):
                raise InvalidSchemaError(
                    "Invalid schema: unions may not immediately contain unions"
                )
            keys.append(_branch_key(branch, named))
            _check_unions(branch, named, seen)
        duplicates = sorted({k for k in keys if keys.count(k) > 1})
        if duplicates:
            raise InvalidSchemaError(f"Invalid schema: duplicate types in union: {duplicates}")
        return
    if isinstance(schema, str):
        if schema in named and schema not in seen:
            seen.add(schema)
            _check_unions(named[schema], named, seen)
        return
    if isinstance(schema, dict):
        kind = schema.get("type")
        if kind in ("record", "error"):
            if schema.get("name") in seen:
                return
            seen.add(schema["name"])
            for fld in schema.get("fields", []):
                _check_unions(fld["type"], named, seen)
        elif kind == "array":
            _check_unions(schema["items"], named, seen)
        elif kind == "map":
            _check_unions(schema["values"], named, seen)


def _branch_key(branch: Any, named: dict[str, Any]) -> str:
    schema = branch
    if isinstance(schema, str) and schema in named:
        return str(named[schema]["name"])
    if isinstance(schema, dict):
        kind = schema["type"]
        return str(schema["name"]) if kind in NAMED else str(kind)
    return str(schema)


# --- resolution check ----------------------------------------------------------------------


@dataclass
class _Ctx:
    reader_named: dict[str, Any]
    writer_named: dict[str, Any]
    seen: set[tuple[str, str]] = field(default_factory=set)


def _resolve(schema: Any, named: dict[str, Any]) -> Any:
    """Replace a named-type reference by its definition."""
    if isinstance(schema, str) and schema not in PRIMITIVES:
        return named.get(schema, schema)
    return schema


def _type_of(schema: Any) -> str:
    if isinstance(schema, list):
        return "union"
    if isinstance(schema, dict):
        return str(schema["type"])
    return str(schema)


def _describe(schema: Any) -> str:
    kind = _type_of(schema)
    if isinstance(schema, dict) and kind in NAMED:
        return f"{kind} {schema['name']}"
    return kind


def _unqualified(name: str) -> str:
    return name.rsplit(".", 1)[-1]


def _names_match(reader: dict[str, Any], writer: dict[str, Any]) -> bool:
    """Named types match by unqualified name or by a reader alias (as fastavro and Avro)."""
    writer_name, reader_name = str(writer["name"]), str(reader["name"])
    aliases = {str(a) for a in reader.get("aliases", [])}
    aliases |= {_unqualified(a) for a in aliases}
    return _unqualified(writer_name) == _unqualified(reader_name) or bool(
        {writer_name, _unqualified(writer_name)} & aliases
    )


def reader_incompatibilities(reader: AvroSchema, writer: AvroSchema) -> list[Incompatibility]:
    """Why ``reader`` cannot read every datum written with ``writer`` (empty: it can)."""
    ctx = _Ctx(reader.named, writer.named)
    return _check(reader.parsed, writer.parsed, "", ctx)


def can_read(reader: AvroSchema, writer: AvroSchema) -> bool:
    return not reader_incompatibilities(reader, writer)


def _check(reader: Any, writer: Any, path: str, ctx: _Ctx) -> list[Incompatibility]:
    reader = _resolve(reader, ctx.reader_named)
    writer = _resolve(writer, ctx.writer_named)
    r_type, w_type = _type_of(reader), _type_of(writer)

    if w_type == "union":
        problems: list[Incompatibility] = []
        for branch in writer:
            problems.extend(_check(reader, branch, path, ctx))
        return problems
    if r_type == "union":
        # like fastavro: the first branch that matches shallowly is the one read with
        for index, branch in enumerate(reader):
            if _branch_matches(branch, writer, ctx):
                return _check(branch, writer, f"{path}/{index}", ctx)
        return [
            Incompatibility(
                "MISSING_UNION_BRANCH",
                path or "/",
                f"reader union lacks a branch that can read writer type {_describe(writer)}",
            )
        ]
    if r_type == w_type:
        if r_type in PRIMITIVES:
            return []
        if r_type in ("record", "error"):
            return _check_record(reader, writer, path, ctx)
        if r_type == "enum":
            return _check_enum(reader, writer, path)
        if r_type == "fixed":
            return _check_fixed(reader, writer, path)
        if r_type == "array":
            return _check(reader["items"], writer["items"], f"{path}/items", ctx)
        if r_type == "map":
            return _check(reader["values"], writer["values"], f"{path}/values", ctx)
    if r_type in PROMOTIONS.get(w_type, frozenset()):
        return []
    return [
        Incompatibility(
            "TYPE_MISMATCH",
            path or "/",
            f"reader type {_describe(reader)} cannot read writer type {_describe(writer)}",
        )
    ]


def _branch_matches(reader_branch: Any, writer: Any, ctx: _Ctx) -> bool:
    """Shallow match used to pick a reader union branch (fastavro's ``match_types``)."""
    reader_branch = _resolve(reader_branch, ctx.reader_named)
    r_type, w_type = _type_of(reader_branch), _type_of(writer)
    if r_type in NAMED and w_type in NAMED:
        return _names_match(reader_branch, writer)
    return r_type == w_type or r_type in PROMOTIONS.get(w_type, frozenset())


def _check_record(
    reader: dict[str, Any], writer: dict[str, Any], path: str, ctx: _Ctx
) -> list[Incompatibility]:
    if not _names_match(reader, writer):
        return [_name_mismatch(reader, writer, path)]
    key = (str(reader["name"]), str(writer["name"]))
    if key in ctx.seen:  # recursive type: assume compatible on re-entry
        return []
    ctx.seen.add(key)
    writer_fields = {f["name"]: f for f in writer["fields"]}
    problems: list[Incompatibility] = []
    for index, r_field in enumerate(reader["fields"]):
        names = [r_field["name"], *r_field.get("aliases", [])]
        w_field = next((writer_fields[n] for n in names if n in writer_fields), None)
        field_path = f"{path}/fields/{index}"
        if w_field is None:
            if "default" not in r_field:
                problems.append(
                    Incompatibility(
                        "READER_FIELD_MISSING_DEFAULT_VALUE",
                        field_path,
                        f"field '{r_field['name']}' of {reader['name']} has no default value "
                        "and is missing in the writer schema",
                    )
                )
            continue
        problems.extend(_check(r_field["type"], w_field["type"], f"{field_path}/type", ctx))
    return problems


def _check_enum(reader: dict[str, Any], writer: dict[str, Any], path: str) -> list[Incompatibility]:
    if not _names_match(reader, writer):
        return [_name_mismatch(reader, writer, path)]
    missing = [s for s in writer["symbols"] if s not in reader["symbols"]]
    if missing and not reader.get("default"):
        return [
            Incompatibility(
                "MISSING_ENUM_SYMBOLS",
                f"{path}/symbols",
                f"reader enum {reader['name']} lacks symbols {missing} and has no default",
            )
        ]
    return []


def _check_fixed(
    reader: dict[str, Any], writer: dict[str, Any], path: str
) -> list[Incompatibility]:
    if not _names_match(reader, writer):
        return [_name_mismatch(reader, writer, path)]
    if reader["size"] != writer["size"]:
        return [
            Incompatibility(
                "FIXED_SIZE_MISMATCH",
                f"{path}/size",
                f"fixed {reader['name']} has size {reader['size']}, writer {writer['size']}",
            )
        ]
    return []


def _name_mismatch(reader: dict[str, Any], writer: dict[str, Any], path: str) -> Incompatibility:
    return Incompatibility(
        "NAME_MISMATCH",
        f"{path}/name",
        f"reader name {reader['name']} does not match writer name {writer['name']}",
    )


# --- modes ---------------------------------------------------------------------------------


def compatibility_errors(
    new: AvroSchema, previous: Sequence[AvroSchema], level: CompatibilityLevel
) -> list[str]:
    """Messages of every rule ``new`` breaks against ``previous`` (oldest first) under
    ``level``; empty when compatible. Non-transitive levels look at the last one only."""
    if level is CompatibilityLevel.NONE or not previous:
        return []
    targets = list(previous) if level.transitive else [previous[-1]]
    messages: list[str] = []
    for old in targets:
        if level.backward:
            for problem in reader_incompatibilities(new, old):
                messages.append(f"new schema cannot read data written with an old one: {problem}")
        if level.forward:
            for problem in reader_incompatibilities(old, new):
                messages.append(f"old schema cannot read data written with the new one: {problem}")
    return messages
