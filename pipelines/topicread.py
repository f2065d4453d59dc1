"""Read a project topic from the shell (``govstream topic read``), decoded with its schema.

kcat cannot talk to the embedded broker (README, DESIGN.md), so this reads with confluent-kafka:
a Consumer with ``assign()`` only, which never joins or commits to a group. Each partition is
read in turn from its start (or ``from_offset``) up to the log end it had when the read began
(:func:`pipelines.kafka_admin.log_end_offsets`, correct on Tansu), so the output is ordered by
partition and offset and the command ends.

How a value is decoded (:func:`decode_value`), by topic:

- ``report``, ``form-submission``, ``alert``: Confluent-framed Avro, the writer schema fetched
  from the registry by id, resolved to the project's reader schema (:class:`codec.AvroDecoder`);
  a value that does not decode is shown with its reason code instead (as the worker would
  dead-letter it).
- ``report-routed``, the repeat-complaint hops (``<app id>-person-complaints``,
  ``<app id>-repeat-of``) and the worker's table changelogs (``<app id>-<table>-changelog``):
  JSON (Faust's value serializer for them).
- ``dead-letter``: the original bytes as they came (UTF-8 text, else base64), and its
  ``dlq.*`` headers say where from and why.

Masked by default: every string of the decoded value, the key and the header values go through
:func:`pipelines.pii.scrub_text` (the rules of the README's masking section; undecodable bytes
through :func:`pipelines.deadletter.masked_bytes`). ``raw=True`` shows them as stored.

Time filter: the embedded broker (Tansu) answers ListOffsets by timestamp wrongly (DESIGN.md),
so ``from_time`` does not seek: each partition is scanned from its start and records with a
timestamp before ``from_time`` are skipped.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from pipelines import contracts, kafka_admin, topics
from pipelines.deadletter import masked_bytes
from pipelines.errors import ConfigError, DecodeError, GovstreamError
from pipelines.pii import scrub_text
from pipelines.settings import Settings

#: The reports agent's hop to the work-order agent (JSON values).
ROUTED = "report-routed"
#: Record times are shown in the one time zone an analyst or operator reads (issue 17, item 7).
SHANGHAI = ZoneInfo("Asia/Shanghai")


class TopicReadError(GovstreamError):
    """Kafka or the registry could not be read."""


def kind_of(topic: str, settings: Settings) -> str:
    """How ``topic``'s values are decoded: ``avro``, ``json`` or ``raw``; raises ConfigError
    for a topic that is not the project's."""
    if topic in contracts.AVRO_TOPICS:
        return "avro"
    if topic == contracts.DEAD_LETTER:
        return "raw"
    own = {topics.app_topic(settings, hop) for hop in topics.APP_HOPS}
    if (
        topic == ROUTED
        or topic in own
        or (topic.startswith(f"{settings.app_id}-") and topic.endswith("-changelog"))
    ):
        return "json"
    raise ConfigError(
        f"{topic!r} is not a project topic: choose from "
        f"{', '.join([*contracts.TOPICS, ROUTED, *sorted(own)])} or "
        f"{settings.app_id}-<table>-changelog"
    )


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    timestamp: datetime | None
    key: str | None
    headers: dict[str, str]
    value: Any
    error: str | None  # why the value did not decode (then ``value`` is its bytes as text)

    def as_dict(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "timestamp": None if self.timestamp is None else self.timestamp.isoformat(),
            "key": self.key,
            "headers": self.headers,
            "value": self.value,
            "error": self.error,
        }


def _text(data: bytes | None, raw: bool) -> str | None:
    """Bytes as text: UTF-8 when they are, else ``base64:`` + base64; masked unless raw."""
    if data is None:
        return None
    if not raw:
        data = masked_bytes(data)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return "base64:" + base64.b64encode(data).decode("ascii")


def mask(value: Any) -> Any:
    """Every string inside ``value`` (dicts, lists) through :func:`scrub_text`."""
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, dict):
        return {k: mask(v) for k, v in value.items()}
    if isinstance(value, list):
        return [mask(v) for v in value]
    return value


def _jsonable(value: Any) -> Any:
    """Avro's bytes, datetimes and decimals as JSON values."""
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, bytes):
        return "base64:" + base64.b64encode(value).decode("ascii")
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, int | float | str | bool) or value is None:
        return value
    return str(value)


class Decoder:
    """Decodes one topic's values (see the module's docstring)."""

    def __init__(self, settings: Settings, topic: str, *, raw: bool) -> None:
        self.kind = kind_of(topic, settings)
        self.raw = raw
        self._avro: Any = None
        if self.kind == "avro":
            from pipelines.codec import AvroDecoder, registry_fetcher

            self._avro = AvroDecoder(
                contracts.load_schema(topic), registry_fetcher(settings.registry_config())
            )

    def decode_value(self, data: bytes | None) -> tuple[Any, str | None]:
        """(value, error): the decoded value (masked unless raw), or its bytes as text and why
        it did not decode. Raises TopicReadError when the registry does not answer."""
        if data is None:
            return None, None
        if self.kind == "avro":
            from pipelines.codec import RegistryUnavailable

            try:
                value = _jsonable(self._avro.decode(data))
            except DecodeError as exc:
                return _text(data, self.raw), str(exc)
            except RegistryUnavailable as exc:
                raise TopicReadError(str(exc)) from exc
        elif self.kind == "json":
            try:
                value = json.loads(data)
            except ValueError as exc:
                return _text(data, self.raw), f"not JSON: {exc}"
        else:
            return _text(data, self.raw), None
        return (value if self.raw else mask(value)), None


def read(
    settings: Settings,
    topic: str,
    *,
    partition: int | None = None,
    from_offset: int | None = None,
    from_time: datetime | None = None,
    limit: int = 20,
    raw: bool = False,
    timeout: float = 10.0,
) -> Iterator[Record]:
    """Up to ``limit`` records of ``topic`` (every partition, or ``partition``), decoded.

    ``from_offset``: where each partition starts (negative: that many records before its end;
    default its start); ``from_time`` (aware): skip records stamped earlier (a scan, see the
    module's docstring). Raises ConfigError for a topic that is not the project's or does not
    exist, or a partition it does not have; TopicReadError when Kafka does not answer."""
    from confluent_kafka import Consumer, KafkaError, TopicPartition

    decoder = Decoder(settings, topic, raw=raw)
    try:
        parts = kafka_admin.partitions_of(settings, [topic], timeout)
        if not parts:
            raise ConfigError(f"topic {topic!r} does not exist on {settings.kafka_bootstrap}")
        if partition is not None:
            if (topic, partition) not in parts:
                raise ConfigError(f"topic {topic!r} has partitions 0-{len(parts) - 1}")
            parts = [(topic, partition)]
        ends = kafka_admin.log_end_offsets(settings, parts, timeout)
        starts = kafka_admin.list_offsets(settings, parts, latest=False, timeout=timeout)
    except kafka_admin.LagError as exc:
        raise TopicReadError(str(exc)) from exc
    consumer = Consumer(
        settings.kafka_config(
            **{
                "group.id": f"govstream-topic-read-{uuid.uuid4().hex[:8]}",  # never joined
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "enable.partition.eof": True,
                "fetch.wait.max.ms": 100,
                "log_level": 0,
            }
        )
    )
    left = limit
    try:
        for tp in parts:
            start, end = starts.get(tp, 0), ends.get(tp, 0)
            if from_offset is not None and from_time is None:
                start = max(start, end + from_offset if from_offset < 0 else from_offset)
            if start >= end or left <= 0:
                continue
            consumer.assign([TopicPartition(tp[0], tp[1], start)])
            position = start
            idle = 0
            while position < end and left > 0:
                batch = consumer.consume(min(500, max(left, 1) * 4), timeout=0.5)
                if not batch:
                    idle += 1
                    if idle * 0.5 > timeout:
                        raise TopicReadError(
                            f"{tp[0]}[{tp[1]}]: no record at offset {position} within "
                            f"{timeout:g} s (log end {end})"
                        )
                    continue
                idle = 0
                for msg in batch:
                    err = msg.error()
                    if err is not None:
                        if err.code() == KafkaError._PARTITION_EOF:
                            position = end
                            break
                        raise TopicReadError(f"{tp[0]}[{tp[1]}]: {err.str()}")
                    offset = int(msg.offset() or 0)
                    if offset < position:
                        continue
                    position = offset + 1
                    if offset >= end:
                        position = end
                        break
                    record = _record(msg, decoder, raw)
                    if from_time is not None and (
                        record.timestamp is None or record.timestamp < from_time
                    ):
                        continue
                    yield record
                    left -= 1
                    if left <= 0:
                        break
            consumer.unassign()
    finally:
        consumer.close()


def _record(msg: Any, decoder: Decoder, raw: bool) -> Record:
    ts_type, ts_ms = msg.timestamp()
    timestamp = datetime.fromtimestamp(ts_ms / 1000, UTC).astimezone(SHANGHAI) if ts_type else None
    value, error = decoder.decode_value(msg.value())
    headers = {k: _text(v, raw) or "" for k, v in (msg.headers() or [])}
    return Record(
        str(msg.topic()),
        int(msg.partition() or 0),
        int(msg.offset() or 0),
        timestamp,
        _text(msg.key(), raw),
        headers,
        value,
        error,
    )
