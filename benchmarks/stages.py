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


class _Timings:
    """Seconds spent and events counted per stage (``time.perf_counter``)."""

    def __init__(self) -> None:
        self.spent: dict[str, float] = defaultdict(float)
        self.count: dict[str, int] = defaultdict(int)

    def took(self, stage: str, started: float) -> float:
        """Count one event of ``stage`` that began at ``started``; returns the clock now."""
        end = time.perf_counter()
        self.spent[stage] += end - started
        self.count[stage] += 1
        return end

    def means_us(self, stages: Sequence[str], total: str, events: int) -> dict[str, float]:
        """µs per counted event of each stage that ran, and ``total``: all the time spent
        (uncounted too) per event of the ``events``."""
        costs = {s: self.spent[s] / self.count[s] * 1e6 for s in stages if self.count[s]}
        costs[total] = sum(self.spent.values()) / max(1, events) * 1e6
        return costs


def _decoder(settings: Settings, topic: str, values: Sequence[bytes | None]) -> AvroDecoder:
    """The topic's decoder, with the writer schemas of ``values`` fetched once, outside the
    timings."""
    decoder = AvroDecoder(
        contracts.load_schema(topic), registry_fetcher(settings.schema_registry_url)
    )
    for value in values:
        with contextlib.suppress(EventError):
            decoder.decode(value)
    return decoder


def stage_costs(
    settings: Settings, values: Sequence[bytes | None]
) -> tuple[dict[str, float], list[list[Any]]]:
    """µs/event of each stage over ``values`` (framed report events), and the report rows."""
    decoder = _decoder(settings, contracts.REPORT, values)
    timings = _Timings()
    took, clock = timings.took, time.perf_counter
    rows: list[list[Any]] = []
    now = datetime.now(UTC)
    classified: list[Any] = [None]

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
    stages = (DECODE, UNDECODABLE, VALIDATE, CLASSIFY, ENRICH, HOP, ROW)
    return timings.means_us(stages, TOTAL, len(values)), rows


def form_stage_costs(settings: Settings, values: Sequence[bytes | None]) -> dict[str, float]:
    """µs/event of each stage of the form agent (``agents.forms._process``) over ``values``
    (framed form-submission events): decode, validate, the masked entry, the merge into the
    respondent's state with its derived alert, the row. The total is per event of the topic,
    undecodable and invalid ones included (their stages until they failed)."""
    decoder = _decoder(settings, contracts.FORM_SUBMISSION, values)
    timings = _Timings()
    took, clock = timings.took, time.perf_counter
    states: dict[str, Any] = {}
    now = datetime.now(UTC)

    for offset, value in enumerate(values):
        t = clock()
        try:
            record = decoder.decode(value)
        except EventError:
            timings.spent[FORM_DECODE] += clock() - t  # in the total, not the decode's mean
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
    return timings.means_us(stages, FORM_TOTAL, len(values))


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
