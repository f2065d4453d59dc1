"""The form stream's pure steps: definition → validate → mask → latest per respondent → rows.

Form definitions are data (``data/forms/<form_id>-v<version>.json``): each field has an id, a
type (``number``, ``integer``, ``boolean``, ``date``, ``text``, ``single_choice``,
``multi_choice``, ``phone``, ``id_number``), whether it is required, its allowed values
(``min``/``max``, ``options``, ``max_length``) and optionally an ``abnormal`` rule (one of
``gte``, ``gt``, ``lte``, ``lt``, ``equals``, ``in``, ``not_empty``). ``alert`` gives the level
and local hazard name of the derived alert an abnormal respondent raises.

Resubmissions: the agent keeps, per message key (``form_id:respondent``), a JSON-friendly state
in a Faust table; :func:`merge` folds the next submission into it. ``gov.form_submissions`` is a
ReplacingMergeTree keyed by (form, respondent) whose version is the state's revision, so the
row of the latest submission (by ``submitted_at``) replaces the earlier ones and carries the
respondent's submission counts: the analyst views are exact under resubmissions, retries and
late arrivals. The derived alert (``source = form``) is raised when a respondent's latest answers
become abnormal and cancelled when a resubmission is normal again (:func:`derived_alert`).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cache
from pathlib import Path
from typing import Any, cast

from pipelines import alerts, divisions, reasons
from pipelines.contracts import BAD_ANSWER
from pipelines.errors import GovstreamError, ValidationError
from pipelines.pii import (
    fold,
    id_number_problem,
    mask_id_number,
    mask_phone,
    pseudonym,
    scrub_text,
)
from pipelines.reports import (
    BAD_ID_NUMBER,
    BAD_TIMESTAMP,
    MAX_AGE,
    MAX_FUTURE,
    UNKNOWN_REGION,
    enrich,
    from_ms,
    masked_person,
    to_ms,
)
from pipelines.shapes import AlertState, Codes, FormEntry, FormState, Names, Row

FORMS_DIR = Path(__file__).parent / "data" / "forms"

# reason codes of gov.dead_letters for form submissions (besides the shared ones imported above)
UNKNOWN_FORM = reasons.code("unknown_form")
UNKNOWN_FORM_VERSION = reasons.code("unknown_form_version")
UNKNOWN_QUESTION = reasons.code("unknown_question")
MISSING_ANSWER = reasons.code("missing_answer")

TYPES = ("number", "integer", "boolean", "date", "text", "single_choice", "multi_choice",
         "phone", "id_number")  # fmt: skip
RULES = ("gte", "gt", "lte", "lt", "equals", "in", "not_empty")
MAX_SEEN = 50  # submission ids remembered per respondent (to drop retries and replays)


class FormDefinitionError(GovstreamError):
    """A form definition file is malformed."""


@dataclass(frozen=True)
class Field:
    id: str
    type: str
    required: bool = False
    label: str = ""
    minimum: float | None = None
    maximum: float | None = None
    options: tuple[str, ...] = ()
    max_length: int | None = None
    abnormal: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class FormDefinition:
    form_id: str
    version: int
    title: str
    fields: dict[str, Field]
    alert_level: str = "yellow"
    alert_hazard: str = "表单异常"
    doc: str = ""

    @property
    def key(self) -> tuple[str, int]:
        return (self.form_id, self.version)


def _field(raw: Mapping[str, Any], where: str) -> Field:
    kind = raw.get("type")
    if not isinstance(raw.get("id"), str) or kind not in TYPES:
        raise FormDefinitionError(f"{where}: a field needs an id and a type in {TYPES}")
    abnormal = raw.get("abnormal")
    if abnormal is not None and (
        not isinstance(abnormal, dict) or len(abnormal) != 1 or next(iter(abnormal)) not in RULES
    ):
        raise FormDefinitionError(f"{where}: field {raw['id']}: abnormal is one rule of {RULES}")
    options = tuple(raw.get("options") or ())
    if kind in ("single_choice", "multi_choice") and not options:
        raise FormDefinitionError(f"{where}: field {raw['id']} is a choice without options")
    return Field(
        id=raw["id"],
        type=kind,
        required=bool(raw.get("required", False)),
        label=str(raw.get("label") or raw["id"]),
        minimum=raw.get("min"),
        maximum=raw.get("max"),
        options=options,
        max_length=raw.get("max_length"),
        abnormal=abnormal,
    )


def parse_definition(raw: Mapping[str, Any], where: str = "form") -> FormDefinition:
    form_id, version = raw.get("form_id"), raw.get("version")
    if not isinstance(form_id, str) or not form_id or ":" in form_id:
        raise FormDefinitionError(f"{where}: form_id is a non-empty string without ':'")
    if not isinstance(version, int) or version < 1:
        raise FormDefinitionError(f"{where}: version is a positive integer")
    fields = [_field(f, where) for f in raw.get("fields") or []]
    if not fields or len({f.id for f in fields}) != len(fields):
        raise FormDefinitionError(f"{where}: fields are a non-empty list of distinct ids")
    alert = raw.get("alert") or {}
    return FormDefinition(
        form_id=form_id,
        version=version,
        title=str(raw.get("title") or form_id),
        fields={f.id: f for f in fields},
        alert_level=str(alert.get("level", "yellow")),
        alert_hazard=str(alert.get("hazard_local", "表单异常")),
        doc=str(raw.get("doc") or ""),
    )


@cache
def definitions(directory: Path = FORMS_DIR) -> dict[tuple[str, int], FormDefinition]:
    """Every form definition in ``directory`` by (form_id, version)."""
    out: dict[tuple[str, int], FormDefinition] = {}
    for path in sorted(directory.glob("*.json")):
        definition = parse_definition(json.loads(path.read_text(encoding="utf-8")), path.name)
        if path.stem != f"{definition.form_id}-v{definition.version}":
            raise FormDefinitionError(f"{path.name}: name it <form_id>-v<version>.json")
        out[definition.key] = definition
    return out


def definition_for(form_id: str, version: int) -> FormDefinition:
    """The definition of a form version; ValidationError when the form or version is unknown."""
    known = definitions()
    found = known.get((form_id, version))
    if found is not None:
        return found
    versions = sorted(v for f, v in known if f == form_id)
    if not versions:
        raise ValidationError(UNKNOWN_FORM, f"form {form_id!r} has no definition")
    raise ValidationError(
        UNKNOWN_FORM_VERSION, f"form {form_id!r} has no version {version} (known: {versions})"
    )


# --- answers ---------------------------------------------------------------------------------

_INT_RE = re.compile(r"^-?\d+$")
_NUM_RE = re.compile(r"^-?\d+(\.\d+)?$")
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


# answers read after folding (pii.fold: full-width ５, －, ．, ｔｒｕｅ and the digits of any
# script as ASCII), and stored as folded: an input method's full width is no other value
FOLDED_TYPES = ("number", "integer", "boolean", "date")


def normal_answer(spec: Field, text: str) -> str:
    """The answer string as read and stored: folded and stripped for ``FOLDED_TYPES``."""
    return fold(text).strip() if spec.type in FOLDED_TYPES else text


def parse_answer(spec: Field, text: str) -> Any:
    """The typed value of one answer string; ValidationError(bad_answer) when it is invalid.

    Number, integer, boolean and date answers are read after :func:`normal_answer`, so
    ``"５"`` is the integer 5."""

    def bad(why: str) -> ValidationError:
        return ValidationError(BAD_ANSWER, f"answers[{spec.id!r}]: {why}")

    text = normal_answer(spec, text)
    value: Any
    if spec.type in ("number", "integer"):
        pattern = _INT_RE if spec.type == "integer" else _NUM_RE
        if not pattern.match(text.strip()):
            raise bad(
                f"{text[:40]!r} is not a{'n integer' if spec.type == 'integer' else ' number'}"
            )
        value = int(text) if spec.type == "integer" else float(text)
        if not math.isfinite(value):
            raise bad(f"{text[:40]!r} is not finite")
        if spec.minimum is not None and value < spec.minimum:
            raise bad(f"{value} is below {spec.minimum}")
        if spec.maximum is not None and value > spec.maximum:
            raise bad(f"{value} is above {spec.maximum}")
    elif spec.type == "boolean":
        if text not in ("true", "false"):
            raise bad(f"{text[:40]!r} is not true or false")
        value = text == "true"
    elif spec.type == "date":
        try:
            if not _DATE_RE.match(text):
                raise ValueError(text)
            value = date.fromisoformat(text)
        except ValueError:
            raise bad(f"{text[:40]!r} is not a YYYY-MM-DD date") from None
    elif spec.type == "single_choice":
        if text not in spec.options:
            raise bad(f"{text[:40]!r} is not one of {list(spec.options)}")
        value = text
    elif spec.type == "multi_choice":
        try:
            value = json.loads(text)
        except ValueError:
            value = None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise bad("multi-choice answers are a JSON array of option codes")
        unknown = [v for v in value if v not in spec.options]
        if unknown or len(set(value)) != len(value):
            raise bad(f"{unknown or value} are not distinct options of {list(spec.options)}")
    elif spec.type == "id_number":
        problem = id_number_problem(text)
        if problem:
            raise ValidationError(BAD_ID_NUMBER, f"answers[{spec.id!r}]: {problem}")
        value = text.strip().upper()
    else:  # text, phone
        if spec.max_length is not None and len(text) > spec.max_length:
            raise bad(f"{len(text)} characters, at most {spec.max_length}")
        value = text
    return value


def is_abnormal_value(spec: Field, value: Any) -> bool:
    """Whether a typed answer meets its field's abnormal rule."""
    if not spec.abnormal:
        return False
    (rule, limit), *_ = spec.abnormal.items()
    if rule == "not_empty":
        return bool(value) == bool(limit)
    if rule == "equals":
        return bool(value == limit)
    if rule == "in":
        return value in limit or (isinstance(value, list) and any(v in limit for v in value))
    number = float(value)
    return {
        "gte": number >= limit,
        "gt": number > limit,
        "lte": number <= limit,
        "lt": number < limit,
    }[rule]


def masked_answer(spec: Field, value: Any, text: str) -> str:
    """The answer as stored: the contract's string, personal data masked, number, integer,
    boolean and date answers as :func:`normal_answer` reads them (``"５"`` → ``"5"``)."""
    if spec.type in FOLDED_TYPES:
        return normal_answer(spec, text)
    if spec.type == "phone":
        return mask_phone(text)
    if spec.type == "id_number":
        return mask_id_number(text)
    if spec.type == "text":
        return scrub_text(text)
    if spec.type == "multi_choice":
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text.strip()


@dataclass(frozen=True)
class Checked:
    """A validated submission's answers: masked strings and the abnormal field ids."""

    answers: dict[str, str]
    flags: list[str] = field(default_factory=list)

    @property
    def abnormal(self) -> bool:
        return bool(self.flags)


def check_answers(definition: FormDefinition, answers: Mapping[str, str]) -> Checked:
    """Validate every answer against the definition; masked answers and abnormal flags.
    Raises the first of :func:`answer_problems` (ValidationError)."""
    checked, found = _checked_answers(definition, answers)
    if found:
        raise found[0]
    return checked


def answer_problems(
    definition: FormDefinition, answers: Mapping[str, str]
) -> list[ValidationError]:
    """Every problem of the answers (unknown questions, then each field in the definition's
    order); empty when :func:`check_answers` accepts them."""
    return _checked_answers(definition, answers)[1]


def _checked_answers(
    definition: FormDefinition, answers: Mapping[str, str]
) -> tuple[Checked, list[ValidationError]]:
    found: list[ValidationError] = []
    unknown = sorted(set(answers) - set(definition.fields))
    if unknown:
        found.append(
            ValidationError(
                UNKNOWN_QUESTION,
                f"{definition.form_id} v{definition.version} has no question {', '.join(unknown)}",
            )
        )
    out: dict[str, str] = {}
    flags: list[str] = []
    for spec in definition.fields.values():
        text = answers.get(spec.id)
        if text is None or (spec.required and not text.strip()):
            if spec.required:
                found.append(ValidationError(MISSING_ANSWER, f"answers[{spec.id!r}] is required"))
            continue
        try:
            value = parse_answer(spec, text)
        except ValidationError as exc:
            found.append(exc)
            continue
        out[spec.id] = masked_answer(spec, value, text)
        if is_abnormal_value(spec, value):
            flags.append(spec.id)
    return Checked(out, flags), found


# --- validate ------------------------------------------------------------------------------


def validate(record: Mapping[str, Any], now: datetime) -> Checked:
    """Raise ValidationError (with a reason code) when a decoded submission breaks a rule (the
    first of :func:`problems`); otherwise its masked answers and abnormal flags."""
    checked, found = _validated(record, now)
    if found:
        raise found[0]
    assert checked is not None
    return checked


def problems(record: Mapping[str, Any], now: datetime) -> list[ValidationError]:
    """Every rule a decoded submission breaks (empty when :func:`validate` accepts it), in the
    order ``validate`` checks them; its first is what ``validate`` raises. The answers are
    checked only when the form and version have a definition."""
    return _validated(record, now)[1]


def _validated(
    record: Mapping[str, Any], now: datetime
) -> tuple[Checked | None, list[ValidationError]]:
    found: list[ValidationError] = []
    definition: FormDefinition | None = None
    try:
        definition = definition_for(
            str(record.get("form_id")), int(record.get("form_version") or 0)
        )
    except ValidationError as exc:
        found.append(exc)
    code = str(record.get("region_code") or "")
    if not re.fullmatch(r"\d{12}", code) or not divisions.is_known(code):
        found.append(
            ValidationError(UNKNOWN_REGION, f"region_code {code!r} is not a known division")
        )
    elif divisions.get(code).level != "village":
        found.append(
            ValidationError(UNKNOWN_REGION, f"region_code {code} is not a community/village")
        )
    submitted: datetime = record["submitted_at"]
    if submitted > now + MAX_FUTURE:
        found.append(
            ValidationError(BAD_TIMESTAMP, f"submitted_at {submitted.isoformat()} is in future")
        )
    elif submitted < now - MAX_AGE:
        found.append(
            ValidationError(
                BAD_TIMESTAMP, f"submitted_at {submitted.isoformat()} is over three years old"
            )
        )
    number = (record.get("respondent") or {}).get("id_number")
    if number:
        problem = id_number_problem(number)
        if problem:
            found.append(ValidationError(BAD_ID_NUMBER, f"respondent.id_number: {problem}"))
    if definition is None:
        return None, found
    checked, wrong = _checked_answers(definition, record.get("answers") or {})
    return checked, found + wrong


def respondent_key(record: Mapping[str, Any], salt: str) -> str:
    """Who a submission is about, pseudonymised: the salted hash of the respondent id, or
    ``anon-<submission_id>`` for an anonymous respondent (who cannot resubmit)."""
    person = str((record.get("respondent") or {}).get("id") or "")
    return pseudonym(person, salt) if person else f"anon-{record['submission_id']}"


def masked_record(record: Mapping[str, Any], salt: str) -> dict[str, Any]:
    """A copy of a submission safe to log or dead-letter: the respondent and free text masked."""
    out = dict(record)
    if out.get("respondent") is not None:
        out["respondent"] = {**masked_person(out["respondent"], salt), "role": "respondent"}
    if isinstance(out.get("answers"), Mapping):
        out["answers"] = {k: scrub_text(str(v)) for k, v in out["answers"].items()}
    return out


def submission(
    record: Mapping[str, Any],
    checked: Checked,
    *,
    salt: str,
    partition: int,
    offset: int,
    received_at: datetime,
) -> FormEntry:
    """A validated submission as a masked, enriched entry (JSON-friendly)."""
    place = enrich(record["region_code"])
    return {
        "submission_id": record["submission_id"],
        "form_id": record["form_id"],
        "form_version": int(record["form_version"]),
        "respondent_key": respondent_key(record, salt),
        "respondent": masked_person(record.get("respondent"), salt),
        "region_code": record["region_code"],
        "codes": place.codes,
        "names": place.names,
        "urban_rural": place.urban_rural,
        "channel": record["channel"],
        "answers": checked.answers,
        "abnormal": checked.abnormal,
        "flags": list(checked.flags),
        "submitted_ms": to_ms(record["submitted_at"]),
        "received_ms": to_ms(received_at),
        "partition": partition,
        "offset": offset,
    }


# --- latest per (form, respondent) ------------------------------------------------------------


def merge(state: FormState | None, entry: FormEntry) -> tuple[FormState, str]:
    """Fold a submission into its respondent's state; returns (new state, outcome).

    Outcomes: ``first``; ``replaces`` (newer than the latest, by submitted_at then
    submission id); ``late`` (an older submission that arrived after a newer one: counted, but
    the latest answers stay); ``duplicate`` (a submission id seen before: a producer retry or a
    replay, changes nothing).
    """
    new: FormState
    if state is None:
        new = {"latest": entry.copy(), "submissions": 1, "abnormal_submissions": 0, "seen": [],
               "revision": 0, "alert": None}  # fmt: skip
        outcome = "first"
    elif entry["submission_id"] in state["seen"]:
        return state.copy(), "duplicate"
    else:
        new = state.copy()
        new["submissions"] = int(state["submissions"]) + 1
        latest = state["latest"]
        newer = (entry["submitted_ms"], entry["submission_id"]) >= (
            latest["submitted_ms"],
            latest["submission_id"],
        )
        outcome = "replaces" if newer else "late"
        if newer:
            new["latest"] = entry.copy()
    new["abnormal_submissions"] = int(new["abnormal_submissions"]) + int(bool(entry["abnormal"]))
    new["seen"] = [*new["seen"], entry["submission_id"]][-MAX_SEEN:]
    new["revision"] = int(new["revision"]) + 1
    return new, outcome


FORM_COLUMNS = (
    "form_id", "form_version", "respondent_key", "submission_id", "region_code",
    "province_code", "city_code", "county_code", "township_code",
    "province", "city", "county", "township", "village", "urban_rural", "channel",
    "submitted_at", "received_at", "answers", "abnormal", "abnormal_flags", "submissions",
    "abnormal_submissions", "respondent_name", "respondent_phone", "respondent_id_number",
    "source_partition", "source_offset", "version",
)  # fmt: skip


def form_row(state: FormState) -> Row:
    """A respondent's state as a gov.form_submissions row (FORM_COLUMNS order): the latest
    submission's answers with the respondent's counts; version = the state's revision."""
    e = state["latest"]
    codes, names, who = e["codes"], e["names"], e["respondent"]
    return [
        e["form_id"], e["form_version"], e["respondent_key"], e["submission_id"],
        e["region_code"], codes["province"], codes["city"], codes["county"], codes["township"],
        names["province"], names["city"], names["county"], names["township"], names["village"],
        e["urban_rural"], e["channel"], from_ms(e["submitted_ms"]), from_ms(e["received_ms"]),
        dict(e["answers"]), bool(e["abnormal"]), list(e["flags"]), state["submissions"],
        state["abnormal_submissions"], who["name"], who["phone"], who["id_number"],
        e["partition"], e["offset"], state["revision"],
    ]  # fmt: skip


def state_from_row(row: Mapping[str, Any], alert: AlertState | None) -> FormState:
    """A respondent's state rebuilt from their gov.form_submissions row (a dict by
    FORM_COLUMNS name) and the state of their derived alert (``alerts.state_from_row`` of its
    gov.alerts row, or None), for a table that lost its changelog (pipelines/restore.py).

    The row keeps the latest submission and the counts; of the submission ids seen only the
    latest is known again, so an earlier submission replayed after the loss is counted as a
    late one. The revision continues from the row's version, so the next row replaces it."""
    r, key = row, str(row["respondent_key"])
    entry: FormEntry = {
        "submission_id": str(r["submission_id"]), "form_id": str(r["form_id"]),
        "form_version": int(r["form_version"]), "respondent_key": str(r["respondent_key"]),
        "respondent": {
            "hash": "" if key.startswith("anon-") else key,
            "name": str(r["respondent_name"]), "phone": str(r["respondent_phone"]),
            "id_number": str(r["respondent_id_number"]),
        },
        "region_code": str(r["region_code"]),
        "codes": cast(Codes, {level: str(r[f"{level}_code"])
                              for level in ("province", "city", "county", "township")}),
        "names": cast(Names, {level: str(r[level])
                              for level in ("province", "city", "county", "township", "village")}),
        "urban_rural": str(r["urban_rural"]), "channel": str(r["channel"]),
        "answers": {str(k): str(v) for k, v in dict(r["answers"]).items()},
        "abnormal": bool(r["abnormal"]), "flags": [str(f) for f in r["abnormal_flags"]],
        "submitted_ms": to_ms(r["submitted_at"]), "received_ms": to_ms(r["received_at"]),
        "partition": int(r["source_partition"]), "offset": int(r["source_offset"]),
    }  # fmt: skip
    return {
        "latest": entry, "submissions": int(r["submissions"]),
        "abnormal_submissions": int(r["abnormal_submissions"]), "seen": [entry["submission_id"]],
        "revision": int(r["version"]), "alert": alert.copy() if alert is not None else None,
    }  # fmt: skip


def alert_root(form_id: str, respondent_key: str) -> str:
    """The prefix of every derived alert id of one respondent of one form."""
    return f"govstream-form-{form_id}-{respondent_key}-"


# --- derived alerts (source form) -------------------------------------------------------------


def _open_alert(state: FormState) -> AlertState | None:
    alert = state.get("alert")
    return alert if alert is not None and alert["status"] == alerts.ACTIVE else None


def derived_alert(state: FormState) -> dict[str, Any] | None:
    """The alert message (in the decoded alert-contract shape) a respondent's state calls for:
    an Alert when the latest answers became abnormal, a Cancel of the open alert when they are
    normal again, None when nothing changed. Names no person."""
    e, open_alert = state["latest"], _open_alert(state)
    if bool(e["abnormal"]) == (open_alert is not None):
        return None
    definition = definition_for(e["form_id"], e["form_version"])
    labels = "、".join(definition.fields[f].label for f in e["flags"] if f in definition.fields)
    place = e["names"]["village"] or e["region_code"]
    sent = from_ms(e["submitted_ms"])
    what = f"{definition.title}（{e['form_id']} v{e['form_version']}）"
    references = [open_alert["root_id"]] if open_alert is not None else []
    return {
        "alert_id": f"{alert_root(e['form_id'], e['respondent_key'])}{state['revision']}",
        "sender": "govstream/form",
        "sent_at": sent,
        "msg_type": "Cancel" if references else "Alert",
        "references": references,
        "hazard": "other",
        "hazard_local": definition.alert_hazard,
        "level": open_alert["level"] if open_alert is not None else definition.alert_level,
        "region_codes": [e["region_code"]],
        "headline": f"{place}{definition.title}"
        + ("异常解除" if references else f"异常：{labels}"),
        "description": f"{what}复报正常。" if references else f"{what}回报异常项：{labels}。",
        "instruction": "",
        "effective": sent,
        "expires": None,
        "source": "form",
    }


def follow_up(
    state: FormState, *, received_at: datetime, partition: int, offset: int
) -> tuple[FormState, list[Row], list[Row]]:
    """Raise or cancel the respondent's derived alert as the latest answers call for; returns
    the new state (holding the alert's state) and the gov.alerts / gov.alert_targets rows.
    When nothing changed, the rows of the current alert are given again (same version, so a
    replay after a crash re-inserts what may have been lost, and a duplicate insert collapses)."""
    record = derived_alert(state)
    new = state.copy()
    if record is not None:
        previous = _open_alert(state)
        alert_state, change = alerts.apply(
            previous, record, received_at=received_at, partition=partition, offset=offset
        )
        new["alert"] = alert_state
        return new, [alerts.alert_row(alert_state)], alerts.target_rows(alert_state, change.lifted)
    current = state.get("alert")
    if current is None:
        return new, [], []
    return new, [alerts.alert_row(current)], alerts.target_rows(current)


# --- roster ----------------------------------------------------------------------------------

ROSTER_COLUMNS = (
    "code", "level", "name", "parent", "province_code", "city_code", "county_code",
    "township_code", "province", "city", "county", "township", "urban_rural", "population",
)  # fmt: skip


def roster_rows() -> Iterator[list[Any]]:
    """Every division with its registered population (villages: as registered; higher levels:
    the sum of their villages), for gov.roster (ROSTER_COLUMNS order)."""
    names: dict[str, str] = {}
    for d in divisions.all_divisions():
        names[d.code] = d.name
        up = {level: "" for level in ("province", "city", "county", "township")}
        for level, length in (("province", 2), ("city", 4), ("county", 6), ("township", 9)):
            if len(d.prefix) > length or d.level == level:
                up[level] = d.code[:length].ljust(12, "0")
        yield [
            d.code, d.level, d.name, d.parent or "", up["province"], up["city"], up["county"],
            up["township"], names.get(up["province"], ""), names.get(up["city"], ""),
            names.get(up["county"], ""), names.get(up["township"], ""), d.urban_rural,
            d.population,
        ]  # fmt: skip
