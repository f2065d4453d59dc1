"""The dead-letter path: a bad event is copied to the `dead-letter` topic as it came and
described in `gov.dead_letters`, never dropped and never allowed to stop an agent.

Topic message: the original key and value, the original headers plus ``dlq.*`` headers
(source topic/partition/offset, reason code, message, time).

Two rows per bad event (issue 15, item 6; migration 0009):

* ``gov.dead_letters`` (:data:`COLUMNS`, :meth:`DeadLetter.row`), which analysts read, holds
  masked fields only: the *masked* record as JSON when the event decoded (its mask function,
  then :func:`pipelines.pii.scrub_text` over the JSON), nothing of the value when it did not
  (undecodable bytes may hold names that no cue marks, so no masking of them is safe); the key
  and the header values scrubbed by ``scrub_text`` (``form_id:<ID number>`` keys); the message
  scrubbed too.
* ``gov.dead_letter_payloads`` (:data:`PAYLOAD_COLUMNS`, :meth:`DeadLetter.payload_row`) holds
  the original key, value and headers (base64) under the same identity (source topic,
  partition, offset, fingerprint). Only the writer reads it: production grants
  (``deploy/clickhouse/users.d``) revoke it from every analyst, and the embedded endpoint
  refuses it to read-only requests (:mod:`pipelines.access`). ``govstream dead-letters --raw``
  shows it to an operator with the writer's rights.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pipelines.errors import EventError
from pipelines.pii import scrub_text

TOPIC = "dead-letter"

COLUMNS = (
    "source_topic", "source_partition", "source_offset", "reason", "message", "event_id",
    "key", "value", "value_size", "headers", "received_at", "dead_at", "fingerprint",
)  # fmt: skip

#: The writer-only table of the original bytes, and its columns (:meth:`DeadLetter.payload_row`).
PAYLOAD_TABLE = "dead_letter_payloads"
PAYLOAD_COLUMNS = (
    "source_topic", "source_partition", "source_offset", "fingerprint", "key", "value",
    "headers", "dead_at",
)  # fmt: skip


def masked_bytes(data: bytes) -> bytes:
    """``data`` with phone numbers, ID numbers and cued names masked by ``scrub_text``: read as
    UTF-8 when it is (so names are found), else byte for byte as latin-1 (numbers only)."""
    try:
        return scrub_text(data.decode("utf-8")).encode("utf-8")
    except UnicodeDecodeError:  # bytes <-> latin-1 is one-to-one
        return scrub_text(data.decode("latin-1")).encode("latin-1")


def fingerprint(identity: bytes) -> str:
    """A dead letter's identity beside its source coordinates (migration 0007): the first 16
    hex digits of SHA-256 over :func:`pipelines.sink.record_identity` bytes."""
    return hashlib.sha256(identity).hexdigest()[:16]


@dataclass(frozen=True)
class DeadLetter:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]]
    reason: str
    message: str
    received_at: datetime
    dead_at: datetime
    masked: Mapping[str, Any] | None = None  # the decoded record, masked, when it decoded
    identity: bytes = b""  # key, value and timestamp of the source record (sink.record_identity)

    @classmethod
    def of(
        cls,
        error: EventError,
        *,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes]] | None,
        received_at: datetime,
        dead_at: datetime,
        masked: Mapping[str, Any] | None = None,
        identity: bytes = b"",
    ) -> DeadLetter:
        return cls(
            topic, partition, offset, key, value, list(headers or []), error.reason,
            error.message, received_at, dead_at, masked, identity,
        )  # fmt: skip

    def topic_headers(self) -> list[tuple[str, bytes]]:
        """Original headers plus where the event came from and why it is here."""
        extra = {
            "dlq.source.topic": self.topic,
            "dlq.source.partition": str(self.partition),
            "dlq.source.offset": str(self.offset),
            "dlq.reason": self.reason,
            "dlq.message": self.message[:1000],
            "dlq.time": self.dead_at.isoformat(),
        }
        return [*self.headers, *((k, v.encode()) for k, v in extra.items())]

    def row(self) -> list[Any]:
        """A gov.dead_letters row (:data:`COLUMNS` order), masked fields only: ``value`` is the
        masked record as JSON (scrubbed again) or ``""`` when the event did not decode; ``key``
        is base64 of :func:`masked_bytes` of the key; header values are scrubbed text."""
        value = ""
        if self.masked is not None:
            value = scrub_text(json.dumps(self.masked, ensure_ascii=False, default=str))
        event_id = scrub_text(str((self.masked or {}).get("event_id") or ""))
        headers = {k: scrub_text(v.decode("utf-8", "replace")) for k, v in self.headers}
        return [
            self.topic, self.partition, self.offset, self.reason, scrub_text(self.message[:2000]),
            event_id, base64.b64encode(masked_bytes(self.key or b"")).decode(), value,
            len(self.value or b""), headers, self.received_at, self.dead_at,
            fingerprint(self.identity),
        ]  # fmt: skip

    def payload_row(self) -> list[Any]:
        """A gov.dead_letter_payloads row (:data:`PAYLOAD_COLUMNS` order): the original key,
        value and header values as base64, under the identity of :meth:`row`'s row."""
        headers = {k: base64.b64encode(v).decode() for k, v in self.headers}
        return [
            self.topic, self.partition, self.offset, fingerprint(self.identity),
            base64.b64encode(self.key or b"").decode(),
            base64.b64encode(self.value or b"").decode(), headers, self.dead_at,
        ]  # fmt: skip
