"""`govstream topic read TOPIC`: records of a project topic, decoded with their schema.

See :mod:`pipelines.topicread` for how each topic is decoded and masked. A block per record
for people, one JSON object per line with ``--json`` (keys: topic, partition, offset,
timestamp, key, headers, value, error).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import typer

from pipelines import probes, topicread
from pipelines.cli.deadletters import parse_time
from pipelines.output import console
from pipelines.settings import get_settings

app = typer.Typer(help="Read the project's Kafka topics (kcat cannot talk to the embedded broker).")


@app.command()
def read(
    topic: str = typer.Argument(
        ...,
        help="report, form-submission, alert (Avro via the registry), report-routed or "
        "<app id>-<table>-changelog (JSON), dead-letter (the original bytes, dlq.* headers).",
    ),
    from_offset: int | None = typer.Option(
        None,
        "--from-offset",
        help="First offset of each partition; negative: that many records before its end "
        "(default: its start).",
    ),
    from_time: str | None = typer.Option(
        None,
        "--from-time",
        help="Only records stamped at or after this ISO time (naive: UTC) or age (30m, 2h). "
        "The embedded broker cannot look offsets up by time, so each partition is scanned "
        "from its start and earlier records are skipped.",
    ),
    partition: int | None = typer.Option(None, "--partition", "-p", min=0, help="One partition."),
    max_: int = typer.Option(20, "--max", "-n", min=1, help="Records to print at most."),
    raw: bool = typer.Option(
        False, "--raw", help="Show personal data as stored (default: masked as in ClickHouse)."
    ),
    json_: bool = typer.Option(False, "--json", help="One JSON object per record and line."),
) -> None:
    """Print records of a project topic, decoded with their schema, partition by partition up
    to the log end of when it started; exit 2 for a topic that is not the project's or does
    not exist, 1 when Kafka or the registry does not answer."""
    settings = get_settings()
    since = None if from_time is None else parse_time(from_time, "--from-time", datetime.now(UTC))
    if from_time is not None and from_offset is not None:
        raise typer.BadParameter("give --from-offset or --from-time, not both")
    topicread.kind_of(topic, settings)  # a wrong topic is exit 2 before anything is asked
    probes.require(
        ["kafka", "registry"] if topic in topicread.contracts.AVRO_TOPICS else ["kafka"], settings
    )
    count = 0
    for record in topicread.read(
        settings, topic, partition=partition, from_offset=from_offset, from_time=since,
        limit=max_, raw=raw,
    ):  # fmt: skip
        count += 1
        if json_:
            print(json.dumps(record.as_dict(), ensure_ascii=False, default=str), flush=True)
            continue
        stamp = "-" if record.timestamp is None else record.timestamp.isoformat(" ", "seconds")
        console.print(
            f"[bold]{record.topic}[{record.partition}]@{record.offset}[/bold]  {stamp}  "
            f"key={record.key!r}",
            highlight=False,
            markup=True,
        )
        for name, value in record.headers.items():
            console.print(f"  {name}: {value}", highlight=False, markup=False)
        if record.error:
            console.print(f"  [red]not decoded:[/red] {record.error}", highlight=False)
        body = record.value
        text = body if isinstance(body, str) else json.dumps(body, ensure_ascii=False, indent=2)
        console.print("  " + str(text).replace("\n", "\n  "), highlight=False, markup=False)
    if not json_:
        console.print(f"{count} record(s) of {topic}" + ("" if raw else " (masked)"))
