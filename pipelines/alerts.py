"""The alert stream's pure steps: validate → supersede (Alert/Update/Cancel) → fan out → rows.

A *warning* is the chain of messages that share a root alert id (``references[0]``, or the
``alert_id`` of the original Alert; also the message key). Its current state is a JSON-friendly
dict kept by the agent in a Faust table keyed by the root: :func:`apply` folds the next message
into it, so an Update replaces the level and area of what it references and a Cancel lifts the
warning. Rows:

- ``gov.alerts``: one row per warning (the current state; ReplacingMergeTree by root id,
  version = the state's revision), with its reach (villages, registered population) and the
  ``source`` (``weather`` from the bureau, ``form`` / ``sla`` derived by the pipeline);
- ``gov.alert_targets``: one row per village/community the warning reaches or reached, with its
  current status (``active``, ``cancelled``, or ``lifted`` when an Update shrank the area).

Region codes are resolved by :func:`pipelines.divisions.resolve`: a withdrawn code (宁乡县
430124, 宁乡市 430182 since 2017; ``data/divisions/withdrawn.csv``, from the 民政部 code
changes) reaches its successor's villages, and a code that names nothing is dropped, not the
warning. Both are recorded in the gov.alerts row (``replaced_codes``, ``unknown_codes``) and
logged. Only a warning with no resolvable area at all is refused (``unknown_region``).

The agent (``agents/alerts.py``) only wires these to the topic, the table and the sink.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

from pipelines import divisions, reasons
from pipelines.errors import ValidationError
from pipelines.pii import scrub_text
from pipelines.reports import MAX_AGE, MAX_FUTURE, UNKNOWN_REGION, enrich, from_ms, to_ms
from pipelines.shapes import AlertMessage, AlertState

DATA = Path(__file__).parent / "data" / "weather_warnings.csv"

log = logging.getLogger("govstream.alerts")

# reason codes of gov.dead_letters for alerts
BAD_HAZARD_LEVEL = reasons.code("bad_hazard_level")
MISSING_HAZARD_LOCAL = reasons.code("missing_hazard_local")
UNKNOWN_MSG_TYPE = reasons.code("unknown_msg_type")
MISSING_CAP_FIELD = reasons.code("missing_cap_field")
MISSING_REFERENCES = reasons.code("missing_references")
BAD_REFERENCES = reasons.code("bad_references")
BAD_TIME_WINDOW = reasons.code("bad_time_window")
BAD_TIMESTAMP = reasons.code("bad_timestamp")

#: CAP severity of each warning colour (blue < yellow < orange < red)
SEVERITY = {"blue": "Minor", "yellow": "Moderate", "orange": "Severe", "red": "Extreme"}
ORDER = {"blue": 1, "yellow": 2, "orange": 3, "red": 4}

# statuses (gov.alerts.status and gov.alert_targets.status)
ACTIVE = "active"
CANCELLED = "cancelled"
LIFTED = "lifted"  # a village an Update no longer covers

MAX_MESSAGES = 200  # ids remembered per warning (chains are a handful of messages)


@dataclass(frozen=True)
class WarningType:
    code: str
    name: str  # Chinese name, e.g. 暴雨
    hazard: str  # the contract's symbol, e.g. rainstorm
    levels: tuple[str, ...]


@cache
def warning_types(path: Path = DATA) -> dict[str, WarningType]:
    """The CMA warning signals by hazard symbol (``data/weather_warnings.csv``)."""
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return {
        r["hazard_en"]: WarningType(
            r["code"], r["hazard"], r["hazard_en"], tuple(r["levels"].split("|"))
        )
        for r in rows
    }


def hazard_name(record: Mapping[str, Any]) -> str:
    """Chinese name of the hazard (the local name for ``other``)."""
    if record.get("hazard") == "other":
        return str(record.get("hazard_local") or "")
    known = warning_types().get(str(record.get("hazard")))
    return known.name if known else str(record.get("hazard") or "")


def severity(level: str) -> str:
    """CAP severity of a colour level (``Unknown`` for anything else)."""
    return SEVERITY.get(level, "Unknown")


def root_of(record: Mapping[str, Any]) -> str:
    """The warning a message belongs to: ``references[0]``, or its own id for an Alert."""
    references = record.get("references") or []
    return str(references[0]) if references else str(record["alert_id"])


# --- validate ------------------------------------------------------------------------------


def validate(record: Mapping[str, Any], now: datetime) -> None:
    """Raise ValidationError (with a reason code) when a decoded alert breaks a rule: the
    first of :func:`problems`.

    Region codes: ``unknown_region`` only when none of them resolves to a current division
    (:func:`pipelines.divisions.resolve`); a withdrawn code counts through its successor, and
    an unknown code beside a good one is dropped later (:func:`apply`), not refused here.
    """
    for problem in _problems(record, now):
        raise problem


def problems(record: Mapping[str, Any], now: datetime) -> list[ValidationError]:
    """Every rule a decoded alert breaks (empty when :func:`validate` accepts it), in the
    order ``validate`` checks them; its first is what ``validate`` raises."""
    return list(_problems(record, now))


def _problems(record: Mapping[str, Any], now: datetime) -> Iterator[ValidationError]:
    for name in ("alert_id", "sender", "headline"):
        if not str(record.get(name) or "").strip():
            yield ValidationError(MISSING_CAP_FIELD, f"{name} is empty")
    msg_type = record.get("msg_type")
    references = list(record.get("references") or [])
    if msg_type not in ("Alert", "Update", "Cancel"):
        yield ValidationError(UNKNOWN_MSG_TYPE, f"msg_type {msg_type!r} is not Alert/Update/Cancel")
    elif msg_type == "Alert" and references:
        yield ValidationError(BAD_REFERENCES, "an Alert starts a warning and references nothing")
    elif msg_type != "Alert" and not references:
        yield ValidationError(MISSING_REFERENCES, f"an {msg_type} must reference its Alert")
    if record["alert_id"] in references or len(set(references)) != len(references):
        yield ValidationError(BAD_REFERENCES, "references repeat an id or name the message itself")
    hazard, level = str(record.get("hazard")), str(record.get("level"))
    if level not in SEVERITY:
        yield ValidationError(BAD_HAZARD_LEVEL, f"level {level!r} is not a warning colour")
    if hazard == "other":
        if not str(record.get("hazard_local") or "").strip():
            yield ValidationError(MISSING_HAZARD_LOCAL, "hazard other needs hazard_local")
    else:
        known = warning_types().get(hazard)
        if known is None:
            yield ValidationError(BAD_HAZARD_LEVEL, f"hazard {hazard!r} is not a warning type")
        elif level not in known.levels:
            yield ValidationError(
                BAD_HAZARD_LEVEL,
                f"{known.name} ({hazard}) has no {level} signal; it has {'/'.join(known.levels)}",
            )
    codes = list(record.get("region_codes") or [])
    if not codes:
        yield ValidationError(UNKNOWN_REGION, "region_codes is empty")
    else:
        resolved = divisions.resolve(codes)
        if not resolved.codes:
            shown = ", ".join(repr(c) for c in resolved.unknown)
            yield ValidationError(
                UNKNOWN_REGION, f"no region code names a known or withdrawn division: {shown}"
            )
    sent: datetime = record["sent_at"]
    if sent > now + MAX_FUTURE:
        yield ValidationError(BAD_TIMESTAMP, f"sent_at {sent.isoformat()} is in the future")
    elif sent < now - MAX_AGE:
        yield ValidationError(BAD_TIMESTAMP, f"sent_at {sent.isoformat()} is over three years old")
    effective: datetime = record["effective"]
    expires: datetime | None = record.get("expires")
    if expires is not None and expires <= max(effective, sent):
        yield ValidationError(
            BAD_TIME_WINDOW,
            f"expires {expires.isoformat()} is not after effective/sent "
            f"{max(effective, sent).isoformat()}",
        )
    if effective > sent + timedelta(days=30):
        yield ValidationError(
            BAD_TIME_WINDOW, f"effective {effective.isoformat()} is over 30 days after sent_at"
        )


# --- fan-out ---------------------------------------------------------------------------------


def expand(region_codes: Iterable[str]) -> list[divisions.Division]:
    """Every village/community the codes cover (any level, overlaps counted once), by code."""
    seen: dict[str, divisions.Division] = {}
    for code in region_codes:
        for village in divisions.villages_under(str(code)):
            seen.setdefault(village.code, village)
    return [seen[c] for c in sorted(seen)]


def reach(region_codes: Iterable[str]) -> tuple[int, int]:
    """(villages, registered population) the codes cover."""
    villages = expand(region_codes)
    return len(villages), sum(v.population for v in villages)


# --- supersede -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """What one message did to its warning."""

    outcome: str  # new | superseded | stale (older than the state) | duplicate
    lifted: tuple[str, ...] = ()  # region codes the previous state covered (to re-mark)


def resolve_regions(record: Mapping[str, Any]) -> divisions.Resolution:
    """The message's region codes resolved (:func:`pipelines.divisions.resolve`), with a log
    line for each withdrawn code mapped (INFO) and for the unknown codes dropped (WARNING)."""
    resolved = divisions.resolve(record.get("region_codes") or [])
    alert_id = record.get("alert_id")
    for old, new in resolved.replaced.items():
        log.info(
            "alert %s: withdrawn region code %s replaced by its successor %s",
            alert_id, old, ", ".join(new),
        )  # fmt: skip
    if resolved.unknown:
        log.warning(
            "alert %s: unknown region code(s) %s dropped; the warning goes to %s",
            alert_id, ", ".join(resolved.unknown), ", ".join(resolved.codes) or "no area",
        )  # fmt: skip
    return resolved


def _message(record: Mapping[str, Any], received_at: datetime) -> AlertMessage:
    expires = record.get("expires")
    resolved = resolve_regions(record)
    return {
        "alert_id": str(record["alert_id"]),
        "msg_type": str(record["msg_type"]),
        "sender": scrub_text(str(record["sender"])),
        "hazard": str(record["hazard"]),
        "hazard_local": scrub_text(str(record.get("hazard_local") or "")),
        "level": str(record["level"]),
        "region_codes": list(resolved.codes),
        "replaced_codes": {old: list(new) for old, new in resolved.replaced.items()},
        "unknown_codes": list(resolved.unknown),
        "headline": scrub_text(str(record["headline"])),
        "description": scrub_text(str(record.get("description") or "")),
        "instruction": scrub_text(str(record.get("instruction") or "")),
        "sent_ms": to_ms(record["sent_at"]),
        "effective_ms": to_ms(record["effective"]),
        "expires_ms": to_ms(expires) if expires is not None else None,
        "source": str(record.get("source") or "weather"),
        "received_ms": to_ms(received_at),
    }


def apply(
    state: AlertState | None,
    record: Mapping[str, Any],
    *,
    received_at: datetime,
    partition: int = 0,
    offset: int = 0,
) -> tuple[AlertState, Change]:
    """Fold a validated message into its warning's state; returns the new state and the change.

    - an Alert (or an Update/Cancel whose Alert never arrived) starts the state;
    - an Update replaces level, area, texts and time window; villages it no longer covers are
      ``lifted``; a Cancel marks the warning ``cancelled`` for good (over its whole area);
    - a message older than the current one (by ``sent_at``) is remembered but changes nothing,
      and a message seen before (same ``alert_id``, a replay) changes nothing at all.
    """
    message = _message(record, received_at)
    lifted: tuple[str, ...] = ()
    if state is not None and message["alert_id"] in state["messages"]:
        return state.copy(), Change("duplicate")
    if state is None:
        new: AlertState = {
            **message,
            "root_id": root_of(record),
            "status": CANCELLED if message["msg_type"] == "Cancel" else ACTIVE,
            "first_sent_ms": message["sent_ms"],
            "messages": [],
            "revision": 0,
            "partition": partition,
            "offset": offset,
        }
        outcome = "new"
    else:
        new = state.copy()
        new["messages"] = list(state["messages"])
        if message["sent_ms"] < state["sent_ms"] or state["status"] == CANCELLED:
            outcome = "stale"
            new["first_sent_ms"] = min(state["first_sent_ms"], message["sent_ms"])
        elif message["msg_type"] == "Cancel":
            area = list(dict.fromkeys([*state["region_codes"], *message["region_codes"]]))
            replaced = {**(state.get("replaced_codes") or {}), **message["replaced_codes"]}
            unknown = [*(state.get("unknown_codes") or []), *message["unknown_codes"]]
            new.update(message)
            new["region_codes"], new["replaced_codes"] = area, replaced
            new["unknown_codes"], new["status"] = list(dict.fromkeys(unknown)), CANCELLED
            outcome = "superseded"
        else:
            new.update(message)
            new["status"] = ACTIVE
            outcome, lifted = "superseded", tuple(state["region_codes"])
    new["messages"] = [*new["messages"], message["alert_id"]][-MAX_MESSAGES:]
    new["revision"] = int(new["revision"]) + 1
    new["partition"], new["offset"] = partition, offset
    return new, Change(outcome, lifted)


# --- rows ------------------------------------------------------------------------------------

ALERT_COLUMNS = (
    "root_id", "alert_id", "msg_type", "status", "source", "sender", "hazard", "hazard_name",
    "level", "severity", "headline", "description", "instruction", "region_codes", "messages",
    "first_sent_at", "sent_at", "effective", "expires", "villages", "population", "received_at",
    "source_partition", "source_offset", "version", "replaced_codes", "unknown_codes",
)  # fmt: skip


def alert_row(state: Mapping[str, Any]) -> list[Any]:
    """A warning's current state as a gov.alerts row (ALERT_COLUMNS order).

    ``replaced_codes`` maps each withdrawn code the warning named to its successors
    (``{'430124': ['430182']}``), ``unknown_codes`` lists the codes dropped (migration
    0006); states kept before these existed give ``{}`` and ``[]``.
    """
    villages, population = reach(state["region_codes"])
    expires = state.get("expires_ms")
    return [
        state["root_id"], state["alert_id"], state["msg_type"], state["status"], state["source"],
        state["sender"], state["hazard"], hazard_name(state), state["level"],
        severity(state["level"]), state["headline"], state["description"], state["instruction"],
        list(state["region_codes"]), list(state["messages"]), from_ms(state["first_sent_ms"]),
        from_ms(state["sent_ms"]), from_ms(state["effective_ms"]),
        from_ms(expires) if expires is not None else None, villages, population,
        from_ms(state["received_ms"]), state["partition"], state["offset"], state["revision"],
        dict(state.get("replaced_codes") or {}), list(state.get("unknown_codes") or []),
    ]  # fmt: skip


TARGET_COLUMNS = (
    "root_id", "alert_id", "village_code", "village", "township_code", "township",
    "county_code", "county", "city_code", "city", "province_code", "urban_rural", "population",
    "source", "hazard", "hazard_name", "level", "severity", "status", "effective", "expires",
    "updated_at", "version",
)  # fmt: skip


def target_rows(state: Mapping[str, Any], lifted: Sequence[str] = ()) -> list[list[Any]]:
    """gov.alert_targets rows: every village of the state's area with the state's status, and
    every village of ``lifted`` areas outside it as ``lifted`` (TARGET_COLUMNS order)."""
    current = expand(state["region_codes"])
    covered = {v.code for v in current}
    dropped = [v for v in expand(lifted) if v.code not in covered]
    expires = state.get("expires_ms")
    common = (
        state["source"], state["hazard"], hazard_name(state), state["level"],
        severity(state["level"]),
    )  # fmt: skip
    rows = []
    marked = [*((v, state["status"]) for v in current), *((v, LIFTED) for v in dropped)]
    for village, status in marked:
        place = enrich(village.code)
        codes, names = place.codes, place.names
        rows.append([
            state["root_id"], state["alert_id"], village.code, village.name,
            codes["township"], names["township"], codes["county"], names["county"],
            codes["city"], names["city"], codes["province"], village.urban_rural,
            village.population, *common, status, from_ms(state["effective_ms"]),
            from_ms(expires) if expires is not None else None, from_ms(state["received_ms"]),
            state["revision"],
        ])  # fmt: skip
    return rows


# the alert's free-text fields (contract: schemas/avro/alert.avsc)
FREE_TEXT = ("headline", "description", "instruction", "hazard_local", "sender")


def masked_record(record: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of an alert safe to dead-letter: its free texts (``FREE_TEXT``) scrubbed by
    :func:`pipelines.pii.scrub_text` (a warning names no person, but a text may)."""
    out = dict(record)
    for name in FREE_TEXT:
        if isinstance(out.get(name), str):
            out[name] = scrub_text(out[name])
    return out


def is_active(state: Mapping[str, Any], now: datetime) -> bool:
    """Whether a warning counts as active at ``now`` (the same rule as the analyst views)."""
    now_ms = to_ms(now.astimezone(UTC))
    expires = state.get("expires_ms")
    return (
        state["status"] == ACTIVE
        and state["effective_ms"] <= now_ms
        and (expires is None or expires > now_ms)
    )


def state_from_row(row: Mapping[str, Any]) -> AlertState:
    """A warning's state rebuilt from its gov.alerts row (a dict by ALERT_COLUMNS name), for
    a table that lost its changelog (pipelines/restore.py). Only the last ``MAX_MESSAGES``
    message ids are kept in a row anyway, as in the table."""
    r = row
    expires = r.get("expires")
    hazard = str(r["hazard"])
    return {
        "root_id": str(r["root_id"]), "alert_id": str(r["alert_id"]),
        "msg_type": str(r["msg_type"]), "status": str(r["status"]), "source": str(r["source"]),
        "sender": str(r["sender"]), "hazard": hazard,
        "hazard_local": str(r["hazard_name"]) if hazard == "other" else "",
        "level": str(r["level"]), "headline": str(r["headline"]),
        "description": str(r["description"]), "instruction": str(r["instruction"]),
        "region_codes": [str(c) for c in r["region_codes"]],
        "replaced_codes": {str(k): [str(c) for c in v] for k, v in
                           dict(r.get("replaced_codes") or {}).items()},
        "unknown_codes": [str(c) for c in r.get("unknown_codes") or []],
        "messages": [str(m) for m in r["messages"]],
        "first_sent_ms": to_ms(r["first_sent_at"]), "sent_ms": to_ms(r["sent_at"]),
        "effective_ms": to_ms(r["effective"]),
        "expires_ms": to_ms(expires) if expires is not None else None,
        "received_ms": to_ms(r["received_at"]), "partition": int(r["source_partition"]),
        "offset": int(r["source_offset"]), "revision": int(r["version"]),
    }  # fmt: skip
