"""Decoding (and, for the worker's own events, encoding) Confluent-framed Avro (magic byte 0,
4-byte schema id, Avro body).

Writer schemas are fetched from the registry once per id and cached; the fetch runs in a
thread so a Faust agent's event loop never blocks on HTTP. An id the registry does not know is
remembered for :data:`UNKNOWN_ID_TTL_S`, so a producer flooding a topic with a foreign
registry's ids costs one registry round trip per id and interval (6 ms each here), not one per
event; the interval is short because a registry follower may learn a new id a moment late.
Data is resolved against the project's own reader schema (``schemas/avro``), so a producer on
an older or newer compatible schema version decodes into the shape the pipeline expects.

Every failure is a :class:`~pipelines.errors.DecodeError` with a stable reason code, except
an unreachable registry, which is transient (:class:`RegistryUnavailable`): the caller
retries instead of dead-lettering a good event.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

from fastavro import parse_schema, schemaless_reader, schemaless_writer

from pipelines import reasons
from pipelines.errors import DecodeError, GovstreamError

MAGIC = 0
HEADER = struct.Struct(">bI")

# reason codes (gov.dead_letters.reason)
NOT_FRAMED = reasons.code("not_avro_framed")
UNKNOWN_SCHEMA = reasons.code("unknown_schema_id")
BAD_AVRO = reasons.code("avro_decode_failed")
INCOMPATIBLE = reasons.code("schema_incompatible")
WRONG_SUBJECT = reasons.code("wrong_schema_for_topic")

#: How long a schema id the registry answered 404 for is taken as unknown without asking again.
UNKNOWN_ID_TTL_S = 5.0


log = logging.getLogger("govstream.codec")


class RegistryUnavailable(GovstreamError):
    """The schema registry did not answer; retry later, do not dead-letter."""


def split_frame(data: bytes | None) -> tuple[int, memoryview]:
    """(schema id, Avro body) of a Confluent-framed message, or DecodeError."""
    if data is None or len(data) < HEADER.size + 1:
        raise DecodeError(NOT_FRAMED, f"{0 if data is None else len(data)} bytes is too short")
    magic, schema_id = HEADER.unpack_from(data)
    if magic != MAGIC:
        raise DecodeError(NOT_FRAMED, f"magic byte is {magic}, expected 0")
    return schema_id, memoryview(data)[HEADER.size :]


def frame(schema_id: int, body: bytes) -> bytes:
    return HEADER.pack(MAGIC, schema_id) + body


class AvroEncoder:
    """Confluent-framed Avro of records of one schema, for events the worker itself sends
    through its Faust producer (hotspot alerts): the schema's id under ``subject`` is asked of
    the registry once (registered when ``auto_register``, as ``EventProducer`` does by default;
    else looked up) and cached. :meth:`schema_id` blocks on HTTP: call it in a thread first;
    :meth:`encode` then only encodes."""

    def __init__(
        self,
        schema: str,
        subject: str,
        registry: dict[str, Any],
        *,
        auto_register: bool = True,
    ) -> None:
        self.schema, self.subject, self.registry = schema, subject, registry
        self.auto_register = auto_register
        self._parsed = parse_schema(json.loads(schema))
        self._id: int | None = None

    def schema_id(self) -> int:
        """The schema's registry id (blocking the first time)."""
        if self._id is None:
            from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

            client = SchemaRegistryClient(self.registry)
            schema = Schema(self.schema, "AVRO")
            if self.auto_register:
                self._id = int(client.register_schema(self.subject, schema))
            else:
                found = client.lookup_schema(self.subject, schema).schema_id
                if found is None:
                    raise RegistryUnavailable(f"no id for the schema under {self.subject!r}")
                self._id = int(found)
        return self._id

    def encode(self, record: dict[str, Any]) -> bytes:
        """The framed value of ``record`` (a record as ``contracts.from_json`` returns it)."""
        body = io.BytesIO()
        schemaless_writer(body, self._parsed, record)
        return frame(self.schema_id(), body.getvalue())


SchemaFetcher = Callable[[int], str]


def registry_fetcher(registry: str | dict[str, Any]) -> SchemaFetcher:
    """A blocking fetcher of schema text by id over confluent-kafka's SchemaRegistryClient;
    ``registry`` is its URL or its whole configuration (``Settings.registry_config()``, which
    carries the registry credentials when they are set)."""
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.error import SchemaRegistryError

    client = SchemaRegistryClient({"url": registry} if isinstance(registry, str) else registry)

    def fetch(schema_id: int) -> str:
        try:
            schema = client.get_schema(schema_id)
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404:
                raise DecodeError(
                    UNKNOWN_SCHEMA, f"schema id {schema_id} is not registered"
                ) from exc
            raise RegistryUnavailable(f"schema registry error: {exc}") from exc
        except Exception as exc:  # connection refused, timeout
            raise RegistryUnavailable(f"schema registry unreachable: {exc}") from exc
        if schema.schema_str is None:
            raise DecodeError(UNKNOWN_SCHEMA, f"schema id {schema_id} has no schema text")
        return schema.schema_str

    return fetch


class AvroDecoder:
    """Decode framed Avro into dicts shaped by ``reader_schema``; writer schemas cached by id."""

    def __init__(self, reader_schema: str | dict[str, Any], fetch: SchemaFetcher) -> None:
        raw = json.loads(reader_schema) if isinstance(reader_schema, str) else reader_schema
        self.reader = parse_schema(raw)
        self.reader_name = self.reader.get("name") if isinstance(self.reader, dict) else None
        self._fetch = fetch
        self._writers: dict[int, Any] = {}
        #: ids whose writer schema is the reader schema itself: read without resolution
        self._as_reader: set[int] = set()
        self._unknown: dict[int, tuple[float, str]] = {}  # id: (until, the 404's message)
        self._lock = threading.Lock()

    def _recently_unknown(self, schema_id: int) -> str | None:
        """The registry's 404 message for ``schema_id`` if it came within UNKNOWN_ID_TTL_S."""
        unknown = self._unknown.get(schema_id)
        if unknown is not None and time.monotonic() < unknown[0]:
            return unknown[1]
        return None

    def _writer(self, schema_id: int) -> Any:
        writer = self._writers.get(schema_id)
        if writer is None:
            unknown = self._recently_unknown(schema_id)
            if unknown is not None:
                raise DecodeError(UNKNOWN_SCHEMA, unknown)
            try:
                text = self._fetch(schema_id)
            except DecodeError as exc:
                if exc.reason == UNKNOWN_SCHEMA:
                    with self._lock:
                        until = time.monotonic() + UNKNOWN_ID_TTL_S
                        self._unknown[schema_id] = (until, exc.message)
                raise
            try:
                writer = parse_schema(json.loads(text))
            except Exception as exc:
                raise DecodeError(
                    UNKNOWN_SCHEMA, f"schema id {schema_id} is not Avro: {exc}"
                ) from exc
            with self._lock:
                if writer == self.reader:
                    self._as_reader.add(schema_id)
                self._writers[schema_id] = writer
        return writer

    def known(self, data: bytes | None) -> bool:
        """True when decoding ``data`` needs no registry call (its writer schema is cached,
        or its id was unknown a moment ago)."""
        try:
            schema_id = split_frame(data)[0]
        except DecodeError:
            return True  # fails without the registry
        return schema_id in self._writers or self._recently_unknown(schema_id) is not None

    def decode(self, data: bytes | None) -> dict[str, Any]:
        """Decode, fetching the writer schema if needed (blocking)."""
        schema_id, body = split_frame(data)
        writer = self._writer(schema_id)
        name = writer.get("name") if isinstance(writer, dict) else None
        if self.reader_name and name and name.split(".")[-1] != self.reader_name.split(".")[-1]:
            raise DecodeError(
                WRONG_SUBJECT, f"schema id {schema_id} is {name}, expected {self.reader_name}"
            )
        stream = io.BytesIO(body)
        # a writer schema equal to the reader's needs no resolution (56 → 30 µs per report
        # record here, fastavro 1.13); any other goes through fastavro's schema resolution
        reader = None if schema_id in self._as_reader else self.reader
        try:
            record = schemaless_reader(stream, writer, reader)
        except (EOFError, IndexError, struct.error, UnicodeDecodeError) as exc:
            raise DecodeError(BAD_AVRO, f"truncated or corrupt Avro body: {exc}") from exc
        except Exception as exc:
            if type(exc).__name__ == "SchemaResolutionError":
                raise DecodeError(INCOMPATIBLE, str(exc)) from exc
            raise DecodeError(BAD_AVRO, f"{type(exc).__name__}: {exc}") from exc
        if stream.tell() != len(body):
            raise DecodeError(BAD_AVRO, f"{len(body) - stream.tell()} trailing bytes after record")
        if not isinstance(record, dict):
            raise DecodeError(BAD_AVRO, "not a record")
        return record

    async def decode_async(self, data: bytes | None) -> dict[str, Any]:
        """Decode without blocking the event loop on a registry fetch."""
        if self.known(data):
            return self.decode(data)
        return await asyncio.to_thread(self.decode, data)

    async def decode_waiting(self, data: bytes | None) -> dict[str, Any]:
        """Decode, waiting out an unreachable registry: a good event is never dead-lettered
        because the registry was down (DecodeError still means the event itself is bad)."""
        delay = 0.5
        while True:
            try:
                return await self.decode_async(data)
            except RegistryUnavailable as exc:
                log.warning("%s; retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
