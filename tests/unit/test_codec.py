"""Confluent framing and Avro decoding with schema resolution (fetcher is an in-memory dict)."""

from __future__ import annotations

import asyncio
import io
import json

import pytest
from fastavro import parse_schema, schemaless_writer

from pipelines.codec import (
    BAD_AVRO,
    INCOMPATIBLE,
    NOT_FRAMED,
    UNKNOWN_SCHEMA,
    WRONG_SUBJECT,
    AvroDecoder,
    RegistryUnavailable,
    frame,
)
from pipelines.errors import DecodeError

pytestmark = pytest.mark.unit

V1 = {"type": "record", "name": "Thing", "fields": [{"name": "id", "type": "string"}]}
V2 = {
    "type": "record",
    "name": "Thing",
    "fields": [
        {"name": "id", "type": "string"},
        {"name": "note", "type": ["null", "string"], "default": None},
    ],
}
OTHER = {"type": "record", "name": "Other", "fields": [{"name": "id", "type": "string"}]}
NEEDS = {
    "type": "record",
    "name": "Thing",
    "fields": [{"name": "id", "type": "string"}, {"name": "must", "type": "int"}],
}


def encode(schema: dict, record: dict) -> bytes:
    out = io.BytesIO()
    schemaless_writer(out, parse_schema(schema), record)
    return out.getvalue()


REGISTRY = {1: V1, 2: V2, 3: OTHER}


def fetch(schema_id: int) -> str:
    if schema_id not in REGISTRY:
        raise DecodeError(UNKNOWN_SCHEMA, f"schema id {schema_id} is not registered")
    return json.dumps(REGISTRY[schema_id])


def test_old_and_new_writers_decode_into_the_reader_shape() -> None:
    decoder = AvroDecoder(V2, fetch)
    assert decoder.decode(frame(1, encode(V1, {"id": "a"}))) == {"id": "a", "note": None}
    assert decoder.decode(frame(2, encode(V2, {"id": "b", "note": "x"}))) == {
        "id": "b",
        "note": "x",
    }
    old_reader = AvroDecoder(V1, fetch)
    assert old_reader.decode(frame(2, encode(V2, {"id": "c", "note": "x"}))) == {"id": "c"}


def test_a_writer_schema_equal_to_the_readers_is_read_without_resolution(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import pipelines.codec as codec

    readers: list[object] = []
    real = codec.schemaless_reader

    def spying(stream: io.BytesIO, writer: object, reader: object) -> object:
        readers.append(reader)
        return real(stream, writer, reader)

    monkeypatch.setattr(codec, "schemaless_reader", spying)
    decoder = AvroDecoder(V2, fetch)
    same = frame(2, encode(V2, {"id": "b", "note": "x"}))
    older = frame(1, encode(V1, {"id": "a"}))
    assert decoder.decode(same) == {"id": "b", "note": "x"}
    assert decoder.decode(older) == {"id": "a", "note": None}
    assert readers == [None, decoder.reader]  # id 2 is V2 itself; id 1 is resolved
    with pytest.raises(DecodeError) as info:  # the fast path still checks the body
        decoder.decode(frame(2, encode(V2, {"id": "b", "note": "x"}) + b"junk"))
    assert info.value.reason == BAD_AVRO


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (None, NOT_FRAMED),
        (b"", NOT_FRAMED),
        (b"\x01\x00\x00\x00\x01abc", NOT_FRAMED),
        (b'{"id": "json"}', NOT_FRAMED),
        (frame(99, b"\x02a"), UNKNOWN_SCHEMA),
        (frame(1, b"\x10ab"), BAD_AVRO),  # string length 8, only 2 bytes
        (frame(1, encode(V1, {"id": "a"}) + b"junk"), BAD_AVRO),
        (frame(3, encode(OTHER, {"id": "a"})), WRONG_SUBJECT),
    ],
)
def test_bad_input_gets_a_reason(data: bytes | None, reason: str) -> None:
    with pytest.raises(DecodeError) as info:
        AvroDecoder(V2, fetch).decode(data)
    assert info.value.reason == reason


def test_reader_needing_a_field_the_writer_lacks_is_incompatible() -> None:
    with pytest.raises(DecodeError) as info:
        AvroDecoder(NEEDS, fetch).decode(frame(1, encode(V1, {"id": "a"})))
    assert info.value.reason == INCOMPATIBLE


def test_writer_schema_is_fetched_once_and_async_path_agrees() -> None:
    calls: list[int] = []

    def counting(schema_id: int) -> str:
        calls.append(schema_id)
        return fetch(schema_id)

    decoder = AvroDecoder(V2, counting)
    data = frame(1, encode(V1, {"id": "a"}))
    assert not decoder.known(data)
    first = asyncio.run(decoder.decode_async(data))
    assert decoder.known(data)
    assert asyncio.run(decoder.decode_async(data)) == first == {"id": "a", "note": None}
    assert calls == [1]


def test_decode_waiting_waits_out_an_unreachable_registry() -> None:
    schema = {"type": "record", "name": "R", "fields": [{"name": "a", "type": "int"}]}
    calls = []

    def fetch(schema_id: int) -> str:
        calls.append(schema_id)
        if len(calls) == 1:
            raise RegistryUnavailable("registry down")
        return json.dumps(schema)

    out = io.BytesIO()
    schemaless_writer(out, parse_schema(schema), {"a": 7})
    decoder = AvroDecoder(schema, fetch)
    assert asyncio.run(decoder.decode_waiting(frame(3, out.getvalue()))) == {"a": 7}
    assert calls == [3, 3]


def test_an_unknown_schema_id_is_asked_once_per_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    """A flood of events framed with a foreign registry's id must not cost a 404 each."""
    from pipelines import codec

    calls: list[int] = []

    def fetch(schema_id: int) -> str:
        calls.append(schema_id)
        raise DecodeError(UNKNOWN_SCHEMA, f"schema id {schema_id} is not registered")

    now = [1000.0]
    monkeypatch.setattr(codec.time, "monotonic", lambda: now[0])
    decoder = AvroDecoder(V2, fetch)
    data = frame(77, b"\x00")
    assert not decoder.known(data)
    for _ in range(3):
        with pytest.raises(DecodeError) as caught:
            decoder.decode(data)
        assert caught.value.reason == UNKNOWN_SCHEMA and "77" in str(caught.value)
    assert calls == [77] and decoder.known(data)
    now[0] += codec.UNKNOWN_ID_TTL_S + 0.1  # the registry may know it by now: ask again
    assert not decoder.known(data)
    with pytest.raises(DecodeError):
        decoder.decode(data)
    assert calls == [77, 77]
