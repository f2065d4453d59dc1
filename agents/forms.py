"""Form agent: `form-submission` → gov.form_submissions (latest per respondent), derived alerts
(gov.alerts / gov.alert_targets, source ``form``) and dead letters.

The topic is keyed by ``form_id:respondent`` (see CONTRACT.md), so a respondent's submissions
arrive on one partition, in order, and the ``form-latest`` table (co-partitioned with the topic)
holds their state locally: a resubmission replaces, a retry or replay changes nothing. Offsets
are acknowledged only after the rows are in ClickHouse. On startup the worker fills gov.roster
(registered population, the denominator of the completion views) from the division data.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Any

from faust.types import EventT, StreamT

from agents.app import app, settings
from agents.common import DEAD_LETTER_TABLES, LostState, consume, put_back
from pipelines import alerts, contracts, forms, restore, roster
from pipelines.clickhouse import get_client
from pipelines.codec import AvroDecoder, registry_fetcher
from pipelines.sink import Batch, ClickHouseSink, TableSpec

log = logging.getLogger("govstream.agents.forms")

form_topic = app.topic(contracts.FORM_SUBMISSION, key_serializer="raw", value_serializer="raw")

latest = app.Table(
    "form-latest",
    default=None,
    # Faust derives the changelog serializers from the types: raw keys, JSON values. (A
    # Schema(key_serializer="raw") wrote raw keys but recovery read them back as JSON, so a
    # restarted worker never finished recovery once the table held one key.)
    key_type=bytes,
    # batches are taken with noack_take, outside per-event iteration: the changelog partition
    # comes from the key, which is the message key, so it is the source event's partition
    use_partitioner=True,
)

sink = ClickHouseSink(
    lambda: get_client(settings, database=settings.clickhouse_database),
    settings.clickhouse_database,
    [
        TableSpec("form_submissions", forms.FORM_COLUMNS),
        TableSpec("alerts", alerts.ALERT_COLUMNS),
        TableSpec("alert_targets", alerts.TARGET_COLUMNS),
        *DEAD_LETTER_TABLES,
    ],
)


decoder = AvroDecoder(
    contracts.load_schema(contracts.FORM_SUBMISSION), registry_fetcher(settings.registry_config())
)


def _process(record: dict[str, Any], event: EventT, batch: Batch, received: datetime) -> None:
    """Check one submission (raises EventError) and fold it into its respondent's state and
    the batch's rows."""
    checked = forms.validate(record, received)
    message = event.message
    entry = forms.submission(
        record, checked, salt=settings.pii_salt, partition=message.partition,
        offset=message.offset, received_at=received,
    )  # fmt: skip
    key = bytes(message.key or b"")  # the contract's key: agents.common.check_key
    state, outcome = forms.merge(latest.get(key), entry)
    state, alert_rows, target_rows = forms.follow_up(
        state, received_at=received, partition=message.partition, offset=message.offset
    )
    latest[key] = state
    batch.add("form_submissions", forms.form_row(state), source=message)
    for row in alert_rows:
        batch.add("alerts", row, source=message)
    for row in target_rows:
        batch.add("alert_targets", row, source=message)
    if outcome == "duplicate":
        log.debug("submission %s seen before", record["submission_id"])


_lost = LostState(latest, "form_submissions")


async def _restore(decoded: list[tuple[EventT, dict[str, Any]]]) -> None:
    """Put back from ClickHouse the respondents' states this batch needs and the table lost
    (its changelog was lost, see pipelines/restore.py): without it a resubmission would
    start again at revision 1 and lose to the older row in gov.form_submissions."""
    lost = await _lost.lost({event.message.partition for event, _ in decoded})
    wanted: dict[tuple[str, str], bytes] = {}
    for event, record in decoded:
        key = event.message.key
        if event.message.partition not in lost or not key or latest.get(bytes(key)) is not None:
            continue
        respondent = forms.respondent_key(record, settings.pii_salt)
        if not respondent.startswith("anon-"):
            wanted[(str(record.get("form_id")), respondent)] = bytes(key)
    await put_back(latest, wanted, restore.form_states, "respondents' form states")


@app.agent(form_topic)
async def process_forms(stream: StreamT) -> None:
    await consume(
        stream, "process_forms", decoder, sink, _process,
        lambda record: forms.masked_record(record, settings.pii_salt), _restore,
    )  # fmt: skip


def _load_roster_blocking() -> int:
    client = get_client(settings, database=settings.clickhouse_database)
    try:
        return roster.load_roster(client, settings.clickhouse_database)
    finally:
        client.close()


@app.task
async def load_roster() -> None:
    """Fill gov.roster on startup (idempotent), retrying while ClickHouse is unreachable."""
    delay = 0.5
    while True:
        try:
            loaded = await asyncio.to_thread(_load_roster_blocking)
        except Exception as exc:  # ClickHouse down or not migrated yet: wait, never crash
            log.warning("roster not loaded (%s); retrying in %.1f s", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)
            continue
        log.info("roster: %d divisions loaded", loaded)
        return
