"""The dead-letter path: a bad event is copied to the `dead-letter` topic as it came and
described in `gov.dead_letters`, never dropped and never allowed to stop an agent.

Topic message: the original key and value, the original headers plus ``dlq.*`` headers
(source topic/partition/offset, reason code, message, time). Table row: the same facts, with
the value as the *masked* record (JSON) when it decoded, or base64 bytes when it did not, with
phone and ID numbers masked in both (and in the message), so raw personal data never reaches
ClickHouse.
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
        """A gov.dead_letters row (COLUMNS order)."""
        if self.masked is not None:
            value = scrub_text(json.dumps(self.masked, ensure_ascii=False, default=str))
        else:  # bytes ↔ latin-1 is one-to-one, so numbers inside binary data are masked too
            scrubbed = scrub_text((self.value or b"").decode("latin-1")).encode("latin-1")
            value = base64.b64encode(scrubbed).decode()
        event_id = str((self.masked or {}).get("event_id") or "")
        headers = {k: v.decode("utf-8", "replace") for k, v in self.headers}
        return [
            self.topic, self.partition, self.offset, self.reason, scrub_text(self.message[:2000]),
            event_id,
            base64.b64encode(self.key or b"").decode(), value, len(self.value or b""), headers,
            self.received_at, self.dead_at, fingerprint(self.identity),
        ]  # fmt: skip
