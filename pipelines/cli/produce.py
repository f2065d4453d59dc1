"""`govstream produce TOPIC [--file F.jsonl] [--json]`: send JSON lines as Avro events.

Each line is one event as upstream apps write it (see schemas/avro/CONTRACT.md). A line that
breaks the contract is reported on stderr as ``line N: <field>: <reason>: <detail>`` and
skipped; the other lines are sent. That includes an event whose encoded size is over the
contract's limit, refused before it reaches Kafka (``line 2: description: event_too_large:
encoded event too large (1,200,412 bytes > 900,000 bytes); ...``). A producer error (broker,
registry) stops the run at its line, reported as ``line N: not sent, stopping: ...``; the
summary is printed in every case. Exit code 0 when every line was sent and delivered, 1 when
a line was refused, Kafka did not take an event or the run stopped early, 2 for a bad
argument (unknown topic, unreadable file).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import typer

from pipelines import contracts
from pipelines.cli.output import print_json, print_table
from pipelines.producer import EventProducer, ProducerError
from pipelines.settings import Settings, get_settings


def open_producer(settings: Settings) -> EventProducer:
    """The producer the command uses (tests replace it)."""
    return EventProducer(settings)


def _lines(stream: IO[str]) -> Iterator[tuple[int, str]]:
    for number, line in enumerate(stream, start=1):
        if line.strip():
            yield number, line


def refusal(number: int, error: contracts.FieldError) -> str:
    """The stderr line of a refused input line."""
    field = error.field or "(record)"
    detail = error.message.removeprefix(f"{field}: ")
    return f"line {number}: {field}: {error.reason}: {detail}"


def _send_all(producer: EventProducer, topic: str, stream: IO[str]) -> dict[str, Any]:
    """Send every line; a refused line is reported and skipped. A producer error (broker,
    registry) stops the run at that line, reported with its number; the summary still follows
    (``stopped_at_line``), and the lines before it are flushed."""
    refused: dict[str, int] = {}
    sent = lines = 0
    stopped: int | None = None
    for number, line in _lines(stream):
        lines += 1
        try:
            producer.send(topic, line)
        except contracts.FieldError as error:
            refused[error.reason] = refused.get(error.reason, 0) + 1
            print(refusal(number, error), file=sys.stderr)
            continue
        except ProducerError as error:
            print(f"line {number}: not sent, stopping: {error}", file=sys.stderr)
            stopped = number
            break
        sent += 1
    summary: dict[str, Any] = {
        "lines": lines,
        "sent": sent,
        "refused": sum(refused.values()),
        "reasons": refused,
    }
    if stopped is not None:
        summary["stopped_at_line"] = stopped
    return summary


def produce(
    topic: str = typer.Argument(..., help=f"Topic to send to: {', '.join(contracts.AVRO_TOPICS)}."),
    file: Path | None = typer.Option(  # noqa: B008 - typer's declaration style
        None, "--file", "-f", help="JSON-lines file (default: read standard input)."
    ),
    json_: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
    timeout: float = typer.Option(30.0, "--timeout", help="Seconds to wait for delivery."),
) -> None:
    """Send JSON-lines events to TOPIC; invalid lines are reported with their line number."""
    if topic not in contracts.AVRO_TOPICS:
        raise typer.BadParameter(
            f"unknown topic {topic!r}; choose from {', '.join(contracts.AVRO_TOPICS)}",
            param_hint="TOPIC",
        )
    stream: IO[str]
    if file is None:
        stream = sys.stdin
    else:
        try:
            stream = file.open(encoding="utf-8")
        except OSError as exc:
            raise typer.BadParameter(
                f"cannot read {file}: {exc.strerror}", param_hint="--file"
            ) from None
    started = time.perf_counter()
    with stream:
        producer = open_producer(get_settings())
        try:
            summary = _send_all(producer, topic, stream)
        except UnicodeDecodeError as exc:
            raise typer.BadParameter(f"input is not UTF-8: {exc}", param_hint="--file") from None
        finally:
            stats = producer.close(timeout, raise_on_failure=False)
    seconds = time.perf_counter() - started
    summary.update(
        {
            "topic": topic,
            "delivered": stats.delivered,
            "failed": stats.failed + stats.pending,
            "failure_reasons": dict(stats.failure_reasons),
            "seconds": round(seconds, 3),
            "events_per_s": round(summary["sent"] / seconds, 1) if seconds > 0 else 0.0,
        }
    )
    if json_:
        print_json(summary)
    else:
        columns = ["topic", "lines", "sent", "refused", "delivered", "failed", "events_per_s"]
        print_table([summary], columns, title="govstream produce")
    for error in stats.errors:
        print(f"not delivered: {error}", file=sys.stderr)
    if summary["refused"] or summary["failed"] or "stopped_at_line" in summary:
        raise typer.Exit(1)
