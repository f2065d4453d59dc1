"""The embedded, Confluent-compatible schema registry.

A REST subset of Confluent Schema Registry, enough for confluent-kafka's
``SchemaRegistryClient``, ``AvroSerializer`` and ``AvroDeserializer`` to work unchanged:

==========================================================  ==================================
``POST /subjects/{s}/versions``                             register (same schema → same id)
``POST /subjects/{s}``                                      look a schema up in a subject
``GET /schemas/ids/{id}`` (``/schema``, ``/versions``,      a schema by its global id (``/schema``:
``/subjects``)                                              the schema text alone)
``GET /schemas`` (``subjectPrefix``, ``deleted``,           every version's schema, by subject
``latestOnly``, ``offset``, ``limit``)                      and version
``GET /schemas/guids/{guid}``, ``GET /schemas/types``
``GET /subjects``, ``GET /subjects/{s}/versions``
``GET /subjects/{s}/versions/{v|latest}`` (``/schema``,
``/referencedby``)
``DELETE /subjects/{s}``, ``DELETE /subjects/{s}/versions/{v}``  soft, or ``?permanent=true``
``POST /compatibility/subjects/{s}/versions[/{v}]``         ``{"is_compatible": …}``
``GET|PUT|DELETE /config``, ``GET|PUT|DELETE /config/{s}``
``GET|PUT|DELETE /mode``, ``GET|PUT|DELETE /mode/{s}``
``GET /contexts`` (``["."]``), ``GET /v1/metadata/id``, ``GET /``
==========================================================  ==================================

Schema types: only ``AVRO``, as a Confluent registry whose JSON Schema and Protobuf
providers are not loaded. A ``schemaType`` other than ``AVRO`` is answered as that registry
answers it (``KafkaSchemaRegistry.loadSchema`` finds no provider): 422 with error code 42201
and the message ``Invalid schema type JSON`` (or ``PROTOBUF``, …: the type as sent), on
register, lookup and the compatibility check alike; ``GET /schemas/types`` is ``["AVRO"]``.
Two texts are the same schema when their canonical forms (and references) are equal, as in
Confluent (``registry_compat.canonical_form``: key order and whitespace do not matter, a doc
or a default does).

Schema references (``"references": [{"name", "subject", "version"}]``, version ``-1``
meaning the latest) name versions registered under other subjects; they are resolved as
Confluent's ``AvroSchemaProvider`` does: the referenced schemas (and theirs, each name once)
are parsed first with the same parser, so the schema may use their named types, for
validation and for compatibility checks. The references are stored with their resolved
versions, returned in ``GET`` answers, and listed by ``/referencedby``; a referenced version
cannot be deleted (422 / 42206) while a live version refers to it.

Modes: ``READWRITE`` (default), ``READONLY`` (and ``READONLY_OVERRIDE``): registering a new
schema and deleting are refused with 422 / 42205 (registering a schema the subject already
has still answers its id, as in Confluent); ``IMPORT``: a register request must carry the
``id`` (and may carry the ``version``) to give it, no compatibility check is made, and
switching to ``IMPORT`` while live subjects exist needs ``?force=true`` (42205 otherwise).
An ``id`` outside ``IMPORT`` mode is refused with 42205; in ``IMPORT`` a ``version`` the
subject already has with another id is refused with 42205 (Confluent would overwrite it).
Configs: ``compatibility`` (or ``compatibilityLevel``) and the other fields of Confluent's
``ConfigUpdateRequest`` (``compatibilityGroup``, ``alias``, ``normalize``,
``validateFields``, ``validateRules``, ``defaultMetadata``, ``overrideMetadata``,
``defaultRuleSet``, ``overrideRuleSet``), each optional: a ``PUT`` echoes what it set,
``GET`` answers them with ``compatibilityLevel``. They are stored and answered only: schema
metadata and rule sets are not supported, so ``compatibilityGroup`` puts every version in
one group (what Confluent does for versions without metadata) and the others have no effect.

An unknown path answers 404 ``{"error_code": 404, "message": "HTTP 404 Not Found"}`` and
a method a path does not take 405 / 405, whatever the method, as Confluent's Jersey does;
even errors raised by the HTTP layer (a malformed request line, 501) are JSON.

Limits, each answered as a Confluent-style ``{"error_code", "message"}``: a body over
:data:`MAX_BODY_BYTES` is refused with 413 from its ``Content-Length`` before it is read; a
schema over :data:`MAX_SCHEMA_BYTES` with 422 / 42209; malformed or too deeply nested JSON
with 400; a schema nested over 100 levels or holding a lone surrogate with 422 / 42201.
Not supported: contexts other than the default ``.``, schema metadata and rule sets,
``normalize``, ``format``, ``/schemas/ids/{id}`` ``fetchMaxId``, tags, exporters, DEKs.

State lives under ``Settings().data_dir / "registry"``: a snapshot plus an append-only
journal (:class:`RegistryStore`), so ids and versions survive a restart and a kill, and a
change costs one small fsync'ed append whatever the size of the state.
``python -m pipelines.stack.registry`` serves in the foreground.
"""

from __future__ import annotations

import base64
import contextlib
import hmac
import json
import logging
import os
import socket
import socketserver
import sys
import tempfile
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from pipelines.errors import GovstreamError
from pipelines.settings import Settings
from pipelines.stack.registry_compat import (
    DEFAULT_LEVEL,
    AvroSchema,
    CompatibilityLevel,
    InvalidSchemaError,
    canonical_form,
    compatibility_errors,
    parse_avro,
)
from pipelines.stack.serve import bind_error, open_server, serve_until_signalled

log = logging.getLogger("govstream.registry")

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
ACCEPTED_BODY_TYPES = frozenset(
    {
        "application/json",
        "application/vnd.schemaregistry.v1+json",
        "application/vnd.schemaregistry+json",
        "application/octet-stream",
    }
)
SETTING = "GOVSTREAM_SCHEMA_REGISTRY_URL"
STATE_FILE = "registry.json"  # snapshot of the whole state
JOURNAL_FILE = "registry.journal"  # changes since the snapshot, one line each
STATE_FORMAT = 2  # 1: snapshot only, texts as sent; 2: + journal_seq, canonical texts
COMPACT_MIN_BYTES = 1 << 20  # the journal is folded into the snapshot past max(this, snapshot)
# Confluent stores a schema as one record of its _schemas topic, so Kafka's default
# message.max.bytes (1,048,588) bounds it; a larger one is refused with 422 / 42209
# (Errors.SCHEMA_TOO_LARGE_ERROR_CODE, "Write failed because schema is too large").
MAX_SCHEMA_BYTES = 1 << 20
# A request body may carry a schema of MAX_SCHEMA_BYTES JSON-escaped inside another JSON
# document; anything larger is refused with 413 before it is read.
MAX_BODY_BYTES = 2 << 20
SOCKET_TIMEOUT_S = 30.0  # a client that stops sending mid-request is dropped
MAX_VERSION = 2**31 - 1


# --- errors --------------------------------------------------------------------------------


class RegistryError(GovstreamError):
    """An error answered to a client as Confluent's ``{"error_code", "message"}`` body."""

    def __init__(self, http_status: int, error_code: int, message: str) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.error_code = error_code
        self.message = message

    def body(self) -> dict[str, Any]:
        return {"error_code": self.error_code, "message": self.message}


class RegistryStoreError(RegistryError):
    """The registry's state file could not be read or written."""

    def __init__(self, message: str) -> None:
        super().__init__(500, 50001, f"Error in the backend data store: {message}")


def subject_not_found(subject: str) -> RegistryError:
    return RegistryError(404, 40401, f"Subject '{subject}' not found.")


def version_not_found(version: int | str) -> RegistryError:
    return RegistryError(404, 40402, f"Version {version} not found.")


def schema_not_found(schema_id: int | str | None = None) -> RegistryError:
    what = "Schema not found" if schema_id is None else f"Schema {schema_id} not found"
    return RegistryError(404, 40403, f"{what}.")


def invalid_schema(message: str) -> RegistryError:
    return RegistryError(422, 42201, message)


def invalid_version(text: str) -> RegistryError:
    return RegistryError(
        422,
        42202,
        f"The specified version '{text}' is not a valid version id. Allowed values are "
        'between [1, 2^31-1] and the string "latest"',
    )


def invalid_level() -> RegistryError:
    return RegistryError(
        422,
        42203,
        "Invalid compatibility level. Valid values are none, backward, forward, full, "
        "backward_transitive, forward_transitive, and full_transitive",
    )


def parse_level(value: Any) -> CompatibilityLevel:
    if not isinstance(value, str):
        raise invalid_level()
    try:
        return CompatibilityLevel(value.upper())
    except ValueError:
        raise invalid_level() from None


def parse_version(text: str) -> int | None:
    """A version path segment: a number, or None for ``latest`` (``-1`` too, as Confluent)."""
    if text == "latest" or text == "-1":
        return None
    try:
        number = int(text)
    except ValueError:
        raise invalid_version(text) from None
    if not 1 <= number <= MAX_VERSION:
        raise invalid_version(text)
    return number


# --- storage -------------------------------------------------------------------------------


@dataclass
class Version:
    version: int
    schema_id: int
    deleted: bool = False


def not_permitted(message: str) -> RegistryError:
    return RegistryError(422, 42205, message)


MODES = ("READWRITE", "READONLY", "READONLY_OVERRIDE", "IMPORT")
READ_ONLY_MODES = frozenset({"READONLY", "READONLY_OVERRIDE"})

# ConfigUpdateRequest's fields besides the compatibility level, with their JSON types
CONFIG_FIELDS: dict[str, type | tuple[type, ...]] = {
    "alias": str,
    "normalize": bool,
    "validateFields": bool,
    "validateRules": bool,
    "compatibilityGroup": str,
    "defaultMetadata": dict,
    "overrideMetadata": dict,
    "defaultRuleSet": dict,
    "overrideRuleSet": dict,
}


def _reference(value: Any) -> dict[str, Any]:
    """A schema reference of a request body: ``{"name", "subject", "version"}``."""
    if isinstance(value, dict):
        name, subject, version = value.get("name"), value.get("subject"), value.get("version")
        if (
            isinstance(name, str)
            and name
            and isinstance(subject, str)
            and subject
            and isinstance(version, int)
            and not isinstance(version, bool)
            and (version == -1 or 1 <= version <= MAX_VERSION)
        ):
            return {"name": name, "subject": subject, "version": version}
    raise invalid_schema(f"Invalid schema: Invalid reference: {json.dumps(value)[:200]}")


def _optional_int(body: dict[str, Any], key: str) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise RegistryError(422, 422, f"Invalid {key}: {json.dumps(value)[:40]}")
    return value


@dataclass(frozen=True)
class SchemaRequest:
    """The body of a register / lookup / compatibility request. ``references`` as sent
    (version -1: the latest); ``schema_id`` and ``version`` only for IMPORT mode."""

    text: str
    references: tuple[dict[str, Any], ...] = ()
    schema_id: int | None = None
    version: int | None = None

    @classmethod
    def from_body(cls, body: Any) -> SchemaRequest:
        if not isinstance(body, dict):
            raise invalid_schema("Invalid schema: the request body must be a JSON object")
        text = body.get("schema")
        if not isinstance(text, str) or not text.strip():
            raise invalid_schema("Invalid schema: the body needs a non-empty 'schema' string")
        schema_type = body.get("schemaType")
        if schema_type is not None and schema_type != "AVRO":
            # Confluent with no provider loaded for the type (KafkaSchemaRegistry.loadSchema)
            shown = schema_type if isinstance(schema_type, str) else json.dumps(schema_type)
            raise invalid_schema(f"Invalid schema type {shown}")
        references = body.get("references") or []
        if not isinstance(references, list):
            raise invalid_schema("Invalid schema: 'references' must be a list")
        schema_id = _optional_int(body, "id")
        version = _optional_int(body, "version")
        return cls(
            text,
            tuple(_reference(r) for r in references),
            None if schema_id is None or schema_id < 0 else schema_id,
            version or None,
        )

    def parse(self, referenced: list[str] | None = None) -> AvroSchema:
        """The parsed schema; ``referenced``: the texts its references resolve to."""
        try:
            return parse_avro(self.text, referenced or [])
        except InvalidSchemaError as exc:
            raise invalid_schema(str(exc)) from exc


def _identity(text: str, references: list[dict[str, Any]]) -> str:
    """What makes two registered schemas the same (one id): the canonical text and the
    resolved references, in order (Confluent hashes both)."""
    if not references:
        return text
    return text + "\n" + json.dumps(references, separators=(",", ":"), ensure_ascii=False)


def _schema_record(text: str, guid: str, references: Any) -> dict[str, Any]:
    record: dict[str, Any] = {"schema": text, "guid": guid}
    if references:
        record["references"] = [dict(r) for r in references]
    return record


def _canonical_or_same(text: str) -> str:
    """A stored schema text in canonical form (it was validated when registered)."""
    try:
        return canonical_form(json.loads(text))
    except Exception:  # noqa: BLE001 (keep a text this code cannot read as it was)
        return text


def _encode_line(seq: int, ops: list[dict[str, Any]]) -> bytes:
    body = json.dumps({"seq": seq, "ops": ops}, ensure_ascii=False, separators=(",", ":"))
    data = body.encode("utf-8")
    return b"%08x %s\n" % (zlib.crc32(data), data)


def _decode_line(line: bytes) -> tuple[int, list[dict[str, Any]]] | None:
    """``(seq, ops)`` of a journal line, or None when it is damaged (CRC or JSON)."""
    crc, _, data = line.partition(b" ")
    try:
        if len(crc) != 8 or int(crc, 16) != zlib.crc32(data):
            return None
        change = json.loads(data)
        return int(change["seq"]), list(change["ops"])
    except (ValueError, KeyError, TypeError):
        return None


def _fdatasync(fd: int) -> None:
    sync = getattr(os, "fdatasync", os.fsync)  # data only where the OS offers it
    sync(fd)


def _fsync_directory(directory: Path) -> None:
    with contextlib.suppress(OSError):
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


class RegistryStore:
    """Subjects, versions, schemas and configs, persisted under ``directory``. Thread-safe.

    Storage: ``registry.json`` is a snapshot of the whole state and ``registry.journal``
    holds the changes made since, one line each (``<crc32 hex> <json>\\n``, the JSON being
    ``{"seq": n, "ops": [...]}``). A change is appended and fsync'ed before it is applied
    in memory or answered, so its cost does not grow with the state. When the journal
    outgrows the snapshot (and 1 MiB) the state is compacted: a new snapshot recording the
    last ``seq`` it holds is written to a temporary file, fsync'ed and renamed over the old
    one, then the journal is emptied.

    Crash safety: a kill during an append leaves a torn last line, which loading drops
    (that change was never acknowledged); a kill during compaction leaves the old snapshot,
    or the new one with journal lines it already holds, which loading skips by ``seq``;
    stray temporary files are removed. A damaged line that is not the last one is real
    corruption and refuses to load (:class:`RegistryStoreError`).
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / STATE_FILE
        self.journal_path = directory / JOURNAL_FILE
        self._lock = threading.RLock()
        self._next_id = 1
        # id -> {"schema", "guid"[, "references"]}
        self._schemas: dict[int, dict[str, Any]] = {}
        self._ids_by_text: dict[str, int] = {}  # _identity(text, refs) -> first id given to it
        self._subjects: dict[str, list[Version]] = {}
        self._global_level = DEFAULT_LEVEL
        self._subject_levels: dict[str, CompatibilityLevel] = {}
        self._global_fields: dict[str, Any] = {}  # CONFIG_FIELDS set globally
        self._subject_fields: dict[str, dict[str, Any]] = {}
        self._global_mode = "READWRITE"
        self._subject_modes: dict[str, str] = {}
        self._parsed: dict[int, AvroSchema] = {}
        self._seq = 0  # last change applied
        self._snapshot_bytes = 0
        self._journal_bytes = 0  # length of the journal's valid lines
        self._journal_fd: int | None = None
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RegistryStoreError(f"cannot create {directory}: {exc.strerror}") from exc
        self._load()

    # persistence ------------------------------------------------------------------------

    def _dump(self) -> dict[str, Any]:
        return {
            "format": STATE_FORMAT,
            "journal_seq": self._seq,
            "next_id": self._next_id,
            "schemas": {str(i): dict(s) for i, s in sorted(self._schemas.items())},
            "subjects": {
                name: [
                    {"version": v.version, "id": v.schema_id, "deleted": v.deleted}
                    for v in versions
                ]
                for name, versions in sorted(self._subjects.items())
            },
            "config": {
                "global": self._global_level.value,
                "subjects": {s: lv.value for s, lv in sorted(self._subject_levels.items())},
                "global_fields": self._global_fields,
                "subject_fields": dict(sorted(self._subject_fields.items())),
            },
            "mode": {
                "global": self._global_mode,
                "subjects": dict(sorted(self._subject_modes.items())),
            },
        }

    def _restore(self, state: dict[str, Any]) -> None:
        self._seq = int(state.get("journal_seq", 0))
        self._next_id = int(state["next_id"])
        self._schemas = {
            int(i): _schema_record(str(s["schema"]), str(s["guid"]), s.get("references"))
            for i, s in state["schemas"].items()
        }
        if state["format"] == 1:  # texts as sent (whitespace-free): make them canonical
            for schema in self._schemas.values():
                schema["schema"] = _canonical_or_same(schema["schema"])
        self._ids_by_text = {}
        for i in sorted(self._schemas):
            self._ids_by_text.setdefault(self._identity_of(i), i)
        self._subjects = {
            name: [Version(int(v["version"]), int(v["id"]), bool(v["deleted"])) for v in versions]
            for name, versions in state["subjects"].items()
        }
        config = state["config"]
        self._global_level = CompatibilityLevel(config["global"])
        self._subject_levels = {
            s: CompatibilityLevel(lv) for s, lv in config.get("subjects", {}).items()
        }
        self._global_fields = dict(config.get("global_fields", {}))
        self._subject_fields = {s: dict(f) for s, f in config.get("subject_fields", {}).items()}
        mode = state.get("mode", {})
        self._global_mode = str(mode.get("global", "READWRITE"))
        self._subject_modes = {s: str(m) for s, m in mode.get("subjects", {}).items()}

    def _load(self) -> None:
        for stray in self.directory.glob(f".{STATE_FILE}.*.tmp"):  # a compaction cut short
            with contextlib.suppress(OSError):
                stray.unlink()
        migrate = False
        try:
            if self.path.exists():
                raw = self.path.read_bytes()
                state = json.loads(raw)
                if state.get("format") not in (1, STATE_FORMAT):
                    raise ValueError(f"unknown format {state.get('format')!r}")
                self._restore(state)
                self._snapshot_bytes = len(raw)
                migrate = state["format"] != STATE_FORMAT
            for seq, ops in self._read_journal():
                if seq > self._seq:  # lines up to journal_seq are in the snapshot already
                    self._apply_all(ops)
                    self._seq = seq
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise RegistryStoreError(f"cannot read {self.path}: {exc}") from exc
        created = not self.journal_path.exists()
        try:
            self._journal_fd = os.open(
                self.journal_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644
            )
            os.ftruncate(self._journal_fd, self._journal_bytes)  # drop a torn last line
        except OSError as exc:
            raise RegistryStoreError(f"cannot open {self.journal_path}: {exc.strerror}") from exc
        if created:  # the new file's name must survive a power cut with its first lines
            _fsync_directory(self.directory)
        if migrate or not self.path.exists() or self._compaction_due():
            self._compact()

    def _read_journal(self) -> list[tuple[int, list[dict[str, Any]]]]:
        """The journal's changes in order; sets ``_journal_bytes`` to the length of its
        valid lines. A damaged or unterminated last line is a torn write and is ignored;
        raises ValueError when any other line is damaged."""
        if not self.journal_path.exists():
            return []
        data = self.journal_path.read_bytes()
        changes: list[tuple[int, list[dict[str, Any]]]] = []
        offset = 0
        while offset < len(data):
            end = data.find(b"\n", offset)
            last = end == -1 or end == len(data) - 1
            change = None if end == -1 else _decode_line(data[offset:end])
            if change is None:
                if last:
                    log.warning(
                        "%s: dropping a torn last change (%d bytes) written by a process "
                        "killed while writing it",
                        self.journal_path,
                        len(data) - offset,
                    )
                    break
                raise ValueError(f"{self.journal_path} is damaged at byte {offset}")
            if changes and change[0] <= changes[-1][0]:
                raise ValueError(f"{self.journal_path}: change {change[0]} out of order")
            changes.append(change)
            offset = end + 1
        self._journal_bytes = offset
        return changes

    def _apply_all(self, ops: list[dict[str, Any]]) -> None:
        for op in ops:
            kind = op["op"]
            if kind == "schema":
                schema_id = int(op["id"])
                self._schemas[schema_id] = _schema_record(
                    str(op["schema"]), str(op["guid"]), op.get("references")
                )
                self._ids_by_text.setdefault(self._identity_of(schema_id), schema_id)
                self._next_id = max(self._next_id, schema_id + 1)
            elif kind == "version":
                versions = self._subjects.setdefault(str(op["subject"]), [])
                versions.append(Version(int(op["version"]), int(op["id"])))
                if len(versions) > 1 and versions[-2].version > versions[-1].version:
                    versions.sort(key=lambda v: v.version)  # imported out of order
            elif kind == "delete":
                subject, numbers = str(op["subject"]), {int(n) for n in op["versions"]}
                versions = self._subjects.get(subject, [])
                if op["permanent"]:
                    self._parsed.clear()  # a version number may come back with another schema
                    versions[:] = [v for v in versions if v.version not in numbers]
                    if not versions:
                        self._subjects.pop(subject, None)
                else:
                    for v in versions:
                        if v.version in numbers:
                            v.deleted = True
            elif kind == "config":
                level = None if op["level"] is None else CompatibilityLevel(op["level"])
                if op["subject"] is None:
                    self._global_level = level or DEFAULT_LEVEL
                elif level is None:
                    self._subject_levels.pop(str(op["subject"]), None)
                else:
                    self._subject_levels[str(op["subject"])] = level
            elif kind == "config_fields":
                fields = dict(op["fields"] or {})
                if op["subject"] is None:
                    self._global_fields = fields
                elif fields:
                    self._subject_fields[str(op["subject"])] = fields
                else:
                    self._subject_fields.pop(str(op["subject"]), None)
            elif kind == "mode":
                if op["subject"] is None:
                    self._global_mode = str(op["mode"] or "READWRITE")
                elif op["mode"] is None:
                    self._subject_modes.pop(str(op["subject"]), None)
                else:
                    self._subject_modes[str(op["subject"])] = str(op["mode"])
            else:
                raise ValueError(f"unknown change {kind!r}")

    def _commit(self, ops: list[dict[str, Any]]) -> None:
        """Make a change durable (journal append + fsync), then apply it in memory. On
        failure nothing is applied and :class:`RegistryStoreError` is raised."""
        if self._journal_fd is None:
            raise RegistryStoreError("the registry store is closed")
        seq = self._seq + 1
        line = _encode_line(seq, ops)
        try:
            written = 0
            while written < len(line):
                written += os.write(self._journal_fd, line[written:])
            _fdatasync(self._journal_fd)
        except OSError as exc:
            try:  # never leave a partial line for the next change to follow
                os.ftruncate(self._journal_fd, self._journal_bytes)
            except OSError:
                os.close(self._journal_fd)
                self._journal_fd = None  # refuse writes: the journal's tail is unknown
            raise RegistryStoreError(f"cannot write {self.journal_path}: {exc.strerror}") from exc
        self._journal_bytes += len(line)
        self._seq = seq
        self._apply_all(ops)
        if self._compaction_due():
            try:
                self._compact()
            except RegistryStoreError as exc:  # the change is safe in the journal
                log.warning("compaction failed, will retry on the next change: %s", exc.message)

    def _compaction_due(self) -> bool:
        return self._journal_bytes > max(COMPACT_MIN_BYTES, self._snapshot_bytes)

    def _compact(self) -> None:
        """Write the whole state as a new snapshot (atomically), then empty the journal."""
        data = json.dumps(self._dump(), ensure_ascii=False, separators=(",", ":")).encode()
        fd, tmp = tempfile.mkstemp(prefix=f".{STATE_FILE}.", suffix=".tmp", dir=self.directory)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except BaseException as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            if isinstance(exc, OSError):
                raise RegistryStoreError(f"cannot write {self.path}: {exc.strerror}") from exc
            raise
        _fsync_directory(self.directory)  # the rename itself must survive a power cut
        self._snapshot_bytes = len(data)
        if self._journal_fd is not None and self._journal_bytes:
            try:
                os.ftruncate(self._journal_fd, 0)
                os.fsync(self._journal_fd)
            except OSError as exc:  # the snapshot's journal_seq makes the old lines harmless
                log.warning("cannot empty %s: %s", self.journal_path, exc.strerror)
                return
            self._journal_bytes = 0

    def close(self) -> None:
        """Compact what the journal holds and release the journal; later writes fail."""
        with self._lock:
            if self._journal_fd is None:
                return
            if self._journal_bytes:
                try:
                    self._compact()
                except RegistryStoreError as exc:
                    log.warning("compaction at close failed: %s", exc.message)
            os.close(self._journal_fd)
            self._journal_fd = None

    # helpers ----------------------------------------------------------------------------

    def _identity_of(self, schema_id: int) -> str:
        record = self._schemas[schema_id]
        return _identity(record["schema"], record.get("references", []))

    def _find_version(self, subject: str, number: int | None, *, deleted: bool) -> Version | None:
        """A version of the subject (None: the latest live one), or None."""
        versions = [v for v in self._subjects.get(subject, []) if deleted or not v.deleted]
        if number is None:
            live = [v for v in versions if not v.deleted]
            return live[-1] if live else None
        return next((v for v in versions if v.version == number), None)

    def _resolve(
        self, references: Sequence[dict[str, Any]], *, deleted: bool
    ) -> tuple[list[dict[str, Any]], list[str]]:
        """``(references with resolved versions, texts of the schemas they bring in)``: the
        texts in dependency order (each after the ones it refers to), each name once, as
        Confluent's ``AbstractSchemaProvider.resolveReferences``. A version of -1 is the
        latest; ``deleted``: soft-deleted versions may be referred to (stored schemas).
        Raises 422 / 42201 when a reference is not found."""
        resolved: list[dict[str, Any]] = []
        texts: list[str] = []
        seen: set[str] = set()
        # depth-first, post-order, without recursion: (reference, schema id once expanded)
        stack: list[tuple[dict[str, Any], int | None, bool]] = [
            (ref, None, True) for ref in reversed(references)
        ]
        while stack:
            ref, expanded, top = stack.pop()
            if expanded is not None:
                texts.append(self._schemas[expanded]["schema"])
                continue
            version = ref["version"]
            found = self._find_version(
                ref["subject"], None if version == -1 else version, deleted=deleted or not top
            )
            if found is None:
                raise invalid_schema(
                    f'Invalid schema: No schema reference found for subject "{ref["subject"]}" '
                    f"and version {version}"
                )
            if top:
                resolved.append({**ref, "version": found.version})
            if ref["name"] in seen:
                continue
            seen.add(ref["name"])
            stack.append((ref, found.schema_id, top))
            nested = self._schemas[found.schema_id].get("references", [])
            stack.extend((r, None, False) for r in reversed(nested))
        return resolved, texts

    def _parse(self, request: SchemaRequest) -> tuple[AvroSchema, list[dict[str, Any]]]:
        """Parse a request's schema with its references resolved (live versions only)."""
        references, texts = self._resolve(request.references, deleted=False)
        return request.parse(texts), references

    def _parsed_schema(self, schema_id: int) -> AvroSchema:
        parsed = self._parsed.get(schema_id)
        if parsed is None:
            record = self._schemas[schema_id]
            _, texts = self._resolve(record.get("references", []), deleted=True)
            parsed = parse_avro(record["schema"], texts)
            self._parsed[schema_id] = parsed
        return parsed

    def _versions(self, subject: str, *, deleted: bool = False) -> list[Version]:
        """The subject's versions (live only unless ``deleted``); 40401 when there are none."""
        versions = [v for v in self._subjects.get(subject, []) if deleted or not v.deleted]
        if not versions:
            raise subject_not_found(subject)
        return versions

    def _version(self, subject: str, spec: str, *, deleted: bool = False) -> Version:
        number = parse_version(spec)
        versions = self._versions(subject, deleted=deleted)
        if number is None:
            return versions[-1]
        for v in versions:
            if v.version == number:
                return v
        raise version_not_found(number)

    def _registered(self, subject: str, v: Version) -> dict[str, Any]:
        schema = self._schemas[v.schema_id]
        answer = {
            "subject": subject,
            "version": v.version,
            "id": v.schema_id,
            "guid": schema["guid"],
        }
        if schema.get("references"):
            answer["references"] = [dict(r) for r in schema["references"]]
        answer["schema"] = schema["schema"]
        return answer

    def _referenced(self, schema_id: int) -> bool:
        return any(v.schema_id == schema_id for vs in self._subjects.values() for v in vs)

    def _referrers(self, subject: str, number: int) -> list[int]:
        """Ids of the schemas with a live version that refer to ``subject`` ``number``."""
        live = {v.schema_id for vs in self._subjects.values() for v in vs if not v.deleted}
        return sorted(
            schema_id
            for schema_id, record in self._schemas.items()
            if schema_id in live
            and any(
                r["subject"] == subject and r["version"] == number
                for r in record.get("references", [])
            )
        )

    def _check_unreferenced(self, subject: str, numbers: Sequence[int]) -> None:
        for number in numbers:
            if self._referrers(subject, number):
                raise RegistryError(
                    422,
                    42206,
                    "One or more references exist to the schema "
                    f"{{magic=1,keytype=SCHEMA,subject={subject},version={number}}}.",
                )

    def level(self, subject: str | None) -> CompatibilityLevel:
        """The compatibility level in force for ``subject`` (its own, else the global one)."""
        with self._lock:
            if subject is not None and subject in self._subject_levels:
                return self._subject_levels[subject]
            return self._global_level

    def mode(self, subject: str | None) -> str:
        """The mode in force for ``subject`` (its own, else the global one)."""
        with self._lock:
            if subject is not None and subject in self._subject_modes:
                return self._subject_modes[subject]
            return self._global_mode

    def _check_writable(self, subject: str) -> None:
        if self.mode(subject) in READ_ONLY_MODES:
            raise not_permitted(f"Subject {subject} is in read-only mode")

    def _forget_settings(self, subject: str) -> list[dict[str, Any]]:
        """Ops dropping a subject's own config and mode (when its last version goes)."""
        ops: list[dict[str, Any]] = []
        if subject in self._subject_levels:
            ops.append({"op": "config", "subject": subject, "level": None})
        if subject in self._subject_fields:
            ops.append({"op": "config_fields", "subject": subject, "fields": None})
        if subject in self._subject_modes:
            ops.append({"op": "mode", "subject": subject, "mode": None})
        return ops

    # schemas ----------------------------------------------------------------------------

    def register(self, subject: str, request: SchemaRequest) -> dict[str, Any]:
        """Register ``request`` under ``subject``: ``{"id", "guid"}``. A schema whose
        canonical text (:func:`canonical_form`) and references a live version of the subject
        has already answers that version's id, whatever the mode; one known in another
        subject reuses its global id. Raises 409 when incompatible under the subject's
        level, 422 when invalid, larger than :data:`MAX_SCHEMA_BYTES` (42209) or not
        permitted by the mode (42205), 500 when the store cannot be written."""
        with self._lock:
            schema, references = self._parse(request)
            size = len(schema.canonical.encode("utf-8"))
            if size > MAX_SCHEMA_BYTES:
                raise RegistryError(
                    422,
                    42209,
                    f"Write failed because schema is too large ({size:,} bytes, at most "
                    f"{MAX_SCHEMA_BYTES:,})",
                )
            identity = _identity(schema.canonical, references)
            live = [v for v in self._subjects.get(subject, []) if not v.deleted]
            for v in live:
                if self._identity_of(v.schema_id) == identity and request.schema_id in (
                    None,
                    v.schema_id,
                ):
                    return {"id": v.schema_id, "guid": self._schemas[v.schema_id]["guid"]}
            mode = self.mode(subject)
            self._check_writable(subject)
            if request.schema_id is not None and mode != "IMPORT":
                raise not_permitted(f"Subject {subject} is not in import mode")
            if request.schema_id is None and mode != "READWRITE":
                raise not_permitted(f"Subject {subject} is not in read-write mode")
            versions = self._subjects.get(subject, [])
            number = max((v.version for v in versions), default=0) + 1
            if mode == "IMPORT":
                schema_id, guid, number = self._import_target(subject, request, identity, number)
            else:
                if request.version is not None and request.version != number:
                    raise invalid_schema("Version is not one more than previous version")
                level = self.level(subject)
                previous = [self._parsed_schema(v.schema_id) for v in live]
                problems = compatibility_errors(schema, previous, level)
                if problems:
                    raise RegistryError(
                        409,
                        409,
                        "Schema being registered is incompatible with an earlier schema for "
                        f'subject "{subject}", details: [{"; ".join(problems)}] '
                        f"(compatibility {level.value})",
                    )
                known = self._ids_by_text.get(identity)
                schema_id = self._next_id if known is None else known
                guid = None if known is None else self._schemas[known]["guid"]
            ops: list[dict[str, Any]] = []
            if guid is None:
                guid = str(uuid.uuid4())
                op = {"op": "schema", "id": schema_id, "schema": schema.canonical, "guid": guid}
                if references:
                    op["references"] = references
                ops.append(op)
            ops.append({"op": "version", "subject": subject, "version": number, "id": schema_id})
            self._commit(ops)
            self._parsed.setdefault(schema_id, schema)
            log.info("registered %s version %d as id %d", subject, number, schema_id)
            return {"id": schema_id, "guid": guid}

    def _import_target(
        self, subject: str, request: SchemaRequest, identity: str, number: int
    ) -> tuple[int, str | None, int]:
        """``(id, guid or None when new, version)`` of a registration in IMPORT mode."""
        schema_id = request.schema_id
        if schema_id is None:  # checked by the caller
            raise not_permitted(f"Subject {subject} is not in read-write mode")
        guid = None
        if schema_id in self._schemas:
            if self._identity_of(schema_id) != identity:
                raise not_permitted(f"Overwrite new schema with id {schema_id} is not permitted.")
            guid = self._schemas[schema_id]["guid"]
        if request.version is not None:
            if not 1 <= request.version <= MAX_VERSION:
                raise invalid_version(str(request.version))
            if any(v.version == request.version for v in self._subjects.get(subject, [])):
                raise not_permitted(
                    f"Subject {subject} already has version {request.version}: this registry "
                    "does not overwrite a version in IMPORT mode"
                )
            number = request.version
        return schema_id, guid, number

    def lookup(self, subject: str, request: SchemaRequest, *, deleted: bool) -> dict[str, Any]:
        with self._lock:
            schema, references = self._parse(request)
            identity = _identity(schema.canonical, references)
            for v in reversed(self._versions(subject, deleted=deleted)):
                if self._identity_of(v.schema_id) == identity:
                    return self._registered(subject, v)
            raise schema_not_found()

    def schema_by_id(self, schema_id: int) -> dict[str, Any]:
        with self._lock:
            if schema_id not in self._schemas or not self._referenced(schema_id):
                raise schema_not_found(schema_id)
            schema = self._schemas[schema_id]
            answer: dict[str, Any] = {"schema": schema["schema"], "guid": schema["guid"]}
            if schema.get("references"):
                answer["references"] = [dict(r) for r in schema["references"]]
            return answer

    def schema_by_guid(self, guid: str) -> dict[str, Any]:
        with self._lock:
            for schema_id, schema in self._schemas.items():
                if schema["guid"] == guid and self._referenced(schema_id):
                    return {**self.schema_by_id(schema_id), "id": schema_id}
            raise schema_not_found(guid)

    def id_versions(self, schema_id: int, *, deleted: bool) -> list[dict[str, Any]]:
        with self._lock:
            self.schema_by_id(schema_id)
            return [
                {"subject": subject, "version": v.version}
                for subject, versions in sorted(self._subjects.items())
                for v in versions
                if v.schema_id == schema_id and (deleted or not v.deleted)
            ]

    def all_schemas(self, *, prefix: str, deleted: bool, latest_only: bool) -> list[dict[str, Any]]:
        """``GET /schemas``: every version of the subjects starting with ``prefix`` (live
        only unless ``deleted``; the last of each subject when ``latest_only``), by subject
        then version."""
        with self._lock:
            answer: list[dict[str, Any]] = []
            for subject, versions in sorted(self._subjects.items()):
                if not subject.startswith(prefix):
                    continue
                shown = [v for v in versions if deleted or not v.deleted]
                if latest_only:
                    shown = shown[-1:]
                answer.extend(self._registered(subject, v) for v in shown)
            return answer

    # subjects ---------------------------------------------------------------------------

    def subjects(self, *, deleted: bool, deleted_only: bool, prefix: str) -> list[str]:
        with self._lock:
            names = []
            for name, versions in sorted(self._subjects.items()):
                if not name.startswith(prefix):
                    continue
                live = any(not v.deleted for v in versions)
                if (deleted_only and not live) or (not deleted_only and (live or deleted)):
                    names.append(name)
            return names

    def versions(self, subject: str, *, deleted: bool, deleted_only: bool) -> list[int]:
        with self._lock:
            versions = self._versions(subject, deleted=deleted or deleted_only)
            return [v.version for v in versions if v.deleted or not deleted_only]

    def get_version(self, subject: str, spec: str, *, deleted: bool) -> dict[str, Any]:
        with self._lock:
            return self._registered(subject, self._version(subject, spec, deleted=deleted))

    def referenced_by(self, subject: str, spec: str) -> list[int]:
        """Ids of the schemas (with a live version) whose references name this version."""
        with self._lock:
            latest = parse_version(spec) is None
            v = self._version(subject, spec, deleted=not latest)
            return self._referrers(subject, v.version)

    def delete_subject(self, subject: str, *, permanent: bool) -> list[int]:
        """Soft-delete a subject's live versions, or (``permanent``) drop a subject whose
        versions are all soft-deleted; the numbers deleted. Its own compatibility level,
        config and mode go with it. 404 40401 / 40404 / 40405, 422 42205 / 42206 as
        Confluent."""
        with self._lock:
            self._check_writable(subject)
            versions = self._subjects.get(subject)
            if not versions:
                raise subject_not_found(subject)
            live = [v for v in versions if not v.deleted]
            numbers = [v.version for v in (versions if permanent else live)]
            self._check_unreferenced(subject, numbers)
            if permanent and live:
                raise RegistryError(
                    404,
                    40405,
                    f"Subject '{subject}' was not deleted first before being permanently deleted",
                )
            if not permanent and not live:
                raise RegistryError(
                    404,
                    40404,
                    f"Subject '{subject}' was soft deleted.Set permanent=true to delete "
                    "permanently",
                )
            ops: list[dict[str, Any]] = [
                {"op": "delete", "subject": subject, "versions": numbers, "permanent": permanent}
            ]
            self._commit(ops + self._forget_settings(subject))
            return numbers

    def delete_version(self, subject: str, spec: str, *, permanent: bool) -> int:
        """Soft-delete one version, or (``permanent``) drop a soft-deleted one; its number.
        The subject's own config and mode go with its last live version. 404 40401 / 40402
        / 40406 / 40407, 422 42202 / 42205 / 42206 as Confluent."""
        with self._lock:
            self._check_writable(subject)
            v = self._version(subject, spec, deleted=True)
            if spec in ("latest", "-1") and not permanent:
                v = self._version(subject, spec)
            self._check_unreferenced(subject, [v.version])
            if permanent and not v.deleted:
                raise RegistryError(
                    404,
                    40407,
                    f"Subject '{subject}' Version {v.version} was not deleted first "
                    "before being permanently deleted",
                )
            if not permanent and v.deleted:
                raise RegistryError(
                    404,
                    40406,
                    f"Subject '{subject}' Version {v.version} was soft deleted.Set "
                    "permanent=true to delete permanently",
                )
            ops: list[dict[str, Any]] = [
                {
                    "op": "delete",
                    "subject": subject,
                    "versions": [v.version],
                    "permanent": permanent,
                }
            ]
            others_live = any(
                not o.deleted and o.version != v.version for o in self._subjects[subject]
            )
            if not permanent and not others_live:
                ops += self._forget_settings(subject)
            self._commit(ops)
            return v.version

    # compatibility ----------------------------------------------------------------------

    def test_compatibility(
        self, subject: str, spec: str | None, request: SchemaRequest
    ) -> list[str]:
        """Messages of the broken rules (empty: compatible). ``spec`` None: every version
        the subject's level looks at; otherwise against that one version."""
        with self._lock:
            schema, _ = self._parse(request)
            level = self.level(subject)
            if spec is None:
                live = [v for v in self._subjects.get(subject, []) if not v.deleted]
            else:
                live = [self._version(subject, spec)]
            previous = [self._parsed_schema(v.schema_id) for v in live]
            return compatibility_errors(schema, previous, level)

    # config -----------------------------------------------------------------------------

    def get_config(self, subject: str | None, *, default_to_global: bool) -> dict[str, Any]:
        """``{"compatibilityLevel", <other fields set>}`` of the global config or a subject's
        own (with ``default_to_global``: the global one when it has none; otherwise 404
        40408)."""
        with self._lock:
            own = subject is not None and (
                subject in self._subject_levels or subject in self._subject_fields
            )
            if subject is None or (default_to_global and not own):
                return {"compatibilityLevel": self._global_level.value, **self._global_fields}
            if not own:
                raise RegistryError(
                    404,
                    40408,
                    f"Subject '{subject}' does not have subject-level compatibility configured",
                )
            answer: dict[str, Any] = {}
            if subject in self._subject_levels:
                answer["compatibilityLevel"] = self._subject_levels[subject].value
            return {**answer, **self._subject_fields.get(subject, {})}

    def set_config(
        self,
        subject: str | None,
        level: CompatibilityLevel | None,
        fields: dict[str, Any] | None = None,
    ) -> None:
        """Set the global config (``subject`` None) or a subject's own: the level when given
        and the :data:`CONFIG_FIELDS` given, the others left as they are."""
        with self._lock:
            ops: list[dict[str, Any]] = []
            if level is not None:
                ops.append({"op": "config", "subject": subject, "level": level.value})
            if fields:
                old = self._global_fields if subject is None else self._subject_fields.get(subject)
                merged = {**(old or {}), **fields}
                ops.append({"op": "config_fields", "subject": subject, "fields": merged})
            if ops:
                self._commit(ops)

    def delete_config(self, subject: str | None) -> dict[str, Any]:
        """Reset the global config to the default, or drop a subject's own (404 40408 when
        it has none); the config it had."""
        with self._lock:
            old = self.get_config(subject, default_to_global=False)
            self._commit(
                [
                    {"op": "config", "subject": subject, "level": None},
                    {"op": "config_fields", "subject": subject, "fields": None},
                ]
            )
            return old

    # mode -------------------------------------------------------------------------------

    def get_mode(self, subject: str | None, *, default_to_global: bool) -> str:
        with self._lock:
            if subject is None or default_to_global or subject in self._subject_modes:
                return self.mode(subject)
            raise RegistryError(
                404, 40409, f"Subject '{subject}' does not have subject-level mode configured"
            )

    def set_mode(self, subject: str | None, mode: str, *, force: bool) -> None:
        """Set the global mode or a subject's own. Switching to IMPORT needs no live subject
        in its scope, unless ``force`` (42205 otherwise)."""
        with self._lock:
            if mode == "IMPORT" and self.mode(subject) != "IMPORT" and not force:
                scope = (
                    self._subjects
                    if subject is None
                    else {subject: self._subjects.get(subject, [])}
                )
                if any(not v.deleted for versions in scope.values() for v in versions):
                    raise not_permitted("Cannot import since found existing subjects")
            self._commit([{"op": "mode", "subject": subject, "mode": mode}])

    def delete_mode(self, subject: str | None) -> str:
        """Reset the global mode to READWRITE or drop a subject's own (404 40401 when it has
        none, as Confluent); the mode it had."""
        with self._lock:
            if subject is not None and subject not in self._subject_modes:
                raise subject_not_found(subject)
            old = self.mode(subject)
            self._commit([{"op": "mode", "subject": subject, "mode": None}])
            return old


# --- HTTP ----------------------------------------------------------------------------------


@dataclass
class Request:
    method: str
    parts: list[str]  # unquoted path segments
    query: dict[str, list[str]]
    body: Any

    def flag(self, name: str) -> bool:
        return self.query.get(name, ["false"])[-1].strip().lower() == "true"

    def param(self, name: str, default: str = "") -> str:
        return self.query.get(name, [default])[-1]


def _int_id(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise schema_not_found(text) from None


def route(store: RegistryStore, req: Request) -> Any:
    """Answer one request: the JSON value of a 200 response, or raise :class:`RegistryError`."""
    p, m = req.parts, req.method
    n = len(p)
    if n == 0:
        return _only(m, "GET", lambda: {})
    head = p[0]
    if head == "subjects":
        if n == 1:
            return _only(
                m,
                "GET",
                lambda: _page(
                    req,
                    store.subjects(
                        deleted=req.flag("deleted"),
                        deleted_only=req.flag("deleted_only"),
                        prefix=req.param("subjectPrefix"),
                    ),
                ),
            )
        subject = p[1]
        if n == 2:
            if m == "POST":
                return store.lookup(
                    subject, SchemaRequest.from_body(req.body), deleted=req.flag("deleted")
                )
            return _only(
                m,
                "DELETE",
                lambda: store.delete_subject(subject, permanent=req.flag("permanent")),
            )
        if p[2] == "versions":
            if n == 3:
                if m == "POST":
                    return store.register(subject, SchemaRequest.from_body(req.body))
                return _only(
                    m,
                    "GET",
                    lambda: store.versions(
                        subject,
                        deleted=req.flag("deleted"),
                        deleted_only=req.flag("deleted_only"),
                    ),
                )
            spec = p[3]
            if n == 4:
                if m == "DELETE":
                    return store.delete_version(subject, spec, permanent=req.flag("permanent"))
                return _only(
                    m,
                    "GET",
                    lambda: store.get_version(subject, spec, deleted=req.flag("deleted")),
                )
            if n == 5 and p[4] == "schema":
                return _only(
                    m,
                    "GET",
                    lambda: json.loads(
                        store.get_version(subject, spec, deleted=req.flag("deleted"))["schema"]
                    ),
                )
            if n == 5 and p[4] == "referencedby":
                return _only(m, "GET", lambda: store.referenced_by(subject, spec))
    elif head == "schemas":
        if n == 1:
            return _only(m, "GET", lambda: _page(req, _all_schemas(store, req)))
        if n == 2 and p[1] == "types":
            return _only(m, "GET", lambda: ["AVRO"])
        if n == 3 and p[1] == "ids":
            return _only(m, "GET", lambda: store.schema_by_id(_int_id(p[2])))
        if n == 3 and p[1] == "guids":
            return _only(m, "GET", lambda: store.schema_by_guid(p[2]))
        if n == 4 and p[1] == "ids" and p[3] == "versions":
            return _only(
                m, "GET", lambda: store.id_versions(_int_id(p[2]), deleted=req.flag("deleted"))
            )
        if n == 4 and p[1] == "ids" and p[3] == "schema":
            return _only(m, "GET", lambda: json.loads(store.schema_by_id(_int_id(p[2]))["schema"]))
        if n == 4 and p[1] == "ids" and p[3] == "subjects":
            return _only(
                m,
                "GET",
                lambda: sorted(
                    {
                        sv["subject"]
                        for sv in store.id_versions(_int_id(p[2]), deleted=req.flag("deleted"))
                    }
                ),
            )
    elif head == "compatibility" and n in (4, 5) and p[1] == "subjects" and p[3] == "versions":
        return _only(m, "POST", lambda: _compatibility(store, req, p[2], p[4] if n == 5 else None))
    elif head == "config" and n <= 2:
        return _config(store, req, p[1] if n == 2 else None)
    elif head == "mode" and n <= 2:
        return _mode(store, req, p[1] if n == 2 else None)
    elif head == "contexts" and n == 1:
        return _only(m, "GET", lambda: _page(req, ["."]))
    elif head == "v1" and n == 3 and p[1:] == ["metadata", "id"]:
        return _only(m, "GET", lambda: CLUSTER_ID)
    raise RegistryError(404, 404, "HTTP 404 Not Found")


def _only(method: str, allowed: str, answer: Callable[[], Any]) -> Any:
    if method != allowed:
        raise RegistryError(405, 405, "HTTP 405 Method Not Allowed")
    return answer()


def _compatibility(store: RegistryStore, req: Request, subject: str, spec: str | None) -> Any:
    problems = store.test_compatibility(subject, spec, SchemaRequest.from_body(req.body))
    answer: dict[str, Any] = {"is_compatible": not problems}
    if req.flag("verbose"):
        answer["messages"] = problems
    return answer


def _page(req: Request, items: list[Any]) -> list[Any]:
    """``offset`` and ``limit`` (ignored when not positive) applied to a list."""
    try:
        offset = max(int(req.param("offset", "0")), 0)
        limit = int(req.param("limit", "-1"))
    except ValueError:
        raise RegistryError(400, 400, "offset and limit must be integers") from None
    return items[offset : offset + limit] if limit > 0 else items[offset:]


def _all_schemas(store: RegistryStore, req: Request) -> list[dict[str, Any]]:
    return store.all_schemas(
        prefix=req.param("subjectPrefix"),
        deleted=req.flag("deleted"),
        latest_only=req.flag("latestOnly"),
    )


# GET /v1/metadata/id as Confluent's ServerClusterId: this registry knows no Kafka cluster
# id; its own group id is Confluent's default, schema.registry.group.id = schema-registry
CLUSTER_ID = {
    "id": "",
    "scope": {
        "path": [],
        "clusters": {"kafka-cluster": "", "schema-registry-cluster": "schema-registry"},
    },
}


def _config(store: RegistryStore, req: Request, subject: str | None) -> Any:
    if req.method == "GET":
        return store.get_config(subject, default_to_global=req.flag("defaultToGlobal"))
    if req.method == "PUT":
        body = req.body if isinstance(req.body, dict) else {}
        answer: dict[str, Any] = {}
        level = None
        given = body.get("compatibility", body.get("compatibilityLevel"))
        if given is not None:
            level = parse_level(given)
            answer["compatibility"] = level.value
        fields: dict[str, Any] = {}
        for name, kind in CONFIG_FIELDS.items():
            value = body.get(name)
            if value is None:
                continue
            if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
                raise RegistryError(422, 422, f"Invalid config: {name} {json.dumps(value)[:60]}")
            fields[name] = value
        store.set_config(subject, level, fields)
        return {**answer, **fields}
    if req.method == "DELETE":
        return store.delete_config(subject)
    raise RegistryError(405, 405, "HTTP 405 Method Not Allowed")


def _mode(store: RegistryStore, req: Request, subject: str | None) -> Any:
    if req.method == "GET":
        return {"mode": store.get_mode(subject, default_to_global=req.flag("defaultToGlobal"))}
    if req.method == "PUT":
        body = req.body if isinstance(req.body, dict) else {}
        mode = body.get("mode")
        if not isinstance(mode, str) or mode.upper() not in MODES:
            raise RegistryError(
                422, 42204, "Invalid mode. Valid values are readwrite, readonly, and import"
            )
        store.set_mode(subject, mode.upper(), force=req.flag("force"))
        return {"mode": mode}  # the request, echoed as Confluent's ModeResource does
    if req.method == "DELETE":
        return {"mode": store.delete_mode(subject)}
    raise RegistryError(405, 405, "HTTP 405 Method Not Allowed")


class RegistryHandler(BaseHTTPRequestHandler):
    """One HTTP request: parse it, route it, answer JSON in Confluent's content type."""

    server: RegistryServer
    protocol_version = "HTTP/1.1"
    timeout = SOCKET_TIMEOUT_S
    server_version = "govstream-registry"

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def __getattr__(self, name: str) -> Any:
        """Any other method (``do_PATCH``, ``do_OPTIONS``, …) is routed too, so that it is
        answered 405 (or 404 on an unknown path) in JSON, as Confluent's Jersey does, not
        with http.server's HTML 501 page. HEAD is a GET without a body."""
        if name.startswith("do_"):
            return self._handle
        raise AttributeError(name)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Errors http.server raises itself (a malformed request line, headers too long)
        answered as Confluent's JSON error body, not as an HTML page."""
        phrase = self.responses.get(code, ("Error",))[0]
        self.log_error("code %d, message %s", code, message or phrase)
        data = json.dumps({"error_code": code, "message": f"HTTP {code} {message or phrase}"})
        body = data.encode("utf-8", "replace")
        self.send_response(code, message)
        self.send_header("Content-Type", CONTENT_TYPE)
        self.send_header("Connection", "close")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.close_connection = True
        if self.command != "HEAD" and code >= 200 and code not in (204, 304):
            self.wfile.write(body)

    def _handle(self) -> None:
        started = time.perf_counter()
        headers: dict[str, str] = {}
        try:
            if not self._authorized():
                self.close_connection = True  # the body is left unread
                headers["WWW-Authenticate"] = 'Basic realm="govstream-registry"'
                raise RegistryError(401, 401, "Unauthorized: this request needs credentials")
            request = self._request()
            if request.method == "HEAD":
                request.method = "GET"
            status, payload = 200, route(self.server.store, request)
        except RegistryError as exc:
            status, payload = exc.http_status, exc.body()
        except Exception:  # a bug must answer 500, never kill the server
            log.exception("internal error on %s %s", self.command, self.path)
            status, payload = 500, {"error_code": 500, "message": "Internal Server Error"}
        try:
            data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate echoed in a message: escape it
            data = json.dumps(payload).encode("ascii")
        self.send_response(status)
        self.send_header("Content-Type", CONTENT_TYPE)
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        log.info(
            "%s %s %s %d %.1fms",
            self.client_address[0],
            self.command,
            self.path,
            status,
            (time.perf_counter() - started) * 1000,
        )

    def _authorized(self) -> bool:
        """True unless the server has credentials and this request changes the state
        (register, any PUT or DELETE) without them in a Basic ``Authorization`` header.
        Reads and lookups stay open: deserializers fetch schemas by id without credentials."""
        expected = self.server.credentials
        path = urlsplit(self.path).path.strip("/").split("/")
        register = (
            self.command == "POST" and len(path) == 3 and path[::2] == ["subjects", "versions"]
        )
        if expected is None or not (register or self.command in ("PUT", "DELETE")):
            return True
        scheme, _, token = self.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = (
                base64.b64decode(token.strip(), validate=True).decode().partition(":")
            )
        except ValueError:  # binascii.Error and UnicodeDecodeError are ValueErrors
            return False
        same_user = hmac.compare_digest(user.encode(), expected[0].encode())
        return hmac.compare_digest(password.encode(), expected[1].encode()) and same_user

    def _request(self) -> Request:
        raw = self._body()
        url = urlsplit(self.path)
        parts = [unquote(s) for s in url.path.strip("/").split("/") if s]
        body: Any = None
        if raw:
            media = (self.headers.get_content_type() or "").lower()
            if self.headers.get("Content-Type") and media not in ACCEPTED_BODY_TYPES:
                raise RegistryError(415, 415, f"HTTP 415 Unsupported Media Type: {media}")
            try:
                body = json.loads(raw)
            except RecursionError:
                raise RegistryError(
                    400, 400, "Malformed JSON request body: nested too deeply"
                ) from None
            except ValueError as exc:
                raise RegistryError(400, 400, f"Malformed JSON request body: {exc}") from exc
        return Request(self.command, parts, parse_qs(url.query), body)

    def _body(self) -> bytes:
        """The request body, read only when ``Content-Length`` is valid and at most
        :data:`MAX_BODY_BYTES`: 413 (larger), 411 (chunked, which Confluent's clients never
        send), 400 (bad length), 408 (the client stopped sending). Each of them closes the
        connection, as the unread rest of the body cannot be skipped."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True
            raise RegistryError(411, 411, "HTTP 411 Length Required: send Content-Length")
        text = (self.headers.get("Content-Length") or "0").strip()
        if not text.isdigit():
            self.close_connection = True
            raise RegistryError(400, 400, f"Invalid Content-Length: {text[:40]!r}")
        length = int(text)
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            raise RegistryError(
                413,
                413,
                f"HTTP 413 Payload Too Large: the body has {length:,} bytes, at most "
                f"{MAX_BODY_BYTES:,} are accepted",
            )
        try:
            raw = self.rfile.read(length) if length else b""
        except OSError:  # socket timeout or reset
            raw = b""
        if len(raw) < length:
            self.close_connection = True
            raise RegistryError(408, 408, "HTTP 408 Request Timeout: the body was cut short")
        return raw

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass  # _handle logs one line per request, with its duration

    def log_error(self, format: str, *args: Any) -> None:  # noqa: A002 (base signature)
        log.warning("%s %s", self.address_string(), format % args)


class RegistryServer(ThreadingHTTPServer):
    """The registry's threaded HTTP server; ``store`` holds the state."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        store: RegistryStore,
        credentials: tuple[str, str] | None = None,
    ) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.store = store
        self.credentials = credentials  # (user, password) required for changes, or None
        super().__init__(address, RegistryHandler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind also resolves the host's FQDN, which can stall; skip it
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def server_close(self) -> None:
        super().server_close()
        self.store.close()

    @property
    def url(self) -> str:
        host = f"[{self.server_name}]" if ":" in self.server_name else self.server_name
        return f"http://{host}:{self.server_port}"


def make_server(settings: Settings) -> RegistryServer:
    """A registry server bound to ``settings.registry_address`` with its state under
    ``settings.data_dir / "registry"``, requiring ``settings.registry_credentials`` (when
    set) for changes; call ``serve_forever()`` on it."""
    store = RegistryStore(settings.data_dir / "registry")
    host, port = settings.registry_address
    try:
        return RegistryServer((host, port), store, settings.registry_credentials)
    except OSError as exc:
        raise bind_error(exc, "schema registry", host, port, SETTING) from exc


def main() -> int:
    """Serve in the foreground until SIGTERM/SIGINT; exit 0, 2 when the port is unusable,
    1 when the state file cannot be read."""
    try:
        server = open_server(make_server)
    except RegistryStoreError as exc:
        print(f"schema registry: {exc.message}", file=sys.stderr)
        return 1
    if server is None:
        return 2
    log.info("schema registry listening on %s (state %s)", server.url, server.store.path)
    return serve_until_signalled(server, "schema registry", log)


if __name__ == "__main__":
    sys.exit(main())
