"""`govstream produce TOPIC [--file F.jsonl] [--json] [--no-validate]`: send JSON lines as Avro.

Each line is one event as upstream apps write it (see schemas/avro/CONTRACT.md). A line that
breaks the contract is reported on stderr as ``line N: <field>: <reason>: <detail>`` and
skipped; the other lines are sent. That includes an event whose encoded size is over the
contract's limit, refused before it reaches Kafka (``line 2: description: event_too_large:
encoded event too large (1,200,412 bytes > 900,000 bytes); ...``). With ``--validate`` (the
default) a line that meets the contract is also checked against the worker's rules
(``pipelines.producer.rule_problems``: the agents' own functions) and refused when the worker
would dead-letter it, one stderr line per problem (``line 4: (record): empty_description: a
SUBMIT needs a non-empty description``). A producer error (broker, registry) stops the run at
its line, reported as ``line N: not sent, stopping: ...``; the summary is printed in every
case (``refused`` counts lines, ``reasons`` counts problems). A file of
``PROGRESS_MIN_LINES`` lines or more shows a progress bar on a terminal's stderr. Exit code 0
when every line was sent and delivered, 1 when a line was refused, Kafka did not take an event
or the run stopped early, 2 for a bad argument (unknown topic, unreadable file).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from pipelines import contracts
from pipelines.errors import ValidationError
from pipelines.output import print_json, print_table
from pipelines.producer import EventProducer, ProducerError, RuleError
from pipelines.settings import Settings, get_settings

#: Files with at least this many lines show a progress bar (on a terminal).
PROGRESS_MIN_LINES = 2_000


def open_producer(settings: Settings) -> EventProducer:
    """The producer the command uses (tests replace it)."""
    return EventProducer(settings)


def progress_console() -> Console:
    """Where the progress bar is drawn: stderr (tests replace it)."""
    return Console(stderr=True)


def _count_lines(path: Path) -> int:
    count = 0
    with path.open("rb") as raw:
        while chunk := raw.read(1 << 20):
            count += chunk.count(b"\n")
    return count


def _progress(file: Path | None) -> Progress | None:
    """A progress bar for a long file when stderr is a terminal, else None."""
    if file is None:
        return None
    console = progress_console()
    if not console.is_terminal:
        return None
    total = _count_lines(file)
    if total < PROGRESS_MIN_LINES:
        return None
    progress = Progress(
        TextColumn("发送 sending"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )
    progress.add_task("lines", total=total)
    return progress


def _lines(stream: IO[str]) -> Iterator[tuple[int, str]]:
    for number, line in enumerate(stream, start=1):
        if line.strip():
            yield number, line


def refusal(number: int, error: contracts.FieldError) -> str:
    """The stderr line of a refused input line."""
    field = error.field or "(record)"
    detail = error.message.removeprefix(f"{field}: ")
    return f"line {number}: {field}: {error.reason}: {detail}"


def _problem_line(number: int, problem: ValidationError) -> str:
    """The stderr line of one problem: a contract FieldError, or a worker rule (``(record)``)."""
    if isinstance(problem, contracts.FieldError):
        return refusal(number, problem)
    return f"line {number}: (record): {problem.reason}: {problem.message}"


def _send_all(
    producer: EventProducer,
    topic: str,
    stream: IO[str],
    *,
    validate: bool = True,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Send every line; a refused line is reported (each problem with ``validate``) and
    skipped. A producer error (broker, registry) stops the run at that line, reported with its
    number; the summary still follows (``stopped_at_line``), and the lines before it are
    flushed. ``progress`` advances by one per input line."""
    reasons: dict[str, int] = {}
    sent = lines = refused = 0
    stopped: int | None = None
    for number, line in _lines(stream):
        lines += 1
        if progress is not None:
            progress.update(progress.task_ids[0], completed=number)
        try:
            producer.send(topic, line, validate=validate)
        except (contracts.FieldError, RuleError) as error:
            refused += 1
            problems = error.problems if isinstance(error, RuleError) else [error]
            for problem in problems:
                reasons[problem.reason] = reasons.get(problem.reason, 0) + 1
                print(_problem_line(number, problem), file=sys.stderr)
            continue
        except ProducerError as error:
            print(f"line {number}: not sent, stopping: {error}", file=sys.stderr)
            stopped = number
            break
        sent += 1
    summary: dict[str, Any] = {
        "lines": lines,
        "sent": sent,
        "refused": refused,
        "reasons": reasons,
        "validated": validate,
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
    validate: bool = typer.Option(
        True,
        "--validate/--no-validate",
        help="Also check the worker's rules before sending (region, description, note, "
        "lat/lon, ...) and refuse a line it would dead-letter, listing every problem.",
    ),
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
        progress = _progress(file)
        try:
            if progress is not None:
                progress.start()
            summary = _send_all(producer, topic, stream, validate=validate, progress=progress)
        except UnicodeDecodeError as exc:
            raise typer.BadParameter(f"input is not UTF-8: {exc}", param_hint="--file") from None
        finally:
            if progress is not None:
                progress.stop()
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
