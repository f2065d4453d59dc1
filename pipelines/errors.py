"""The one error root of govstream.

Every error the project raises on purpose derives from :class:`GovstreamError`.
Errors about an event carry where it came from (topic, partition, offset) and a
machine-readable reason code, so the dead-letter path can record them as they are.
"""

from __future__ import annotations


class GovstreamError(Exception):
    """Root of every govstream error."""


class ConfigError(GovstreamError):
    """A setting or a command-line argument is wrong; the message says which and why."""


class StackError(GovstreamError):
    """The embedded stack could not be started, stopped or reached."""


class PortInUseError(StackError, ConfigError):
    """A service's port is taken by a process the stack did not start."""


class EventError(GovstreamError):
    """A single event could not be decoded or failed validation.

    ``reason`` is a stable code (e.g. ``unknown_region``) that analysts group by in
    ``gov.dead_letters``; the message is for people.
    """

    def __init__(
        self,
        reason: str,
        message: str,
        *,
        topic: str | None = None,
        partition: int | None = None,
        offset: int | None = None,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.topic = topic
        self.partition = partition
        self.offset = offset

    def __str__(self) -> str:
        where = ""
        if self.topic is not None:
            where = f" at {self.topic}[{self.partition}]@{self.offset}"
        return f"{self.reason}{where}: {self.message}"


class DecodeError(EventError):
    """The bytes are not a Confluent-framed Avro record the registry knows."""


class ValidationError(EventError):
    """The record decoded but breaks a rule of the contract."""


#: reason code of an event whose processing raised something other than an EventError
PROCESSING_ERROR = "processing_error"


def as_event_error(exc: BaseException) -> EventError:
    """An unexpected failure while processing one event, as a dead-letter reason."""
    if isinstance(exc, EventError):
        return exc
    text = str(exc)
    if len(text) > 300:
        text = text[:300] + "…"
    return EventError(PROCESSING_ERROR, f"{type(exc).__name__}: {text}")
