"""Rebuilding table state from ClickHouse when a Faust table lost its changelog.

The embedded broker keeps topics in memory: after ``govstream stack down`` / ``up`` every
changelog is empty while ClickHouse still holds what the worker wrote (on Kafka, a deleted or
recreated changelog topic does the same). A handling step of a report submitted before then
would find no work order and be dead-lettered ``unknown_report``. So before an agent applies a
batch, it asks ClickHouse — once per batch, only for the keys its table does not hold — and
puts the state it finds back into the table (which writes it to the new changelog).

This module is the I/O half (queries); the states are rebuilt by pure functions
(:func:`pipelines.workorders.state_from_row`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from clickhouse_connect.driver.client import Client

from pipelines import workorders
from pipelines.clickhouse import check_identifier


def work_orders(client: Client, database: str, report_ids: Iterable[str]) -> dict[str, Any]:
    """report_id → the order's state rebuilt from gov.work_orders (only ids found there)."""
    ids = sorted(set(report_ids))
    if not ids:
        return {}
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
