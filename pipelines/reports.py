"""The report stream's pure steps: validate → enrich → classify → route → mask → row.

Each step is a plain function over plain data, so it is tested without Kafka. The agent
(`agents/reports.py`) only wires them to topics, tables and the sink.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from pipelines import contracts, divisions, reasons, taxonomy
from pipelines.classify import Classification, classify
from pipelines.errors import ValidationError
from pipelines.pii import (
    id_number_problem,
    mask_id_number,
    mask_name,
    mask_phone,
    pseudonym,
    scrub_text,
    scrub_url,
)
from pipelines.shapes import Codes, MaskedPerson, Names, RoutedReport

# reason codes of gov.dead_letters for reports
UNKNOWN_REGION = reasons.code("unknown_region")
EMPTY_DESCRIPTION = reasons.code("empty_description")
BAD_ID_NUMBER = reasons.code("bad_id_number")
BAD_TIMESTAMP = reasons.code("bad_timestamp")
INCOMPLETE = reasons.code("incomplete_for_action")
BAD_COORDINATES = reasons.code("bad_coordinates")
UNKNOWN_CATEGORY = reasons.code("unknown_category")

MAX_FUTURE = timedelta(minutes=10)  # clock skew tolerated on upstream devices
MAX_AGE = timedelta(days=3 * 366)  # late uploads after an outage are fine; decades are not
LEVELS = ("province", "city", "county", "township", "village")


def validate(record: Mapping[str, Any], now: datetime) -> None:
    """Raise ValidationError (with a reason code) when a decoded report breaks a rule: the
    first of :func:`problems`."""
    for problem in _problems(record, now):
        raise problem


def problems(record: Mapping[str, Any], now: datetime) -> list[ValidationError]:
    """Every rule a decoded report breaks (empty when :func:`validate` accepts it), in the
    order ``validate`` checks them; its first is what ``validate`` raises."""
    return list(_problems(record, now))


def _problems(record: Mapping[str, Any], now: datetime) -> Iterator[ValidationError]:
    code = str(record.get("region_code") or "")
    if not re.fullmatch(r"\d{12}", code) or not divisions.is_known(code):
        yield ValidationError(UNKNOWN_REGION, f"region_code {code!r} is not a known division")
    occurred = record["occurred_at"]
    if occurred > now + MAX_FUTURE:
        yield ValidationError(BAD_TIMESTAMP, f"occurred_at {occurred.isoformat()} is in the future")
    elif occurred < now - MAX_AGE:
        yield ValidationError(
            BAD_TIMESTAMP, f"occurred_at {occurred.isoformat()} is over three years old"
        )
    empty = record.get("action") == "SUBMIT" and not str(record.get("description") or "").strip()
    if empty:
        yield ValidationError(EMPTY_DESCRIPTION, "a SUBMIT needs a non-empty description")
    for role in ("reporter",):
        person = record.get(role) or {}
        number = person.get("id_number")
        if number:
            problem = id_number_problem(number)
            if problem:
                yield ValidationError(BAD_ID_NUMBER, f"{role}.id_number: {problem}")
    lat, lon = record.get("lat"), record.get("lon")
    if lat is not None and lon is not None and not (3 <= lat <= 54 and 73 <= lon <= 136):
        yield ValidationError(BAD_COORDINATES, f"lat/lon {lat},{lon} is outside China")
    # an empty description was just named (empty_description): not again as incomplete
    incomplete = [
        p for p in contracts.action_problems(record) if not (empty and "description" in p)
    ]
    if incomplete:
        yield ValidationError(INCOMPLETE, "; ".join(incomplete))
    # the dispatcher's correction (DISPATCH only: action_problems) must name a category
    corrected = record.get("corrected_category")
    if (
        record.get("action") == "DISPATCH"
        and corrected is not None
        and not taxonomy.is_valid(corrected)
    ):
        yield ValidationError(
            UNKNOWN_CATEGORY,
            f"corrected_category {scrub_text(str(corrected)[:40])!r} is not a code of taxonomy "
            f"{taxonomy.VERSION}",
        )


@dataclass(frozen=True)
class Place:
    """Names of every division level of a region code."""

    codes: Codes
    names: Names
    urban_rural: str


def enrich(region_code: str) -> Place:
    """Codes and names of every division level of ``region_code`` (``''`` below its level)."""
    codes: dict[str, str] = dict.fromkeys(LEVELS, "")
    names: dict[str, str] = dict.fromkeys(LEVELS, "")
    urban_rural = ""
    for division in divisions.chain(region_code):
        codes[division.level] = division.code
        names[division.level] = division.name
        urban_rural = division.urban_rural or urban_rural
    return Place(cast(Codes, codes), cast(Names, names), urban_rural)  # keys: LEVELS


@dataclass(frozen=True)
class Route:
    priority: str
    emergency: bool
    sla_hours: float
    deadline: datetime
    department: str
    level: str


def route(category: Classification, occurred_at: datetime) -> Route:
    """Priority, deadline (occurred_at + SLA), department and handling level of a work order."""
    return Route(
        priority=category.priority,
        emergency=category.priority == "P1",
        sla_hours=category.sla_hours,
        deadline=occurred_at + timedelta(hours=category.sla_hours),
        department=category.department,
        level=category.level,
    )


def masked_person(person: Mapping[str, Any] | None, salt: str) -> MaskedPerson:
    """The masked form of a reporter/operator; raw values do not survive this function."""
    if not person:
        return {"hash": "", "name": "", "phone": "", "id_number": ""}
    return {
        "hash": pseudonym(str(person.get("id") or ""), salt),
        "name": mask_name(str(person.get("name") or "")),
        "phone": mask_phone(str(person.get("phone") or "")),
        "id_number": mask_id_number(str(person.get("id_number") or "")),
    }


# the report's free-text fields (contract: schemas/avro/report.avsc); names, phones and ID
# numbers typed into any of them are masked by pii.scrub_text, image URLs by pii.scrub_url
FREE_TEXT = (
    "description", "address", "note", "assigned_department", "category_hint", "grid_id",
    "corrected_category",
)  # fmt: skip


def masked_images(images: Sequence[Any] | None) -> list[str]:
    """Image URLs with the phone and ID numbers in them masked (``…/13812345678.jpg``)."""
    return [scrub_url(str(url)) for url in images or ()]


def masked_record(record: Mapping[str, Any], salt: str) -> dict[str, Any]:
    """A copy of a report record safe to log or dead-letter: people replaced by masks, free
    text (``FREE_TEXT``) scrubbed and image URLs masked."""
    out = dict(record)
    for role in ("reporter", "operator", "respondent"):
        if out.get(role) is not None:
            out[role] = {**masked_person(out[role], salt), "role": role}
    for name in FREE_TEXT:
        if isinstance(out.get(name), str):
            out[name] = scrub_text(out[name])
    if isinstance(out.get("images"), list):
        out["images"] = masked_images(out["images"])
    return out


# --- 并单 (merging duplicate reports) -------------------------------------------------------


def dedupe_key(category_code: str, region_code: str) -> str:
    """Reports may merge only within one category and one community/village."""
    return f"{category_code}|{region_code}"


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres (haversine)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6_371_000 * math.asin(math.sqrt(a))


def _normal_address(text: str) -> str:
    return re.sub(r"[\s\W_]+", "", text).lower()


def same_place(a: Mapping[str, Any], b: Mapping[str, Any], max_distance_m: float) -> bool:
    """Near the same place: within max_distance_m when both have coordinates, else same address."""
    if None not in (a.get("lat"), a.get("lon"), b.get("lat"), b.get("lon")):
        return distance_m(a["lat"], a["lon"], b["lat"], b["lon"]) <= max_distance_m
    left, right = _normal_address(a.get("address", "")), _normal_address(b.get("address", ""))
    return bool(left) and left == right


def find_duplicate(
    open_orders: Sequence[Mapping[str, Any]],
    order: Mapping[str, Any],
    window_s: float,
    max_distance_m: float,
) -> str | None:
    """report_id of the first open order this one duplicates, or None.

    ``open_orders`` are the first orders of the same dedupe key, each a mapping with
    report_id, occurred_ms, lat, lon, address.
    """
    for first in open_orders:
        if first["report_id"] == order["report_id"]:
            return None  # a replay of the first order itself
        if abs(order["occurred_ms"] - first["occurred_ms"]) > window_s * 1000:
            continue
        if same_place(first, order, max_distance_m):
            return str(first["report_id"])
    return None


def remember(
    open_orders: Sequence[Mapping[str, Any]], order: Mapping[str, Any], window_s: float
) -> list[dict[str, Any]]:
    """The open orders after ``order`` opened a new one, without those outside the window."""
    horizon = order["occurred_ms"] - window_s * 1000
    kept = [dict(o) for o in open_orders if o["occurred_ms"] >= horizon]
    if all(o["report_id"] != order["report_id"] for o in kept):
        kept.append(
            {k: order.get(k) for k in ("report_id", "occurred_ms", "lat", "lon", "address")}
        )
    return kept


# --- rows ---------------------------------------------------------------------------------


def to_ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


def from_ms(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1000, tz=UTC)


#: A report text that takes every lazily built part of the report path: the segmenter with
#: the division names, the pinyin tables, the term automata, the model (when there is one).
WARM_UP_TEXT = "张先生反映：幸福路12号门口井盖破损，晚上路灯也不亮，电话13800138000，请尽快维修。"


def warm_up(region_code: str = "430102") -> float:
    """Build what the first report would otherwise build (``classify``'s segmenter, pinyin
    tables, automata and model; the division index; the masking patterns) and return the
    seconds it took; ``region_code`` is any division in the shipped data (430102: 湖南省长沙市
    芙蓉区), so the whole chain is looked up. On a quiet 2-core machine the first report took
    2.2 s and the next ones 0.2–1.4 ms (2026-11-30): a worker that starts under load would
    stall its first batch and every event queued behind it. Pure; safe to call from a thread
    (each part builds under its own lock) and more than once."""
    started = time.perf_counter()
    classify(WARM_UP_TEXT)
    enrich(region_code)
    scrub_text(WARM_UP_TEXT)
    return time.perf_counter() - started


def work_order(
    record: Mapping[str, Any],
    *,
    salt: str,
    partition: int,
    offset: int,
    received_at: datetime,
    produced_at: datetime | None = None,
) -> RoutedReport:
    """A validated SUBMIT as a masked, classified, routed work order (JSON-friendly)."""
    category = classify(str(record.get("description") or ""), record.get("category_hint"))
    occurred: datetime = record["occurred_at"]
    plan = route(category, occurred)
    place = enrich(record["region_code"])
    reporter = masked_person(record.get("reporter"), salt)
    return {
        "report_id": record["report_id"],
        "event_id": record["event_id"],
        "occurred_ms": to_ms(occurred),
        "received_ms": to_ms(received_at),
        "produced_ms": to_ms(produced_at or received_at),  # the Kafka record's timestamp
        "channel": record["channel"],
        "region_code": record["region_code"],
        "codes": place.codes,
        "names": place.names,
        "urban_rural": place.urban_rural,
        "grid_id": scrub_text(record.get("grid_id") or ""),  # free text too (FREE_TEXT)
        "lat": record.get("lat"),
        "lon": record.get("lon"),
        "address": scrub_text(record.get("address") or ""),
        "description": scrub_text(record.get("description") or ""),
        "images": masked_images(record.get("images")),
        "category": {
            "code": category.code,
            "major": category.major,
            "minor": category.minor,
            "confidence": category.confidence,
            "evidence": list(category.evidence),
            "source": category.source,
            "request_type": category.request_type,
            "taxonomy_version": category.taxonomy_version,
            "classifier": category.classifier,
        },
        "priority": plan.priority,
        "emergency": plan.emergency,
        "sla_hours": plan.sla_hours,
        "deadline_ms": to_ms(plan.deadline),
        "department": plan.department,
        "level": plan.level,
        "reporter": reporter,
        "partition": partition,
        "offset": offset,
    }


REPORT_COLUMNS = (
    "report_id", "event_id", "occurred_at", "received_at", "channel", "region_code",
    "province_code", "city_code", "county_code", "township_code",
    "province", "city", "county", "township", "village", "urban_rural",
    "grid_id", "lat", "lon", "address", "description", "images",
    "category_code", "category_major", "category_minor", "confidence", "evidence",
    "classified_by", "priority", "emergency", "sla_hours", "deadline", "department",
    "handling_level", "duplicate_of", "reporter_hash", "reporter_name", "reporter_phone",
    "reporter_id_number", "source_partition", "source_offset", "version", "produced_at",
    "request_type", "taxonomy_version", "classifier",
)  # fmt: skip


def report_row(order: Mapping[str, Any], duplicate_of: str | None) -> list[Any]:
    """A work order as a gov.reports row (columns in REPORT_COLUMNS order); an order routed
    before issue 14 has no request type, taxonomy version or classifier: those are ''."""
    codes, names, cat, who = order["codes"], order["names"], order["category"], order["reporter"]
    return [
        order["report_id"], order["event_id"], from_ms(order["occurred_ms"]),
        from_ms(order["received_ms"]), order["channel"], order["region_code"],
        codes["province"], codes["city"], codes["county"], codes["township"],
        names["province"], names["city"], names["county"], names["township"], names["village"],
        order["urban_rural"], order["grid_id"], order["lat"], order["lon"], order["address"],
        order["description"], order["images"], cat["code"], cat["major"], cat["minor"],
        cat["confidence"], cat["evidence"], cat["source"], order["priority"], order["emergency"],
        order["sla_hours"], from_ms(order["deadline_ms"]), order["department"], order["level"],
        duplicate_of or "", who["hash"], who["name"], who["phone"], who["id_number"],
        order["partition"], order["offset"], order["offset"],
        from_ms(order.get("produced_ms", order["received_ms"])),
        cat.get("request_type", ""), cat.get("taxonomy_version", ""), cat.get("classifier", ""),
    ]  # fmt: skip


STEP_COLUMNS = (
    "event_id", "report_id", "action", "occurred_at", "received_at", "region_code",
    "operator_hash", "operator_name", "operator_role", "assigned_department", "note", "images",
    "source_partition", "source_offset",
)  # fmt: skip


def step_row(
    record: Mapping[str, Any], *, salt: str, partition: int, offset: int, received_at: datetime
) -> list[Any]:
    """A handling step (ACCEPT, DISPATCH, …) as a gov.work_order_events row; the operator's
    role (or department), the assigned department, the note and the image URLs are scrubbed
    of personal data (a role typed ``网格员张三 13812345678`` is kept as
    ``网格员张* 138****5678``)."""
    operator = record.get("operator") or {}
    who = masked_person(operator or record.get("reporter"), salt)
    role = (
        operator.get("role") or operator.get("department") or ("reporter" if not operator else "")
    )
    return [
        record["event_id"], record["report_id"], record["action"], record["occurred_at"],
        received_at, record["region_code"], who["hash"], who["name"], scrub_text(role),
        scrub_text(record.get("assigned_department") or ""),
        scrub_text(record.get("note") or ""), masked_images(record.get("images")),
        partition, offset,
    ]  # fmt: skip
