"""The public event contract: Avro schemas, subjects, message keys, and JSON → record conversion.

The schemas live in ``schemas/avro/<topic>.avsc`` (``schemas/avro/CONTRACT.md`` explains them),
installed inside the package as ``pipelines.schemas`` (:mod:`pipelines.resources`); this module is
the only code that knows where. Everything here is pure: no Kafka, no registry.

:func:`from_json` turns an event the way upstream developers write it in JSON (timestamps as
ISO-8601 text with a zone or as epoch milliseconds, optional fields left out, form answers as
plain JSON values) into the record the Avro serializer accepts, or raises a
:class:`FieldError` (a :class:`~pipelines.errors.ValidationError`) naming the field.
"""

from __future__ import annotations

import copy
import difflib
import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

from fastavro import parse_schema
from fastavro.validation import ValidationError as AvroValidationError
from fastavro.validation import validate

from pipelines import reasons
from pipelines.errors import ConfigError, ValidationError
from pipelines.resources import schemas_dir

#: ``schemas/avro`` as installed (checkout or wheel): the ``.avsc`` files, CONTRACT.md, examples/
SCHEMA_DIR = schemas_dir("avro")

REPORT = "report"
FORM_SUBMISSION = "form-submission"
ALERT = "alert"
DEAD_LETTER = "dead-letter"

#: Every topic of the pipeline. The dead-letter topic has no Avro contract: it carries the
#: original key, value bytes and headers of the bad event (see gov.dead_letters).
TOPICS: tuple[str, ...] = (REPORT, FORM_SUBMISSION, ALERT, DEAD_LETTER)
#: Topics whose values are Avro records with a schema in ``schemas/avro``.
AVRO_TOPICS: tuple[str, ...] = (REPORT, FORM_SUBMISSION, ALERT)

# reason codes (gov.dead_letters.reason)
NOT_AN_OBJECT = reasons.code("not_a_json_object")
MISSING_FIELD = reasons.code("missing_field")
UNKNOWN_FIELD = reasons.code("unknown_field")
WRONG_TYPE = reasons.code("wrong_type")
BAD_TIMESTAMP = reasons.code("bad_timestamp")
BAD_ENUM = reasons.code("unknown_enum_symbol")
OUT_OF_RANGE = reasons.code("number_out_of_range")
BAD_ANSWER = reasons.code("bad_answer")
INVALID = reasons.code("invalid_record")
MISSING_KEY = reasons.code("missing_key")
BAD_KEY = reasons.code("bad_key")  # no key, or not the contract's key (key_for)
EVENT_TOO_LARGE = reasons.code("event_too_large")

#: Largest encoded event (message key + Confluent-framed Avro value, in bytes) the contract
#: allows. Source: Kafka's defaults — librdkafka's producer ``message.max.bytes`` is
#: 1,000,000 (key, value, headers and record overhead counted) and the broker's
#: ``message.max.bytes`` / topic ``max.message.bytes`` is 1,048,588 per record batch. 900,000
#: leaves 100,000 bytes for headers and record/batch framing under both, so an event within
#: the limit is taken by the client and by a broker with default settings. See CONTRACT.md.
MAX_EVENT_BYTES = 900_000

#: Epoch-millisecond values outside [1973-03-03, 2100-01-01) are refused: smaller ones are
#: almost always epoch *seconds*, larger ones microseconds.
MIN_EPOCH_MS = 100_000_000_000
MAX_EPOCH_MS = 4_102_444_800_000

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_INT_RANGE = {"int": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}
_SUBMIT = "SUBMIT"


class UnknownTopicError(ConfigError):
    """A topic name that is not one of :data:`TOPICS`, or has no Avro contract."""


class FieldError(ValidationError):
    """An event breaks the Avro contract at ``field`` (a path such as ``reporter.phone``)."""

    def __init__(self, reason: str, field: str, message: str, *, topic: str | None = None):
        super().__init__(reason, f"{field or '(record)'}: {message}")
        self.field = field


# --- schemas ---------------------------------------------------------------------------------


def _avro_topic(topic: str) -> str:
    if topic not in TOPICS:
        raise UnknownTopicError(f"unknown topic {topic!r}; choose from {list(TOPICS)}")
    if topic not in AVRO_TOPICS:
        raise UnknownTopicError(
            f"topic {topic!r} has no Avro contract (it carries the original bytes)"
        )
    return topic


def schema_path(topic: str) -> Path:
    """The ``.avsc`` file of ``topic``."""
    return SCHEMA_DIR / f"{_avro_topic(topic)}.avsc"


def load_schema(topic: str) -> str:
    """The schema text of ``topic``'s values, as registered under :func:`subject_for`."""
    return schema_path(topic).read_text(encoding="utf-8")


@cache
def parsed_schema(topic: str) -> dict[str, Any]:
    """fastavro's parsed schema of ``topic`` (cached; treat it as read-only)."""
    parsed = parse_schema(json.loads(load_schema(topic)))
    assert isinstance(parsed, dict)
    return parsed


def subject_for(topic: str) -> str:
    """Registry subject of ``topic``'s values under TopicNameStrategy (keys are plain strings)."""
    return f"{_avro_topic(topic)}-value"


# --- message keys ----------------------------------------------------------------------------


def _key_part(record: Mapping[str, Any], name: str, topic: str) -> str:
    value = record.get(name)
    if not isinstance(value, str) or not value:
        raise FieldError(MISSING_KEY, name, "is needed for the message key")
    return value


def key_for(topic: str, record: Mapping[str, Any]) -> str:
    """The message key of ``record`` on ``topic`` (UTF-8 string; see CONTRACT.md for why).

    - report: ``report_id`` — every step of a report on one partition, in order.
    - form-submission: ``form_id:respondent id`` — a resubmission follows and replaces the
      earlier one; an anonymous respondent (empty id) is keyed by ``submission_id`` instead.
    - alert: the root alert id — ``references[0]`` for an Update or Cancel, else ``alert_id``.
    """
    _avro_topic(topic)
    if topic == REPORT:
        return _key_part(record, "report_id", topic)
    if topic == FORM_SUBMISSION:
        form_id = _key_part(record, "form_id", topic)
        respondent = record.get("respondent")
        person = respondent.get("id") if isinstance(respondent, Mapping) else None
        if not isinstance(person, str) or not person:
            person = _key_part(record, "submission_id", topic)
        return f"{form_id}:{person}"
    references = record.get("references") or []
    if isinstance(references, list) and references:
        root = references[0]
        if not isinstance(root, str) or not root:
            raise FieldError(MISSING_KEY, "references[0]", "is not an alert id")
        return root
    return _key_part(record, "alert_id", topic)


# --- size --------------------------------------------------------------------------------------


def _size(part: str | bytes | None) -> int:
    if part is None:
        return 0
    return len(part.encode("utf-8")) if isinstance(part, str) else len(part)


def largest_field(record: Mapping[str, Any]) -> tuple[str, int]:
    """(path, UTF-8 bytes) of the longest text of a record: where an oversized event is big.

    Walks nested records, maps and lists (``reporter.name``, ``answers.q3``, ``images[0]``);
    ``("", 0)`` when the record holds no text.
    """
    best: tuple[str, int] = ("", 0)
    todo: list[tuple[str, Any]] = [("", record)]
    while todo:
        path, value = todo.pop()
        if isinstance(value, str):
            size = len(value.encode("utf-8"))
            if size > best[1]:
                best = (path, size)
        elif isinstance(value, bytes) and len(value) > best[1]:
            best = (path, len(value))
        elif isinstance(value, Mapping):
            todo += [(_join(path, str(k)), v) for k, v in value.items()]
        elif isinstance(value, list):
            todo += [(f"{path}[{i}]", v) for i, v in enumerate(value)]
    return best


def check_event_size(
    value: bytes | None,
    key: str | bytes | None = None,
    *,
    record: Mapping[str, Any] | None = None,
    limit: int = MAX_EVENT_BYTES,
) -> int:
    """The encoded size of an event (key + value bytes); :class:`FieldError` over ``limit``.

    ``value`` is the Confluent-framed Avro value as sent (or as a consumer received it), ``key``
    the message key. The error's reason is ``event_too_large``, its message ``encoded event too
    large (X bytes > 900,000 bytes)``; with the decoded ``record`` given, the error names its
    largest text field (``description``) instead of ``(record)``. The limit and its source:
    :data:`MAX_EVENT_BYTES`. The producer calls this before sending; a consumer can call it
    on what arrives, before decoding, to dead-letter an event a broker took anyway.
    """
    size = _size(key) + _size(value)
    if size <= limit:
        return size
    where, detail = "", ""
    if record is not None:
        where, biggest = largest_field(record)
        if where:
            detail = f"; {where} alone is {biggest:,} bytes"
    raise FieldError(
        EVENT_TOO_LARGE,
        where,
        f"encoded event too large ({size:,} bytes > {limit:,} bytes){detail}",
    )


# --- report rules that Avro cannot express ---------------------------------------------------


#: report actions whose ``note`` must say something (the result, the reason)
NOTE_REQUIRED = ("RESOLVE", "REOPEN", "CANCEL", "TRANSFER")
#: ``satisfaction`` of a REVISIT that did not reach the resident (no ``resident_solved`` then)
UNREACHABLE = "unreachable"


def action_problems(record: Mapping[str, Any]) -> list[str]:
    """What a report record lacks for its ``action`` (empty when complete); see CONTRACT.md.

    REVISIT (回访) needs ``satisfaction``, and ``resident_solved`` unless the resident was
    ``unreachable`` (then it must be null); TRANSFER (转派) needs ``assigned_department`` and a
    ``note`` (why); no other action may carry ``satisfaction`` or ``resident_solved``. Only a
    DISPATCH may carry ``corrected_category`` (the dispatcher's correction of the category:
    a SUBMIT's category is the pipeline's, a later step's department is its own business);
    whether the code is in the taxonomy is the worker's check (``reports.validate``)."""
    action = record.get("action")
    problems: list[str] = []
    lat, lon = record.get("lat"), record.get("lon")
    if (lat is None) != (lon is None):
        problems.append("lat and lon must be sent together")
    if action != "DISPATCH" and record.get("corrected_category") is not None:
        problems.append(f"{action} carries corrected_category (DISPATCH only)")
    if action == _SUBMIT:
        if not (record.get("description") or "").strip():
            problems.append("SUBMIT needs a non-empty description")
        if record.get("reporter") is None:
            problems.append("SUBMIT needs the reporter")
        if not (record.get("address") or "").strip() and lat is None:
            problems.append("SUBMIT needs an address or lat/lon")
        return problems
    by_reporter = action == "CANCEL" and record.get("reporter") is not None
    if record.get("operator") is None and not by_reporter:
        problems.append(f"{action} needs the operator")
    if action in ("DISPATCH", "TRANSFER") and not record.get("assigned_department"):
        problems.append(f"{action} needs assigned_department")
    if action in NOTE_REQUIRED and not (record.get("note") or "").strip():
        problems.append(f"{action} needs a note")
    rating, solved = record.get("satisfaction"), record.get("resident_solved")
    if action == "REVISIT":
        if rating is None:
            problems.append("REVISIT needs satisfaction")
        elif rating != UNREACHABLE and solved is None:
            problems.append("REVISIT needs resident_solved when the resident was reached")
        elif rating == UNREACHABLE and solved is not None:
            problems.append("REVISIT of an unreachable resident has no resident_solved")
    elif rating is not None or solved is not None:
        problems.append(f"{action} carries satisfaction/resident_solved (REVISIT only)")
    return problems


# --- JSON → record ---------------------------------------------------------------------------


def encode_answer(value: Any, field: str = "answer") -> str:
    """A form answer as the string the contract stores (see the ``answers`` doc)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise FieldError(BAD_ANSWER, field, f"{value} is not a finite number")
        return repr(value)
    if isinstance(value, list):
        if not all(isinstance(v, str) for v in value):
            raise FieldError(BAD_ANSWER, field, "multi-choice answers are lists of option codes")
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    what = "null (leave unanswered questions out)" if value is None else type(value).__name__
    raise FieldError(BAD_ANSWER, field, f"an answer cannot be {what}")


def parse_timestamp(value: Any, field: str = "timestamp") -> datetime:
    """ISO-8601 text with a zone, epoch milliseconds or an aware datetime → UTC, millisecond."""
    if isinstance(value, bool) or not isinstance(value, int | str | datetime):
        raise FieldError(
            BAD_TIMESTAMP,
            field,
            f"expected ISO-8601 text with a zone or epoch milliseconds, got {type(value).__name__}",
        )
    if isinstance(value, int):
        if not MIN_EPOCH_MS <= value < MAX_EPOCH_MS:
            hint = " (epoch seconds? send milliseconds)" if 0 <= value < MIN_EPOCH_MS else ""
            raise FieldError(
                BAD_TIMESTAMP, field, f"{value} is not epoch milliseconds of 1973-2099{hint}"
            )
        return _EPOCH + timedelta(milliseconds=value)
    if isinstance(value, str):
        try:
            stamp = datetime.fromisoformat(value)
        except ValueError:
            raise FieldError(BAD_TIMESTAMP, field, f"{value!r} is not ISO-8601") from None
    else:
        stamp = value
    if stamp.tzinfo is None or stamp.utcoffset() is None:
        raise FieldError(BAD_TIMESTAMP, field, f"{value!s} has no time zone; add +08:00 or Z")
    stamp = stamp.astimezone(UTC)
    stamp = stamp.replace(microsecond=stamp.microsecond // 1000 * 1000)
    millis = (stamp - _EPOCH) // timedelta(milliseconds=1)
    if not MIN_EPOCH_MS <= millis < MAX_EPOCH_MS:
        raise FieldError(BAD_TIMESTAMP, field, f"{value!s} is not between 1973 and 2099")
    return stamp


def from_json(topic: str, obj: Any) -> dict[str, Any]:
    """The Avro record for ``obj`` (one parsed JSON line) on ``topic``, or :class:`FieldError`.

    Missing optional fields (and ``null`` for a non-nullable field with a default) take the
    schema default; unknown fields are refused, so typos do not vanish silently. Form answers
    may be plain JSON values and are encoded by :func:`encode_answer`.
    """
    schema = parsed_schema(topic)
    if not isinstance(obj, Mapping):
        raise FieldError(NOT_AN_OBJECT, "", f"expected a JSON object, got {type(obj).__name__}")
    if topic == FORM_SUBMISSION and isinstance(obj.get("answers"), Mapping):
        obj = {
            **obj,
            "answers": {k: encode_answer(v, f'answers["{k}"]') for k, v in obj["answers"].items()},
        }
    named: dict[str, Any] = schema["__named_schemas"]
    record = _convert(obj, schema, "", named)
    try:
        validate(record, schema, raise_errors=True)
    except AvroValidationError as exc:  # a safety net: _convert should have caught it
        raise _translate(exc, topic) from exc
    assert isinstance(record, dict)
    return record


def _translate(exc: AvroValidationError, topic: str) -> FieldError:
    errors = list(getattr(exc, "errors", ()) or ())
    if not errors:
        return FieldError(INVALID, "", str(exc))
    first = errors[-1]
    field = str(getattr(first, "field", "") or "")
    namespace = str(parsed_schema(topic)["name"]).rpartition(".")[0] + "."
    field = field.removeprefix(namespace)
    return FieldError(
        INVALID, field, f"{getattr(first, 'datum', None)!r} does not match the schema"
    )


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _type_name(schema: Any) -> str:
    if isinstance(schema, str):
        return schema.rpartition(".")[2]
    if isinstance(schema, list):
        return " or ".join(_type_name(s) for s in schema)
    return str(schema.get("logicalType") or schema.get("name") or schema["type"]).rpartition(".")[2]


def _wrong(path: str, value: Any, schema: Any) -> FieldError:
    return FieldError(
        WRONG_TYPE, path, f"expected {_type_name(schema)}, got {type(value).__name__} {value!r:.60}"
    )


def _convert(value: Any, schema: Any, path: str, named: Mapping[str, Any]) -> Any:
    if isinstance(schema, str):
        if schema in named:
            return _convert(value, named[schema], path, named)
        return _primitive(value, schema, path)
    if isinstance(schema, list):
        return _union(value, schema, path, named)
    if schema.get("logicalType") == "timestamp-millis":
        return parse_timestamp(value, path)
    kind = schema["type"]
    if kind == "record":
        return _record(value, schema, path, named)
    if kind == "enum":
        if not isinstance(value, str):
            raise _wrong(path, value, schema)
        if value not in schema["symbols"]:
            symbols = [s for s in schema["symbols"] if s != schema.get("default")]
            raise FieldError(BAD_ENUM, path, f"{value!r} is not one of {symbols}")
        return value
    if kind == "array":
        if not isinstance(value, list):
            raise _wrong(path, value, schema)
        return [_convert(v, schema["items"], f"{path}[{i}]", named) for i, v in enumerate(value)]
    if kind == "map":
        if not isinstance(value, Mapping):
            raise _wrong(path, value, schema)
        return {
            str(k): _convert(v, schema["values"], f'{path}["{k}"]', named) for k, v in value.items()
        }
    return _primitive(value, kind, path)


def _union(value: Any, branches: list[Any], path: str, named: Mapping[str, Any]) -> Any:
    if value is None and "null" in branches:
        return None
    others = [b for b in branches if b != "null"]
    if len(others) == 1:
        return _convert(value, others[0], path, named)
    for branch in others:
        try:
            return _convert(value, branch, path, named)
        except FieldError:
            continue
    raise _wrong(path, value, branches)


def _record(value: Any, schema: Mapping[str, Any], path: str, named: Mapping[str, Any]) -> Any:
    if not isinstance(value, Mapping):
        raise _wrong(path, value, schema)
    fields = schema["fields"]
    names = [f["name"] for f in fields]
    for key in value:
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise FieldError(UNKNOWN_FIELD, _join(path, str(key)), f"is not in the contract{hint}")
    out: dict[str, Any] = {}
    for field in fields:
        name, sub = field["name"], _join(path, field["name"])
        given = value.get(name)
        if given is None and "default" in field and not _nullable(field["type"]):
            out[name] = copy.deepcopy(field["default"])
        elif name in value:
            if given is None and not _nullable(field["type"]):
                raise FieldError(MISSING_FIELD, sub, "is required and cannot be null")
            out[name] = _convert(given, field["type"], sub, named)
        elif "default" in field:
            out[name] = copy.deepcopy(field["default"])
        else:
            raise FieldError(MISSING_FIELD, sub, "is required")
    return out


def _nullable(schema: Any) -> bool:
    return schema == "null" or (isinstance(schema, list) and "null" in schema)


def _primitive(value: Any, kind: str, path: str) -> Any:
    if kind == "null":
        if value is not None:
            raise _wrong(path, value, kind)
        return None
    if kind == "string":
        if not isinstance(value, str):
            raise _wrong(path, value, kind)
        return value
    if kind == "boolean":
        if not isinstance(value, bool):
            raise _wrong(path, value, kind)
        return value
    if kind in _INT_RANGE:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _wrong(path, value, kind)
        low, high = _INT_RANGE[kind]
        if not low <= value <= high:
            raise FieldError(OUT_OF_RANGE, path, f"{value} does not fit an Avro {kind}")
        return value
    if kind in ("float", "double"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _wrong(path, value, kind)
        return float(value)
    if kind == "bytes":
        if not isinstance(value, bytes):
            raise _wrong(path, value, kind)
        return value
    raise FieldError(INVALID, path, f"unsupported schema type {kind!r}")


def check_key(topic: str, key: bytes | None, record: dict[str, Any]) -> bytes:
    """The message key, when it is the contract's key for ``record``; else ValidationError
    ``bad_key`` (a keyless or mis-keyed event would share another's table state)."""
    expected = key_for(topic, record)
    if key is None or key == b"":
        raise ValidationError(
            BAD_KEY, f"the message has no key; the contract's key is {expected!r}"
        )
    if key != expected.encode():
        shown = key[:80].decode("utf-8", "replace")
        raise ValidationError(BAD_KEY, f"key {shown!r} is not the contract's key {expected!r}")
    return key
