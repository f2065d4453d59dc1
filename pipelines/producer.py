"""The producer API for upstream apps: JSON-shaped events in, Confluent-framed Avro on Kafka out.

::

    from pipelines.producer import EventProducer

    with EventProducer() as producer:                 # settings from GOVSTREAM_* variables
        producer.send("report", {"event_id": ..., "report_id": ..., ...})
    # leaving the block flushes; undelivered events raise UndeliveredError

``send`` validates the event against the contract first (``contracts.from_json``); with
``validate=True`` it also checks the worker's rules (:func:`rule_problems`: the same
``reports``/``forms``/``alerts.problems`` the agents apply, so an event the worker would
dead-letter is refused with :class:`RuleError` listing every problem); then it checks
the encoded size (``contracts.check_event_size``: key + value at most
``contracts.MAX_EVENT_BYTES``, 900,000 bytes): a :class:`~pipelines.contracts.FieldError` is
raised and nothing is sent. The value is serialized
by confluent-kafka's ``AvroSerializer`` under the topic's TopicNameStrategy subject
(``report-value``, …); the message key is ``contracts.key_for`` (UTF-8), hashed with
``murmur2_random`` like the Java client, so every client puts a key on the same partition.
The producer is idempotent and batches (``Settings.kafka_producer_config``: linger 100 ms,
1 MB batches, lz4), which the embedded broker needs to stay fast (see that method).

Delivery is asynchronous: ``stats`` counts produced, delivered and failed events (failures
by librdkafka error name). A full local queue (``BufferError``) is handled by serving delivery
reports until there is room again.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext

from pipelines import contracts, reasons
from pipelines.errors import GovstreamError, ValidationError
from pipelines.settings import Settings, get_settings

#: Reason of a line that is not JSON at all (the other reasons are contracts' codes).
INVALID_JSON = reasons.code("invalid_json")
MAX_KEPT_ERRORS = 20

DeliveryCallback = Callable[[KafkaError | None, Message], None]


class RuleError(ValidationError):
    """An event meets the contract but breaks rules the worker checks (it would be
    dead-lettered): ``problems`` lists each one (a ValidationError with its reason code);
    ``reason`` is the first one's."""

    def __init__(self, problems: Sequence[ValidationError]) -> None:
        if not problems:
            raise ValueError("a RuleError needs at least one problem")
        super().__init__(problems[0].reason, "; ".join(str(p) for p in problems))
        self.problems = list(problems)


def rule_problems(
    topic: str, record: Mapping[str, Any], now: datetime | None = None
) -> list[ValidationError]:
    """Every rule of the worker a record (as ``contracts.from_json`` returns it) breaks, as of
    ``now`` (default: the current time), empty when the worker would take it.

    The rules are the agents' own pure functions (``pipelines.reports.problems``,
    ``forms.problems``, ``alerts.problems``, the first of which ``validate`` raises), so the
    producer and the worker cannot disagree. Raises ``UnknownTopicError`` for a topic without
    an Avro contract."""
    from pipelines import alerts, forms, reports  # the worker's modules: loaded only when used

    rules: dict[str, Callable[[Mapping[str, Any], datetime], list[ValidationError]]] = {
        contracts.REPORT: reports.problems,
        contracts.FORM_SUBMISSION: forms.problems,
        contracts.ALERT: alerts.problems,
    }
    check = rules.get(topic)
    if check is None:
        raise contracts.UnknownTopicError(
            f"unknown topic {topic!r}; choose from {', '.join(contracts.AVRO_TOPICS)}"
        )
    return check(record, now or datetime.now(UTC))


class ProducerError(GovstreamError):
    """The producer could not hand an event to Kafka (broker, registry or configuration)."""


class RegistryError(ProducerError):
    """The schema registry refused or could not be reached while serializing a value."""


class QueueFullError(ProducerError):
    """The local queue stayed full: the broker does not take events fast enough (or is down)."""


class UndeliveredError(ProducerError):
    """Some events were not delivered: ``pending`` still queued, ``failed`` refused by Kafka."""

    def __init__(self, message: str, *, pending: int, failed: int, reasons: Mapping[str, int]):
        super().__init__(message)
        self.pending = pending
        self.failed = failed
        self.reasons = dict(reasons)


@dataclass
class DeliveryStats:
    """Counts of one producer: produced (handed to librdkafka), delivered, failed, refused."""

    produced: int = 0
    delivered: int = 0
    failed: int = 0
    refused: int = 0
    failure_reasons: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    by_topic: Counter[str] = field(default_factory=Counter)

    @property
    def pending(self) -> int:
        return self.produced - self.delivered - self.failed

    def as_dict(self) -> dict[str, Any]:
        return {
            "produced": self.produced,
            "delivered": self.delivered,
            "failed": self.failed,
            "refused": self.refused,
            "pending": self.pending,
            "failure_reasons": dict(self.failure_reasons),
            "errors": list(self.errors),
            "by_topic": dict(self.by_topic),
        }


def parse_event(line: str | bytes) -> Any:
    """One JSON line → object, or a FieldError with reason ``invalid_json``."""
    try:
        return json.loads(line)
    except (ValueError, UnicodeDecodeError) as exc:
        raise contracts.FieldError(INVALID_JSON, "", f"not JSON: {exc}") from None


class EventProducer:
    """Send contract-checked events to the pipeline's topics (a context manager).

    ``auto_register`` registers the project's schema under the topic's subject on first use
    (the embedded stack and development); with ``False`` the schema must already be registered
    (production, where a registry ACL controls the contract) and is looked up instead.
    ``config`` overrides librdkafka settings of ``Settings.kafka_producer_config``.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        auto_register: bool = True,
        config: Mapping[str, Any] | None = None,
        registry: SchemaRegistryClient | None = None,
        queue_full_timeout: float = 30.0,
        poll_every: int = 1000,
    ) -> None:
        self.settings = settings or get_settings()
        self.auto_register = auto_register
        self.queue_full_timeout = queue_full_timeout
        self.stats = DeliveryStats()
        self._poll_every = max(1, poll_every)
        self._since_poll = 0
        try:
            self._producer = Producer(self.settings.kafka_producer_config(**dict(config or {})))
        except KafkaException as exc:
            raise ProducerError(f"invalid producer configuration: {exc}") from exc
        self._registry = registry or SchemaRegistryClient(self.settings.registry_config())
        self._serializers: dict[str, AvroSerializer] = {}
        self._closed = False

    # --- context manager ------------------------------------------------------------------

    def __enter__(self) -> EventProducer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close(raise_on_failure=exc_type is None)

    def close(self, timeout: float = 30.0, *, raise_on_failure: bool = True) -> DeliveryStats:
        """Flush what is queued; with ``raise_on_failure`` undelivered events raise."""
        if self._closed:
            return self.stats
        self._closed = True
        return self.flush(timeout, raise_on_failure=raise_on_failure)

    # --- serialization --------------------------------------------------------------------

    def _serializer(self, topic: str) -> AvroSerializer:
        serializer = self._serializers.get(topic)
        if serializer is None:
            conf = {"auto.register.schemas": self.auto_register}
            if not self.auto_register:
                conf["use.latest.version"] = False
            serializer = AvroSerializer(self._registry, contracts.load_schema(topic), conf=conf)
            self._serializers[topic] = serializer
        return serializer

    def serialize(self, topic: str, record: Mapping[str, Any]) -> bytes:
        """The Confluent-framed Avro value of a record (as ``contracts.from_json`` returns)."""
        context = SerializationContext(topic, MessageField.VALUE)
        try:
            value = self._serializer(topic)(record, context)
        except SchemaRegistryError as exc:
            subject = contracts.subject_for(topic)
            hint = "" if self.auto_register else " (is the schema registered? auto_register=False)"
            raise RegistryError(
                f"schema registry refused subject {subject!r}: {exc.error_message}{hint}"
            ) from exc
        except (ValueError, TypeError) as exc:
            raise ProducerError(f"cannot serialize a {topic} record: {exc}") from exc
        except Exception as exc:  # connection refused, timeout talking to the registry
            if type(exc).__module__.startswith(("requests", "httpx", "urllib3")):
                raise RegistryError(
                    f"schema registry {self.settings.schema_registry_url} unreachable: {exc}"
                ) from exc
            raise
        assert value is not None
        return value

    def prepare(self, topic: str, event: Any) -> tuple[str, dict[str, Any]]:
        """(key, record) of an event, or FieldError; ``event`` is a dict or a JSON text."""
        if isinstance(event, str | bytes):
            event = parse_event(event)
        record = contracts.from_json(topic, event)
        return contracts.key_for(topic, record), record

    # --- sending ----------------------------------------------------------------------------

    def send(
        self,
        topic: str,
        event: Any,
        *,
        validate: bool = False,
        on_delivery: DeliveryCallback | None = None,
    ) -> str:
        """Validate, serialize and queue one event; returns its message key.

        ``event`` is a JSON-shaped dict (or its JSON text). A contract violation raises
        :class:`~pipelines.contracts.FieldError` and nothing is sent, also when the encoded
        event (key + framed value) is over ``contracts.MAX_EVENT_BYTES`` (reason
        ``event_too_large``, checked before librdkafka sees it); an unknown topic raises
        :class:`~pipelines.contracts.UnknownTopicError`. With ``validate`` an event that meets
        the contract but breaks the worker's rules raises :class:`RuleError` (every problem in
        ``problems``) and nothing is sent. ``on_delivery(err, msg)`` is called from
        ``poll``/``flush`` once Kafka acknowledged (``err is None``) or gave up.
        """
        try:
            key, record = self.prepare(topic, event)
            if validate:
                problems = rule_problems(topic, record)
                if problems:
                    raise RuleError(problems)
            value = self.serialize(topic, record)
            contracts.check_event_size(value, key, record=record)
        except (contracts.FieldError, RuleError):
            self.stats.refused += 1
            raise
        self.produce_raw(topic, value, key=key, on_delivery=on_delivery)
        return key

    def produce_raw(
        self,
        topic: str,
        value: bytes | None,
        *,
        key: str | bytes | None = None,
        headers: Mapping[str, bytes] | None = None,
        on_delivery: DeliveryCallback | None = None,
    ) -> None:
        """Queue bytes as they are (no contract check): replays, dead letters, test input."""
        if self._closed:
            raise ProducerError("the producer is closed")
        callback = self._on_delivery
        if on_delivery is not None:
            user = on_delivery

            def callback(err: KafkaError | None, msg: Message) -> None:
                self._on_delivery(err, msg)
                user(err, msg)

        kwargs: dict[str, Any] = {"key": key, "on_delivery": callback}
        if headers:
            kwargs["headers"] = list(headers.items())
        deadline: float | None = None
        while True:
            try:
                self._producer.produce(topic, value, **kwargs)
                break
            except BufferError:
                # the local queue is full: serve delivery reports until there is room
                now = time.monotonic()
                deadline = deadline or now + self.queue_full_timeout
                if now >= deadline:
                    raise QueueFullError(
                        f"local producer queue stayed full for {self.queue_full_timeout:.0f}s "
                        f"({self.stats.pending} events waiting); is the broker "
                        f"{self.settings.kafka_bootstrap} up?"
                    ) from None
                self._producer.poll(0.05)
            except KafkaException as exc:
                raise ProducerError(f"cannot produce to {topic!r}: {exc}") from exc
        self.stats.produced += 1
        self.stats.by_topic[topic] += 1
        self._since_poll += 1
        if self._since_poll >= self._poll_every:
            self._since_poll = 0
            self._producer.poll(0)

    def _on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        if err is None:
            self.stats.delivered += 1
            return
        self.stats.failed += 1
        self.stats.failure_reasons[err.name()] += 1
        if len(self.stats.errors) < MAX_KEPT_ERRORS:
            key = msg.key()
            shown = key.decode("utf-8", "replace") if isinstance(key, bytes) else key
            self.stats.errors.append(f"{msg.topic()} key {shown!r}: {err.str()}")

    def poll(self, timeout: float = 0.0) -> int:
        """Serve delivery reports; returns how many were served."""
        return int(self._producer.poll(timeout))

    def flush(self, timeout: float = 30.0, *, raise_on_failure: bool = True) -> DeliveryStats:
        """Wait until every queued event is delivered or ``timeout`` seconds passed.

        Raises :class:`UndeliveredError` (with ``raise_on_failure``) when events are still
        queued after the timeout or Kafka refused some; returns the stats otherwise.
        """
        remaining = int(self._producer.flush(timeout))
        self._since_poll = 0
        stats = self.stats
        if raise_on_failure and (remaining or stats.failed):
            reasons = ", ".join(f"{k} x{v}" for k, v in stats.failure_reasons.most_common())
            parts = []
            if remaining:
                parts.append(f"{remaining} events still queued after {timeout:g}s")
            if stats.failed:
                parts.append(f"{stats.failed} refused by Kafka ({reasons})")
            raise UndeliveredError(
                "; ".join(parts) + f" (broker {self.settings.kafka_bootstrap})",
                pending=remaining,
                failed=stats.failed,
                reasons=stats.failure_reasons,
            )
        return stats
