"""`govstream dead-letters`: the bad events in gov.dead_letters, newest first.

Filters: ``--topic`` (repeatable), ``--reason`` (repeatable), ``--since``/``--until`` (an ISO
time, UTC unless it says otherwise, or an age such as ``30m``, ``2h``, ``7d``), ``--key`` (a
substring of the message key as shown), ``--limit``. A table for people, ``--json`` for
machines.

Masked by default: the query runs as the analyst (``GOVSTREAM_CLICKHOUSE_ANALYST_USER``) and
shows what gov.dead_letters holds (masked key, masked record, scrubbed message and headers).
``--raw`` runs as the writer (``GOVSTREAM_CLICKHOUSE_USER``) and adds the original key, value
(base64) and headers from gov.dead_letter_payloads, which only the writer may read
(:mod:`pipelines.access`); without the writer's password ClickHouse refuses and the command
exits 1. ``--key`` then matches the original key.
"""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import typer

from pipelines import deadletter
from pipelines.clickhouse import check_identifier, get_client
from pipelines.errors import ConfigError, GovstreamError
from pipelines.output import print_json, print_table
from pipelines.settings import Settings, get_settings

_AGE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhd])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}
TABLE_COLUMNS = ["dead at", "source", "reason", "key", "message", "value"]


class DeadLettersError(GovstreamError):
    """ClickHouse did not answer the query (down, or the user may not read the table)."""


def parse_time(value: str, option: str, now: datetime) -> datetime:
    """``value`` as an aware UTC time: an age (``90s``, ``30m``, ``2h``, ``7d``: that long
    before ``now``) or an ISO 8601 time (naive means UTC). Raises ConfigError otherwise."""
    age = _AGE.match(value.strip().lower())
    if age:
        return now - timedelta(seconds=float(age[1]) * _UNIT_S[age[2]])
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ConfigError(
            f"{option} {value!r} is neither an ISO time nor an age such as 30m, 2h or 7d"
        ) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def build_query(
    database: str,
    *,
    raw: bool,
    topics: list[str],
    reasons: list[str],
    since: datetime | None,
    until: datetime | None,
    key: str | None,
    limit: int,
) -> tuple[str, dict[str, Any]]:
    """(SQL, bound parameters) selecting the dead letters, newest first; with ``raw`` joined
    to their payloads by identity (topic, partition, offset, fingerprint)."""
    db = check_identifier(database)
    where: list[str] = []
    params: dict[str, Any] = {}
    if topics:
        where.append("d.source_topic IN {topics:Array(String)}")
        params["topics"] = topics
    if reasons:
        where.append("d.reason IN {reasons:Array(String)}")
        params["reasons"] = reasons
    if since is not None:
        where.append("d.dead_at >= {since:DateTime64(3, 'UTC')}")
        params["since"] = since
    if until is not None:
        where.append("d.dead_at < {until:DateTime64(3, 'UTC')}")
        params["until"] = until
    if key:
        shown = "p.key" if raw else "d.key"
        where.append(f"position(base64Decode({shown}), {{key:String}}) > 0")
        params["key"] = key
    columns = ", ".join(f"d.{c}" for c in deadletter.COLUMNS)
    source = f"{db}.dead_letters AS d FINAL"
    if raw:
        columns += ", p.key AS raw_key, p.value AS raw_value, p.headers AS raw_headers"
        source += (
            f" LEFT JOIN (SELECT * FROM {db}.{deadletter.PAYLOAD_TABLE} FINAL) AS p"
            " ON p.source_topic = d.source_topic AND p.source_partition = d.source_partition"
            " AND p.source_offset = d.source_offset AND p.fingerprint = d.fingerprint"
        )
    sql = f"SELECT {columns} FROM {source}"
    if where:
        sql += " WHERE " + " AND ".join(where)
    order = "d.dead_at DESC, d.source_topic, d.source_partition, d.source_offset"
    sql += f" ORDER BY {order} LIMIT {limit}"
    return sql, params


def _text(b64: str) -> str:
    """A base64 column as text (UTF-8, undecodable bytes replaced)."""
    return base64.b64decode(b64 or "").decode("utf-8", "replace")


def to_record(row: dict[str, Any], raw: bool) -> dict[str, Any]:
    """One dead letter for --json: keys shown as text; with ``raw`` an ``original`` object
    with the key as text, the value as base64 and the header values as text."""
    out = {
        "source_topic": row["source_topic"],
        "source_partition": row["source_partition"],
        "source_offset": row["source_offset"],
        "reason": row["reason"],
        "message": row["message"],
        "event_id": row["event_id"],
        "key": _text(row["key"]),
        "value": row["value"],
        "value_size": row["value_size"],
        "headers": dict(row["headers"]),
        "received_at": row["received_at"].isoformat(),
        "dead_at": row["dead_at"].isoformat(),
        "fingerprint": row["fingerprint"],
    }
    if raw:
        out["original"] = {
            "key": _text(row["raw_key"]),
            "value_base64": row["raw_value"],
            "headers": {k: _text(v) for k, v in dict(row["raw_headers"] or {}).items()},
        }
    return out


def _short(text: str, width: int = 60) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 1] + "…"


def table_row(record: dict[str, Any]) -> dict[str, str]:
    original = record.get("original")
    value = record["value"] or f"({record['value_size']} bytes, not decoded)"
    if original is not None:
        value = _text(original["value_base64"]) if original["value_base64"] else value
    return {
        "dead at": record["dead_at"][:23],
        "source": f"{record['source_topic']}[{record['source_partition']}]@"
        f"{record['source_offset']}",
        "reason": record["reason"],
        "key": _short(original["key"] if original else record["key"], 40),
        "message": _short(record["message"]),
        "value": _short(value),
    }


def fetch(settings: Settings, sql: str, params: dict[str, Any], raw: bool) -> list[dict]:
    try:
        client = get_client(settings, analyst=not raw, database=settings.clickhouse_database)
        result = client.query(sql, parameters=params)
    except Exception as exc:  # connection refused, authentication, access denied
        who = "the writer" if raw else "the analyst"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DeadLettersError(f"cannot read the dead letters as {who}: {first}") from exc
    return [dict(zip(result.column_names, row, strict=True)) for row in result.result_rows]


def dead_letters(
    topic: list[str] = typer.Option(  # noqa: B008 - typer's declaration style
        [], "--topic", help="Only this source topic (repeatable)."
    ),
    reason: list[str] = typer.Option(  # noqa: B008
        [], "--reason", help="Only this reason code (repeatable)."
    ),
    since: str | None = typer.Option(None, help="From this time: ISO 8601 or an age (2h, 7d)."),
    until: str | None = typer.Option(None, help="Before this time: ISO 8601 or an age."),
    key: str | None = typer.Option(None, help="Message keys containing this text."),
    limit: int = typer.Option(50, help="At most this many dead letters (newest first)."),
    raw: bool = typer.Option(
        False, "--raw", help="Also the original key, value and headers (the writer's rights)."
    ),
    as_json: bool = typer.Option(False, "--json", help="JSON for scripts."),
) -> None:
    """Bad events with their reason codes, masked unless --raw (writer only)."""
    if limit < 1:
        raise ConfigError(f"--limit must be at least 1 (got {limit})")
    now = datetime.now(UTC)
    start = parse_time(since, "--since", now) if since else None
    end = parse_time(until, "--until", now) if until else None
    if start and end and start >= end:
        raise ConfigError("--since must be before --until")
    settings = get_settings()
    sql, params = build_query(
        settings.clickhouse_database, raw=raw, topics=topic, reasons=reason, since=start,
        until=end, key=key, limit=limit,
    )  # fmt: skip
    records = [to_record(row, raw) for row in fetch(settings, sql, params, raw)]
    if as_json:
        print_json({"raw": raw, "dead_letters": records})
        return
    print_table(
        (table_row(r) for r in records),
        TABLE_COLUMNS,
        title=f"{len(records)} dead letter(s){' with original payloads' if raw else ''}",
    )
