"""Report agents: `report` → work orders (gov.reports), steps (gov.work_order_events) and
dead letters; 并单 merging on a table keyed by category and community.

Two hops so that merging is correct with any number of workers: the first agent validates,
classifies, routes and masks each report and sends the work order to `report-routed`, keyed by
(category, community); the second owns that key's table partition, links duplicates and
inserts the rows. Offsets of either topic are acknowledged only after the rows they produced
are in ClickHouse (and the forwarded messages are acknowledged by Kafka).

Work-order supervision (督办, ``pipelines.workorders``): the first agent also keeps each order's
lifecycle state in the table ``work-orders`` keyed by report_id (the report topic's key, so
the table is co-partitioned with it) and writes it to gov.work_orders; invalid steps are
dead-lettered. A timer escalates overdue orders of this worker's active partitions and
writes the escalation to ClickHouse before it persists it in the table, so a restart neither
loses nor repeats it.

Repeat complaints (重复诉求, ``workorders.find_repeat``): the report topic is keyed by report_id,
so no report partition holds all of one person's reports. The first agent therefore sends
what the rule needs of each named, categorised SUBMIT (``workorders.complaint_of``: report id,
salted reporter hash, category, time; no personal data) to ``<app id>-person-complaints``,
keyed by the reporter hash. ``find_repeats`` owns that key's partition of the table
``person-complaints`` (person → their complaints within the window), so every report of one
person, from any channel, meets the same index whatever the number of workers. A repeat goes
back to ``<app id>-repeat-of``, keyed by report_id: co-partitioned with ``report`` (same key,
same murmur2 partitioner, same partition count), so ``mark_repeats`` runs where the order's
``work-orders`` state lives and sets ``repeat_of`` on it (a new revision in gov.work_orders).
The order is marked a moment after it is opened, never before. Both hops are idempotent (a
replayed complaint finds the same earlier report; a replayed mark changes nothing), and a lost
changelog is put back from gov.reports / gov.work_orders like the other tables
(pipelines/restore.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from typing import Any, cast

from faust.types import EventT, StreamT

from agents.app import app, settings
from agents.common import (
    DEAD_LETTER_TABLES,
    LostState,
    Source,
    batches,
    dead_letter,
    decode,
    failed,
    put_back,
    safe_mask,
    saw,
    with_clickhouse,
    write,
)
from pipelines import alerts, contracts, metrics, reports, restore, topics, workorders
from pipelines.clickhouse import get_client
from pipelines.codec import AvroDecoder, registry_fetcher
from pipelines.contracts import check_key
from pipelines.errors import ValidationError
from pipelines.shapes import RoutedReport, Step, WorkOrder
from pipelines.sink import Batch, ClickHouseSink, TableSpec

log = logging.getLogger("govstream.agents.reports")

report_topic = app.topic(contracts.REPORT, key_serializer="raw", value_serializer="raw")
routed_topic = app.topic(
    "report-routed",
    key_serializer="raw",
    value_serializer="json",
    internal=True,  # Faust creates it with the app's partition count
    partitions=settings.topic_partitions,
)

open_orders = app.Table(
    "open-orders",
    default=list,
    key_type=bytes,  # Faust derives changelog serializers from types: raw keys, JSON values
    use_partitioner=True,  # key → partition exactly as report-routed is keyed
)

work_orders = app.Table(
    "work-orders",
    default=None,
    key_type=bytes,  # report_id as sent: raw keys, JSON values (see open-orders)
    use_partitioner=True,  # murmur2 of the key: the report topic's partition; the timer writes too
)
_state_lock = asyncio.Lock()  # the agents and the SLA timer never interleave on one order

person_topic = app.topic(
    topics.app_topic(settings, topics.PERSON_COMPLAINTS),  # under the app's prefix
    key_serializer="raw",
    value_serializer="json",
    internal=True,
    partitions=settings.topic_partitions,
)
repeat_topic = app.topic(
    topics.app_topic(settings, topics.REPEAT_OF),
    key_serializer="raw",
    value_serializer="json",
    internal=True,
    partitions=settings.topic_partitions,  # as the report topic and work-orders: co-partitioned
)
person_complaints = app.Table(
    "person-complaints",
    default=list,
    key_type=bytes,  # the salted reporter hash: raw keys, JSON values (see open-orders)
    use_partitioner=True,  # key → partition exactly as person_topic is keyed
)
TOLERANCE_MS = settings.step_tolerance_s * 1000
RULES = workorders.SupervisionRules.of(settings)  # the 督办 thresholds (settings supervision_*)

sink = ClickHouseSink(
    lambda: get_client(settings, database=settings.clickhouse_database),
    settings.clickhouse_database,
    [
        TableSpec("reports", reports.REPORT_COLUMNS),
        TableSpec("work_order_events", reports.STEP_COLUMNS),
        *DEAD_LETTER_TABLES,
        TableSpec("work_orders", workorders.ORDER_COLUMNS),
        TableSpec("alerts", alerts.ALERT_COLUMNS),
        TableSpec("alert_targets", alerts.TARGET_COLUMNS),
    ],
)
decoder = AvroDecoder(
    contracts.load_schema(contracts.REPORT), registry_fetcher(settings.registry_config())
)


async def _rejected(batch: Batch, sends: list[Any], rejected: Any, received: datetime) -> None:
    """Dead-letter buffered steps that will never apply, as their messages came."""
    for step, error in rejected:
        key, value = workorders.original_bytes(step)
        source = Source(contracts.REPORT, step["partition"], step["offset"], key, value)
        sends.append(await dead_letter("process_reports", error, source, batch, received, None))


def _submitted(
    record: dict[str, Any], key: bytes, order: RoutedReport, batch: Batch, source: Any
) -> None:
    """Open the work order of a SUBMIT (a replay of the same SUBMIT keeps the state)."""
    state = work_orders.get(key)
    if state is None:
        state = work_orders[key] = workorders.open_order(order)
    elif state["events"][0] != record["event_id"]:
        raise ValidationError(
            workorders.INVALID_TRANSITION, f"report {record['report_id']} was already submitted"
        )
    batch.add("work_orders", workorders.order_row(state), source=source)


def _stepped(key: bytes, step: Step, batch: Batch, source: Any) -> workorders.Outcome:
    """Fold a handling step into its order (raises ValidationError for an invalid one)."""
    outcome = workorders.apply(work_orders.get(key), step, tolerance_ms=TOLERANCE_MS, rules=RULES)
    if not outcome.duplicate:
        work_orders[key] = outcome.state
    batch.add("work_orders", workorders.order_row(outcome.state), source=source)
    for row in outcome.alert_rows:
        batch.add("alerts", row, source=source)
    for row in outcome.target_rows:
        batch.add("alert_targets", row, source=source)
    return outcome


@app.agent(report_topic)
async def process_reports(stream: StreamT) -> None:
    async for events in batches(stream):
        async with _state_lock:
            await _process(events)
        for event in events:
            await stream.ack(event)
        metrics.progressed("process_reports")


def _apply(record: dict[str, Any], message: Any, received: datetime, batch: Batch) -> Any:
    """Check one decoded report event and fold it into its work order: returns the routed
    work order of a SUBMIT, the outcome of a step (raises EventError for a bad one)."""
    key = check_key(contracts.REPORT, message.key, record)
    reports.validate(record, received)
    if record["action"] == "SUBMIT":
        order = reports.work_order(
            record, salt=settings.pii_salt, partition=message.partition,
            offset=message.offset, received_at=received,
            produced_at=datetime.fromtimestamp(message.timestamp, UTC),
        )  # fmt: skip
        _submitted(record, key, order, batch, message)
        return order
    step = workorders.step_of(
        record, partition=message.partition, offset=message.offset,
        received_at=received, key=message.key, value=message.value,
    )  # fmt: skip
    return _stepped(key, step, batch, message)


async def _failed_report(
    exc: Exception, message: Any, batch: Batch, received: datetime, record: dict[str, Any] | None
) -> Any:
    masked = safe_mask(lambda r: reports.masked_record(r, settings.pii_salt), record)
    return await failed("process_reports", exc, message, batch, received, masked)


_lost = LostState(work_orders, "reports")


async def _restore_missing(decoded: list[tuple[Any, dict[str, Any], datetime]]) -> None:
    """Put back from ClickHouse the work orders that steps of this batch refer to and the
    table does not hold (its changelog was lost: see pipelines/restore.py)."""
    submitted = {str(r.get("report_id")) for _, r, _ in decoded if r.get("action") == "SUBMIT"}
    lost = await _lost.lost({event.message.partition for event, _, _ in decoded})
    missing = {
        str(record["report_id"])
        for event, record, _ in decoded
        if event.message.partition in lost
        and record.get("action") != "SUBMIT"
        and str(record.get("report_id")) not in submitted
        and event.message.key == str(record.get("report_id")).encode()
        and work_orders.get(bytes(event.message.key)) is None
    }
    wanted = {report_id: report_id.encode() for report_id in sorted(missing)}
    await put_back(work_orders, wanted, restore.work_orders, "work orders")


async def _process(events: Any) -> None:
    batch, sends = Batch(), cast(list[Any], [])
    decoded: list[tuple[Any, dict[str, Any], datetime]] = []
    for event in events:
        message = event.message
        metrics.EVENTS_IN.labels("process_reports", message.topic).inc()  # metrics
        saw(batch, event)
        received = datetime.now(UTC)
        try:
            decoded.append((event, await decode(decoder, message), received))
        except Exception as exc:  # not a report at all: dead-lettered, the rest go on
            sends.append(await _failed_report(exc, message, batch, received, None))
    await _restore_missing(decoded)
    for event, record, received in decoded:
        message = event.message
        try:
            result = _apply(record, message, received, batch)
        except Exception as exc:  # one bad event never stops the stream
            sends.append(await _failed_report(exc, message, batch, received, record))
            continue
        if record["action"] == "SUBMIT":
            order = result
            dedupe = reports.dedupe_key(order["category"]["code"], order["region_code"])
            metrics.CLASSIFIED.labels(order["category"]["code"]).inc()  # metrics
            sends.append(await routed_topic.send(key=dedupe.encode(), value=order))
            complaint = workorders.complaint_of(order)
            if workorders.may_repeat(complaint):
                person = str(complaint["person"]).encode()
                sends.append(await person_topic.send(key=person, value=complaint))
        else:
            batch.add(
                "work_order_events",
                reports.step_row(
                    record, salt=settings.pii_salt, partition=message.partition,
                    offset=message.offset, received_at=received,
                ),
                source=message,
            )  # fmt: skip
            await _rejected(batch, sends, result.rejected, received)
    sends += await write("process_reports", sink, batch)
    metrics.record_written(  # metrics
        "process_reports", batch.rows, (e.message.timestamp for e in events)
    )
    for pending in sends:
        await pending


# the classifier, the division index and the masking patterns, built before the worker joins:
# the first batch of reports would otherwise stall ~2 s, and every event queued behind it
app.warm_up(reports.warm_up)


def _report_partitions() -> set[int]:
    return {tp.partition for tp in app.assignor.assigned_actives() if tp.topic == contracts.REPORT}


async def _restore_open_orders(mine: set[int]) -> None:
    """Put back the open work orders of this worker's partitions that gov.work_orders holds
    and the table lost (its changelog was lost, see pipelines/restore.py), so the SLA scan
    escalates them too, not only those a later step brought back."""
    db = settings.clickhouse_database
    mine = await _lost.lost(mine)
    if not mine:
        return
    ids = await with_clickhouse(
        lambda c: restore.open_order_ids(c, db, mine), "listing open work orders"
    )
    missing = [rid for rid in ids if work_orders.get(rid.encode()) is None]
    if not missing:
        return
    states = await with_clickhouse(
        lambda c: restore.work_orders(c, db, missing), "restoring open work orders"
    )
    async with _state_lock:
        restored = 0
        for report_id, state in states.items():
            if state["partition"] in mine and work_orders.get(report_id.encode()) is None:
                work_orders[report_id.encode()] = state
                restored += 1
    if restored:
        log.info("restored %d open work orders from ClickHouse for the SLA scan", restored)


#: Orders checked between two yields to the event loop in the SLA scan: the check of one order
#: takes ~5 µs in-process (``workorders.needs_attention`` on 2,960 simulated orders) and 9-13 µs
#: in a worker under load (8,270 orders in 72-104 ms), and the table keeps every order, so a
#: worker with 50,000 orders would otherwise stop its agents for about half a second at each
#: scan; a slice takes ~10-25 ms.
SCAN_CHUNK = 2_000


async def _due_orders(now_ms: int, mine: set[int]) -> list[bytes]:
    """Keys of this worker's orders that need attention at ``now_ms``, checked
    :data:`SCAN_CHUNK` at a time with the event loop free in between. It only reads (a snapshot
    of the table), so it runs without the state lock; the caller checks each again under it."""
    due: list[bytes] = []
    orders = list(work_orders.items())
    for start in range(0, len(orders), SCAN_CHUNK):
        for key, state in orders[start : start + SCAN_CHUNK]:
            if state is None or state["partition"] not in mine:
                continue  # a standby copy, or another worker's order
            if workorders.needs_attention(state, now_ms, RULES):  # most orders: not due
                due.append(bytes(key))
        await asyncio.sleep(0)
    return due


@app.timer(interval=settings.sla_check_interval_s)
async def supervise_sla() -> None:
    """Escalate the overdue orders of this worker's active partitions (once per breach) and
    drop buffered steps that waited past the tolerance; ClickHouse first, then the table."""
    recovery = cast(Any, app.tables).recovery

    def table_incomplete() -> bool:  # an escalation could be repeated
        return bool(app.rebalancing or app.in_recovery or not recovery.completed.is_set())

    if table_incomplete():
        return
    await _restore_open_orders(_report_partitions())
    started = time.perf_counter()
    due = await _due_orders(reports.to_ms(datetime.now(UTC)), _report_partitions())
    scanned = time.perf_counter()
    if not due:
        return
    async with _state_lock:
        if table_incomplete():  # a rebalance may have begun while the scan or the lock waited
            return
        now = datetime.now(UTC)  # after any step applied meanwhile: no time runs backwards
        now_ms, mine = reports.to_ms(now), _report_partitions()
        batch, sends, changed = Batch(), cast(list[Any], []), []
        for key in due:
            state = work_orders.get(key)  # as it is now: a step may have come since the scan
            if state is None or state["partition"] not in mine:
                continue
            if not workorders.needs_attention(state, now_ms, RULES):
                continue
            new, rejected = workorders.expire(state, now, tolerance_ms=TOLERANCE_MS)
            new, escalation, alert_rows, target_rows = workorders.escalate(new, now, RULES)
            if int(new["revision"]) == int(state["revision"]):
                continue  # nothing expired, escalated or warned of (督办)
            batch.saw(f"sla:{new['report_id']}", int(new["breach"]), int(new["revision"]))
            batch.add("work_orders", workorders.order_row(new))
            for row in alert_rows:
                batch.add("alerts", row)
            for row in target_rows:
                batch.add("alert_targets", row)
            await _rejected(batch, sends, rejected, now)
            changed.append((key, new, escalation))
        if changed:
            sends += await write("supervise_sla", sink, batch)
        for key, new, escalation in changed:
            work_orders[key] = new
            if escalation is not None:
                log.info(
                    "SLA breach %d of %s: %s → %s", escalation.breach, escalation.report_id,
                    escalation.from_level, escalation.to_level,
                )  # fmt: skip
        locked = time.perf_counter()
    # Waiting for the dead-letter copies and the changelog needs no lock: what the scan queued
    # is in the producer's buffer, in order, whatever runs meanwhile (under the lock the wait
    # stopped the report agent for another 55-145 ms a scan, measured in a soak at 180 events/s)
    for pending in sends:
        await pending
    if changed:
        await app.producer.flush()  # the escalations are in the changelog before the next scan
    log.debug(
        "SLA scan: %d orders due of %d, %.0f ms checking, %.0f ms with the state lock "
        "(waiting for it included)", len(due), len(work_orders), (scanned - started) * 1000,
        (locked - scanned) * 1000,
    )  # fmt: skip


_index_lost = LostState(
    open_orders, "reports", held=lambda c, db, ps: set(ps) if restore.any_reports(c, db) else set()
)
_index_checked: set[bytes] = set()  # 并单 keys already looked up in ClickHouse


async def _restore_index(events: Any) -> None:
    """Put back the 并单 index of the places this batch reports on, when the index's changelog
    was lost (pipelines/restore.py): the first orders that occurred within the window."""
    lost = await _index_lost.lost({event.message.partition for event in events})
    wanted: dict[tuple[str, str], bytes] = {}
    times = []
    for event in events:
        key = bytes(cast(bytes, event.key))
        if event.message.partition not in lost or key in _index_checked or key in open_orders:
            continue
        order = cast(dict[str, Any], event.value)
        wanted[(str(order["category"]["code"]), str(order["region_code"]))] = key
        times.append(int(order["occurred_ms"]))
    window_ms = int(settings.duplicate_window_s * 1000)
    await _put_back_around(
        open_orders, wanted, times, window_ms, window_ms, restore.open_orders, "并单 index entries"
    )
    _index_checked.update(wanted.values())


async def _put_back_around(
    table: Any,
    wanted: dict[Any, bytes],
    times: list[int],
    before_ms: int,
    after_ms: int,
    query: Any,
    what: str,
) -> None:
    """put_back of an index whose entries are kept for a time window: ``query(client, db,
    keys, since_ms, until_ms)`` looks from ``before_ms`` before the earliest of the batch's
    event ``times`` to ``after_ms`` after the latest."""
    if not wanted:
        return
    since, until = min(times) - before_ms, max(times) + after_ms
    await put_back(table, wanted, lambda c, db, keys: query(c, db, keys, since, until), what)


def _link(event: EventT) -> list[Any]:
    """Link one routed work order to the first open order at the same place, or open it."""
    order = cast(dict[str, Any], event.value)
    key = bytes(cast(bytes, event.key))  # bytes, as the raw changelog gives them back on recovery
    opened = open_orders[key]
    duplicate_of = reports.find_duplicate(
        opened, order, settings.duplicate_window_s, settings.duplicate_distance_m
    )
    if duplicate_of is None:
        open_orders[key] = reports.remember(opened, order, settings.duplicate_window_s)
    return reports.report_row(order, duplicate_of)


@app.agent(routed_topic)
async def link_work_orders(stream: StreamT) -> None:
    async for events in batches(stream):
        batch = Batch()
        await _restore_index(events)
        for event in events:
            saw(batch, event)
            batch.add("reports", _link(event), source=event.message)
        sends = await write("link_work_orders", sink, batch)
        metrics.EVENTS_IN.labels("link_work_orders", routed_topic.get_topic_name()).inc(  # metrics
            len(events)
        )
        metrics.record_written(  # metrics
            "link_work_orders", batch.rows, (e.message.timestamp for e in events)
        )
        for pending in sends:
            await pending
        for event in events:
            await stream.ack(event)
        metrics.progressed("link_work_orders")


# --- repeat complaints (重复诉求): see the module docstring ----------------------------------

_complaints_lost = LostState(
    person_complaints,
    "reports",
    held=lambda c, db, ps: set(ps) if restore.any_reports(c, db) else set(),
)
_complaints_checked: set[bytes] = set()  # persons already looked up in ClickHouse
REPEAT_WINDOW_MS = int(settings.repeat_window_days * workorders.DAY_MS)


async def _restore_complaints(events: Any) -> None:
    """Put back the complaints of the persons this batch names, when the index's changelog
    was lost (pipelines/restore.py): those that occurred within the window before."""
    lost = await _complaints_lost.lost({event.message.partition for event in events})
    wanted: dict[str, bytes] = {}
    times = []
    for event in events:
        key = bytes(cast(bytes, event.key))
        if event.message.partition not in lost or key in _complaints_checked:
            continue
        if key in person_complaints:  # already known to this worker
            continue
        wanted[key.decode()] = key
        times.append(int(cast(dict[str, Any], event.value)["occurred_ms"]))
    await _put_back_around(
        person_complaints, wanted, times, REPEAT_WINDOW_MS, 0, restore.complaints,
        "repeat-index persons",
    )  # fmt: skip
    _complaints_checked.update(wanted.values())


async def _acknowledge(stream: StreamT, agent: str, events: Any, sends: list[Any]) -> None:
    """Count a batch in, wait for the messages it sent, then acknowledge its offsets."""
    if events:
        metrics.EVENTS_IN.labels(agent, events[0].message.topic).inc(len(events))  # metrics
    for pending in sends:
        await pending
    for event in events:
        await stream.ack(event)
    metrics.progressed(agent)


@app.agent(person_topic)
async def find_repeats(stream: StreamT) -> None:
    """Each complaint against the earlier ones of its person (the table partition this
    worker owns); a repeat is sent to the order's partition. Writes nothing to ClickHouse."""
    async for events in batches(stream):
        await _restore_complaints(events)
        sends = []
        for event in events:
            key = bytes(cast(bytes, event.key))
            complaint = cast(dict[str, Any], event.value)
            earlier = person_complaints[key]
            repeat_of = workorders.find_repeat(earlier, complaint, settings.repeat_window_days)
            person_complaints[key] = workorders.remember_complaint(
                earlier, complaint, settings.repeat_window_days
            )
            if repeat_of is not None:
                mark = {"report_id": complaint["report_id"], "repeat_of": repeat_of}
                report_key = str(complaint["report_id"]).encode()
                sends.append(await repeat_topic.send(key=report_key, value=mark))
        await _acknowledge(stream, "find_repeats", events, sends)


async def _mark(events: Any) -> list[Any]:
    """Set repeat_of on the orders of this batch's marks: ClickHouse first, then the table."""
    lost = await _lost.lost({event.message.partition for event in events})
    wanted = {
        bytes(cast(bytes, event.key)).decode(): bytes(cast(bytes, event.key))
        for event in events
        if event.message.partition in lost and work_orders.get(bytes(event.key)) is None
    }
    await put_back(work_orders, wanted, restore.work_orders, "work orders")
    batch, changed = Batch(), cast(dict[bytes, WorkOrder], {})
    now_ms = reports.to_ms(datetime.now(UTC))
    for event in events:
        saw(batch, event)
        key, mark = bytes(cast(bytes, event.key)), cast(dict[str, Any], event.value)
        state = changed.get(key) or work_orders.get(key)
        if state is None:  # cannot happen unless its state was lost and never written
            log.warning("repeat mark for unknown work order %s dropped", mark.get("report_id"))
            continue
        new = workorders.marked_repeat(state, str(mark.get("repeat_of") or ""), now_ms)
        if new is None:
            continue  # a replayed mark, or the order already names what it repeats
        changed[key] = new
        batch.add("work_orders", workorders.order_row(new), source=event.message)
    sends = await write("mark_repeats", sink, batch)
    for key, new in changed.items():
        work_orders[key] = new
    return sends


@app.agent(repeat_topic)
async def mark_repeats(stream: StreamT) -> None:
    async for events in batches(stream):
        async with _state_lock:
            sends = await _mark(events)
        await _acknowledge(stream, "mark_repeats", events, sends)
