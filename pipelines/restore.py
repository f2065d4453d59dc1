"""Rebuilding table state from ClickHouse when a Faust table lost its changelog.

The embedded broker keeps topics in memory: after ``govstream stack down`` / ``up`` every
changelog is empty while ClickHouse still holds what the worker wrote (on Kafka, a deleted or
recreated changelog topic does the same). A handling step of a report submitted before then
would find no work order and be dead-lettered ``unknown_report``. So before an agent applies a
batch, it asks ClickHouse — once per batch, only for the keys its table does not hold — and
puts the state it finds back into the table (which writes it to the new changelog).

Asking costs a query, so an agent asks only for partitions whose table lost its state:
:func:`partitions_with_rows` tells, for the partitions whose changelog is empty, which ones
ClickHouse holds rows of (``agents.common.LostState`` caches the answer per partition). Keys
go to ClickHouse in chunks of :data:`CHUNK` (a bound parameter over 4 KiB makes
clickhouse-connect send a multipart body).

This module is the I/O half (queries); the states are rebuilt by pure functions
(:func:`pipelines.workorders.state_from_row`, :func:`pipelines.forms.state_from_row`,
:func:`pipelines.alerts.state_from_row`). What a row cannot give back is listed there.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any, TypeVar, cast

from clickhouse_connect.driver.client import Client

from pipelines import alerts, forms, workorders
from pipelines.clickhouse import check_identifier

#: keys per restore query
CHUNK = 50

#: the table holding each agent table's rows, with the source partition of each row
SOURCE_TABLE = {
    "work-orders": "reports",
    "form-latest": "form_submissions",
    "alert-state": "alerts",
}


def partitions_with_rows(
    client: Client, database: str, table: str, partitions: Iterable[int]
) -> set[int]:
    """Which of ``partitions`` (of the source topic) ``database.table`` holds rows of."""
    wanted = sorted(set(partitions))
    if not wanted:
        return set()
    db, name = check_identifier(database), check_identifier(table)
    found = client.query(
        f"SELECT DISTINCT source_partition FROM {db}.{name} "
        "WHERE source_partition IN {p:Array(UInt32)}",
        {"p": wanted},
    )
    return {int(row[0]) for row in found.result_rows}


Query = TypeVar("Query", bound=Callable[..., dict[Any, Any]])


def _chunked(query: Query) -> Query:
    """Run ``query(client, database, keys, *args)`` on the sorted distinct keys :data:`CHUNK`
    at a time and merge what each call found (no call for no keys)."""

    @functools.wraps(query)
    def run(client: Client, database: str, keys: Iterable[Any], *args: Any) -> dict[Any, Any]:
        items, found = sorted(set(keys)), {}
        for start in range(0, len(items), CHUNK):
            found.update(query(client, database, items[start : start + CHUNK], *args))
        return found

    return cast(Query, run)


@_chunked
def work_orders(client: Client, database: str, ids: list[str]) -> dict[str, Any]:
    """report_id → the order's state rebuilt from gov.work_orders (only ids found there)."""
    db = check_identifier(database)
    columns = ", ".join(workorders.ORDER_COLUMNS)
    found = client.query(
        f"SELECT {columns} FROM {db}.work_orders FINAL WHERE report_id IN {{ids:Array(String)}}",
        {"ids": ids},
    )
    rows = [dict(zip(found.column_names, row, strict=True)) for row in found.result_rows]
    if not rows:
        return {}
    have = [str(r["report_id"]) for r in rows]
    submits = client.query(
        f"SELECT report_id, event_id, source_partition FROM {db}.reports FINAL "
        "WHERE report_id IN {ids:Array(String)}",
        {"ids": have},
    ).result_rows
    steps = client.query(
        f"SELECT report_id, groupArray(event_id) FROM {db}.work_order_events FINAL "
        "WHERE report_id IN {ids:Array(String)} GROUP BY report_id",
        {"ids": have},
    ).result_rows
    submit_of = {str(rid): (str(eid), int(part)) for rid, eid, part in submits}
    steps_of = {str(rid): [str(e) for e in events] for rid, events in steps}
    states = {}
    for row in rows:
        rid = str(row["report_id"])
        submit_event, partition = submit_of.get(rid, ("", 0))
        events = [e for e in (submit_event, *steps_of.get(rid, [])) if e]
        states[rid] = workorders.state_from_row(row, events, partition)
    return states


def open_order_ids(client: Client, database: str, partitions: Iterable[int]) -> list[str]:
    """report_id of every work order in gov.work_orders that is not closed or cancelled and
    whose SUBMIT came on one of ``partitions`` of the report topic."""
    db = check_identifier(database)
    found = client.query(
        f"SELECT report_id FROM {db}.work_orders FINAL WHERE state NOT IN {{e:Array(String)}} "
        f"AND report_id IN (SELECT report_id FROM {db}.reports FINAL "
        "WHERE source_partition IN {p:Array(UInt32)})",
        {"e": sorted(workorders.TERMINAL), "p": sorted(partitions)},
    )
    return [str(row[0]) for row in found.result_rows]


def _rows(client: Client, sql: str, parameters: dict[str, Any]) -> list[dict[str, Any]]:
    found = client.query(sql, parameters)
    return [dict(zip(found.column_names, row, strict=True)) for row in found.result_rows]


@_chunked
def alert_states(client: Client, database: str, ids: list[str]) -> dict[str, Any]:
    """root_id → the warning's state rebuilt from gov.alerts (only ids found there)."""
    db = check_identifier(database)
    rows = _rows(
        client,
        f"SELECT {', '.join(alerts.ALERT_COLUMNS)} FROM {db}.alerts FINAL "
        "WHERE root_id IN {ids:Array(String)}",
        {"ids": ids},
    )
    return {str(r["root_id"]): alerts.state_from_row(r) for r in rows}


@_chunked
def form_states(
    client: Client, database: str, pairs: list[tuple[str, str]]
) -> dict[tuple[str, str], Any]:
    """(form_id, respondent_key) → the respondent's state rebuilt from gov.form_submissions,
    with their open derived alert from gov.alerts (only keys found there)."""
    db = check_identifier(database)
    rows = _rows(
        client,
        f"SELECT {', '.join(forms.FORM_COLUMNS)} FROM {db}.form_submissions FINAL "
        "WHERE (form_id, respondent_key) IN {pairs:Array(Tuple(String, String))}",
        {"pairs": pairs},
    )
    if not rows:
        return {}
    prefixes = [forms.alert_root(str(r["form_id"]), str(r["respondent_key"])) for r in rows]
    open_alerts = _rows(
        client,
        f"SELECT {', '.join(alerts.ALERT_COLUMNS)} FROM {db}.alerts FINAL "
        "WHERE source = 'form' AND status = 'active' "
        "AND arrayExists(p -> startsWith(root_id, p), {prefixes:Array(String)})",
        {"prefixes": prefixes},
    )
    alert_of = {}
    for row in open_alerts:
        state = alerts.state_from_row(row)
        for prefix in prefixes:
            if state["root_id"].startswith(prefix):
                alert_of[prefix] = state
    return {
        (str(r["form_id"]), str(r["respondent_key"])): forms.state_from_row(
            r, alert_of.get(forms.alert_root(str(r["form_id"]), str(r["respondent_key"])))
        )
        for r in rows
    }


def any_reports(client: Client, database: str) -> bool:
    """Whether gov.reports holds any work order (the 并单 index's table keys are (category,
    community), not a source partition: an empty changelog with reports in ClickHouse means
    the index was lost)."""
    db = check_identifier(database)
    return bool(client.query(f"SELECT count() > 0 FROM {db}.reports").result_rows[0][0])


@_chunked
def open_orders(
    client: Client,
    database: str,
    pairs: list[tuple[str, str]],
    since_ms: int,
    until_ms: int,
) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """(category_code, region_code) → the first orders (not duplicates) of that place that
    occurred between ``since_ms`` and ``until_ms`` (epoch ms), in the shape of the 并单 index
    (:func:`pipelines.reports.remember`: report_id, occurred_ms, lat, lon, address), oldest
    first."""
    db = check_identifier(database)
    rows = _rows(
        client,
        "SELECT category_code, region_code, report_id, toUnixTimestamp64Milli(occurred_at) AS ms, "
        f"lat, lon, address FROM {db}.reports FINAL "
        "WHERE duplicate_of = '' "
        "AND (category_code, region_code) IN {p:Array(Tuple(String, String))} "
        "AND toUnixTimestamp64Milli(occurred_at) BETWEEN {a:Int64} AND {b:Int64} ORDER BY ms",
        {"p": pairs, "a": since_ms, "b": until_ms},
    )
    found: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        found.setdefault((str(r["category_code"]), str(r["region_code"])), []).append(
            {"report_id": str(r["report_id"]), "occurred_ms": int(r["ms"]), "lat": r["lat"],
             "lon": r["lon"], "address": str(r["address"])}
        )  # fmt: skip
    return found


@_chunked
def complaints(
    client: Client,
    database: str,
    persons: list[str],
    since_ms: int,
    until_ms: int,
) -> dict[str, list[dict[str, Any]]]:
    """person (salted reporter hash) → the complaints of that person that occurred between
    ``since_ms`` and ``until_ms`` (epoch ms), in the shape of the repeat index
    (:func:`pipelines.workorders.complaint_of`: report_id, person, category, occurred_ms),
    oldest first. Anonymous reports and :data:`pipelines.workorders.NOT_REPEATED` categories
    are not in the index, so they are not put back either."""
    db = check_identifier(database)
    rows = _rows(
        client,
        "SELECT report_id, reporter_hash, category_code, "
        f"toUnixTimestamp64Milli(occurred_at) AS ms FROM {db}.reports FINAL "
        "WHERE reporter_hash IN {p:Array(String)} AND reporter_hash != '' "
        "AND category_code NOT IN {skip:Array(String)} "
        "AND toUnixTimestamp64Milli(occurred_at) BETWEEN {a:Int64} AND {b:Int64} "
        "ORDER BY ms, report_id",
        {"p": persons, "skip": sorted(workorders.NOT_REPEATED), "a": since_ms, "b": until_ms},
    )
    found: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        found.setdefault(str(r["reporter_hash"]), []).append(
            {"report_id": str(r["report_id"]), "person": str(r["reporter_hash"]),
             "category": str(r["category_code"]), "occurred_ms": int(r["ms"])}
        )  # fmt: skip
    return found
