"""Per-stage costs, measured in-process with ``time.perf_counter`` over the benchmark's events,
and the insert rate of clickhouse-connect into the pipeline's own tables."""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from unittest import mock

from benchmarks import report
from pipelines import clickhouse, contracts, forms, reports
from pipelines.classify import classify
from pipelines.codec import AvroDecoder, registry_fetcher
from pipelines.errors import EventError
from pipelines.settings import Settings

DECODE = "decode (Avro, per decoded event)"
UNDECODABLE = "decode failure (per undecodable event)"  # its schema id remembered as unknown
VALIDATE = "validate (per decoded event)"
CLASSIFY = "classify (per SUBMIT)"
ENRICH = "enrich + route + mask (per SUBMIT)"
HOP = "routed hop JSON encode + decode (per SUBMIT)"
ROW = "row build (per row)"
TOTAL = report.REPORT_TOTAL

FORM_DECODE = "decode (Avro, per decoded submission)"
FORM_VALIDATE = "validate answers (per decoded submission)"
FORM_ENTRY = "mask + enrich (per valid submission)"
FORM_MERGE = "merge + derived alert (per valid submission)"
FORM_ROW = "row build (per valid submission)"
FORM_TOTAL = report.FORM_TOTAL


def stage_costs(
    settings: Settings, values: Sequence[bytes | None]
) -> tuple[dict[str, float], list[list[Any]]]:
    """µs/event of each stage over ``values`` (framed report events), and the report rows."""
    decoder = AvroDecoder(
        contracts.load_schema(contracts.REPORT), registry_fetcher(settings.schema_registry_url)
    )
    for value in values:  # fetch the writer schemas once, outside the timings
        with contextlib.suppress(EventError):
            decoder.decode(value)
    spent: dict[str, float] = defaultdict(float)
    count: dict[str, int] = defaultdict(int)
    rows: list[list[Any]] = []
    now = datetime.now(UTC)
    clock = time.perf_counter
    classified: list[Any] = [None]

    def took(stage: str, started: float) -> float:
        end = clock()
        spent[stage] += end - started
        count[stage] += 1
        return end

    # work_order classifies too: give it this event's classification instead of repeating it
    with mock.patch.object(reports, "classify", lambda *_: classified[0]):
        for offset, value in enumerate(values):
            if not decoder.known(value):  # an unknown id forgotten since the warm-up (after
                with contextlib.suppress(EventError):  # codec.UNKNOWN_ID_TTL_S): ask, untimed
                    decoder.decode(value)
            t = clock()
            try:
                record = decoder.decode(value)
            except EventError:
                took(UNDECODABLE, t)
                continue
            t = took(DECODE, t)
            try:
                reports.validate(record, now)
            except EventError:
                took(VALIDATE, t)
                continue
            t = took(VALIDATE, t)
            if record["action"] != "SUBMIT":
                reports.step_row(record, salt=settings.pii_salt, partition=0, offset=offset,
                                 received_at=now)  # fmt: skip
                took(ROW, t)
                continue
            classified[0] = classify(
                str(record.get("description") or ""), record.get("category_hint")
            )
            t = took(CLASSIFY, t)
            order = reports.work_order(  # enrich, route, mask (classify is not repeated)
                record, salt=settings.pii_salt, partition=0, offset=offset, received_at=now
            )
            t = took(ENRICH, t)
            order = json.loads(json.dumps(order))
            t = took(HOP, t)
            rows.append(reports.report_row(order, None))
            took(ROW, t)
    costs = {stage: spent[stage] / count[stage] * 1e6 for stage in (
        DECODE, UNDECODABLE, VALIDATE, CLASSIFY, ENRICH, HOP, ROW) if count[stage]}  # fmt: skip
    costs[TOTAL] = sum(spent.values()) / max(1, len(values)) * 1e6
    return costs, rows


def form_stage_costs(settings: Settings, values: Sequence[bytes | None]) -> dict[str, float]:
    """µs/event of each stage of the form agent (``agents.forms._process``) over ``values``
    (framed form-submission events): decode, validate, the masked entry, the merge into the
    respondent's state with its derived alert, the row. The total is per event of the topic,
    undecodable and invalid ones included (their stages until they failed)."""
    decoder = AvroDecoder(
        contracts.load_schema(contracts.FORM_SUBMISSION),
        registry_fetcher(settings.schema_registry_url),
    )
    for value in values:  # fetch the writer schemas once, outside the timings
        with contextlib.suppress(EventError):
            decoder.decode(value)
    spent: dict[str, float] = defaultdict(float)
    count: dict[str, int] = defaultdict(int)
    states: dict[str, Any] = {}
    now = datetime.now(UTC)
    clock = time.perf_counter

    def took(stage: str, started: float) -> float:
        end = clock()
        spent[stage] += end - started
        count[stage] += 1
        return end

    for offset, value in enumerate(values):
        t = clock()
        try:
            record = decoder.decode(value)
        except EventError:
            spent[FORM_DECODE] += clock() - t  # counted in the total, not the decode's mean
            continue
        t = took(FORM_DECODE, t)
        try:
            checked = forms.validate(record, now)
        except EventError:
            took(FORM_VALIDATE, t)
            continue
        t = took(FORM_VALIDATE, t)
        entry = forms.submission(
            record, checked, salt=settings.pii_salt, partition=0, offset=offset, received_at=now
        )
        t = took(FORM_ENTRY, t)
        key = entry["respondent_key"]
        state, _ = forms.merge(states.get(key), entry)
        state, _, _ = forms.follow_up(state, received_at=now, partition=0, offset=offset)
        states[key] = state
        t = took(FORM_MERGE, t)
        forms.form_row(state)
        took(FORM_ROW, t)
    stages = (FORM_DECODE, FORM_VALIDATE, FORM_ENTRY, FORM_MERGE, FORM_ROW)
    costs = {stage: spent[stage] / count[stage] * 1e6 for stage in stages if count[stage]}
    costs[FORM_TOTAL] = sum(spent.values()) / max(1, len(values)) * 1e6
    return costs


def insert_rate(settings: Settings, rows: Sequence[list[Any]], total: int) -> float:
    """rows/s of clickhouse-connect inserting ``total`` report rows in sink-sized batches."""
    client = clickhouse.get_client(settings)
    db = f"bench_insert_{uuid.uuid4().hex[:8]}"
    clickhouse.migrate(client, db)
    batch_rows = settings.sink_batch_rows
    try:
        batches = [
            [rows[(start + i) % len(rows)] for i in range(min(batch_rows, total - start))]
            for start in range(0, total, batch_rows)
        ]
        started = time.perf_counter()
        for n, batch in enumerate(batches):
            client.insert(
                f"{db}.reports",
                batch,
                column_names=list(reports.REPORT_COLUMNS),
                settings={"insert_deduplication_token": f"bench-{n}"},  # identical blocks too
            )
        elapsed = time.perf_counter() - started
    finally:
        client.command(f"DROP DATABASE IF EXISTS {db}")
    return total / elapsed
