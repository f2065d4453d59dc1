"""The Avro event contract: schema rules, examples, keys, JSON conversion, evolution."""

from __future__ import annotations

import copy
import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.validation import ValidationError as AvroValidationError
from fastavro.validation import validate

from pipelines import contracts
from pipelines.contracts import (
    AVRO_TOPICS,
    FieldError,
    UnknownTopicError,
    action_problems,
    encode_answer,
    from_json,
    key_for,
    load_schema,
    parse_timestamp,
    parsed_schema,
    subject_for,
)
from pipelines.errors import ConfigError, ValidationError
from pipelines.pii import id_number_problem, is_mobile

pytestmark = pytest.mark.unit

EXAMPLES = contracts.SCHEMA_DIR / "examples"
WARNINGS_CSV = Path(__file__).resolve().parents[2] / "pipelines" / "data" / "weather_warnings.csv"


def raw(topic: str) -> dict[str, Any]:
    schema = json.loads(load_schema(topic))
    assert isinstance(schema, dict)
    return schema


def examples(topic: str) -> list[dict[str, Any]]:
    lines = (EXAMPLES / f"{topic}.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def walk_types(schema: Any) -> Iterator[Any]:
    """Every type definition inside a raw schema (records, enums, arrays, unions, ...)."""
    yield schema
    if isinstance(schema, list):
        for branch in schema:
            yield from walk_types(branch)
    elif isinstance(schema, dict):
        kind = schema.get("type")
        if kind == "record":
            for field in schema["fields"]:
                yield from walk_types(field["type"])
        elif kind == "array":
            yield from walk_types(schema["items"])
        elif kind == "map":
            yield from walk_types(schema["values"])
        elif isinstance(kind, dict | list):
            yield from walk_types(kind)


def all_fields(schema: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    for node in walk_types(schema):
        if isinstance(node, dict) and node.get("type") == "record":
            for field in node["fields"]:
                yield f"{node['name']}.{field['name']}", field


def roundtrip(schema: Any, record: dict[str, Any], reader: Any = None) -> Any:
    out = io.BytesIO()
    schemaless_writer(out, parse_schema(schema), record)
    out.seek(0)
    reader_schema = parse_schema(reader) if reader is not None else None
    return schemaless_reader(out, parse_schema(schema), reader_schema)


# --- schema rules ------------------------------------------------------------------------


def test_topics_and_subjects() -> None:
    assert contracts.TOPICS == ("report", "form-submission", "alert", "dead-letter")
    assert [subject_for(t) for t in AVRO_TOPICS] == [
        "report-value",
        "form-submission-value",
        "alert-value",
    ]
    with pytest.raises(UnknownTopicError, match="no Avro contract"):
        load_schema("dead-letter")
    with pytest.raises(ConfigError, match="unknown topic"):
        subject_for("reports")


@pytest.mark.parametrize("topic", AVRO_TOPICS)
def test_schema_parses_in_one_namespace(topic: str) -> None:
    schema = parsed_schema(topic)
    assert schema["type"] == "record"
    assert schema["name"].startswith("cn.govstream.v1.")
    assert parsed_schema(topic) is schema  # cached


@pytest.mark.parametrize("topic", AVRO_TOPICS)
def test_every_field_and_named_type_has_a_doc(topic: str) -> None:
    schema = raw(topic)
    undocumented = [name for name, field in all_fields(schema) if not field.get("doc")]
    assert undocumented == []
    named = [n for n in walk_types(schema) if isinstance(n, dict) and "name" in n]
    assert named and all(n.get("doc") for n in named)


@pytest.mark.parametrize("topic", AVRO_TOPICS)
def test_every_enum_has_a_default_symbol(topic: str) -> None:
    enums = [n for n in walk_types(raw(topic)) if isinstance(n, dict) and n.get("type") == "enum"]
    assert enums
    for enum in enums:
        assert enum.get("default") in enum["symbols"], enum["name"]


@pytest.mark.parametrize("topic", AVRO_TOPICS)
def test_times_are_timestamp_millis_and_optionals_default_null(topic: str) -> None:
    schema = raw(topic)
    longs = [
        n
        for n in walk_types(schema)
        if n == "long" or (isinstance(n, dict) and n.get("type") == "long")
    ]
    assert longs and all(
        isinstance(n, dict) and n.get("logicalType") == "timestamp-millis" for n in longs
    )
    for name, field in all_fields(schema):
        if name.endswith("_at") or field["name"] in ("effective", "expires"):
            kind = field["type"]
            kind = kind[1] if isinstance(kind, list) else kind
            assert kind == {"type": "long", "logicalType": "timestamp-millis"}, name
        if isinstance(field["type"], list):
            assert field["type"][0] == "null" and len(field["type"]) == 2, name
            assert "default" in field and field["default"] is None, name


def test_shared_types_are_identical_across_schemas() -> None:
    def named(topic: str, name: str) -> dict[str, Any]:
        found = [n for n in walk_types(raw(topic)) if isinstance(n, dict) and n.get("name") == name]
        assert len(found) == 1
        return found[0]

    for name in ("Person", "Channel"):
        assert named("report", name) == named("form-submission", name)


def test_hazard_enum_is_the_cma_table_plus_other() -> None:
    with WARNINGS_CSV.open(encoding="utf-8") as f:
        cma = [row["hazard_en"] for row in csv.DictReader(f)]
    assert len(cma) == 14
    hazard = next(f for _, f in all_fields(raw("alert")) if f["name"] == "hazard")
    assert hazard["type"]["symbols"] == [*cma, "other"]


# --- examples ----------------------------------------------------------------------------


@pytest.mark.parametrize("topic", AVRO_TOPICS)
def test_examples_convert_and_roundtrip_unchanged(topic: str) -> None:
    lines = examples(topic)
    assert len(lines) >= 3
    for obj in lines:
        record = from_json(topic, obj)
        assert roundtrip(raw(topic), record) == record
        validate(record, parsed_schema(topic), raise_errors=True)


def test_example_reports_meet_their_action_rules_and_personal_data_is_well_formed() -> None:
    for topic in ("report", "form-submission"):
        for obj in examples(topic):
            record = from_json(topic, obj)
            if topic == "report":
                assert action_problems(record) == []
            person = record.get("reporter") or record.get("respondent")
            if person and person["id_number"]:
                assert id_number_problem(person["id_number"]) is None
            if person and person["phone"].startswith("1"):
                assert is_mobile(person["phone"])
            assert len(record["region_code"]) == 12 and record["region_code"].isdigit()


def test_iso_and_epoch_millis_give_the_same_instant() -> None:
    step = examples("report")[2]
    iso = {**step, "occurred_at": "2024-06-12T09:05:00+08:00"}
    millis = {**step, "occurred_at": 1718154300000}
    zulu = {**step, "occurred_at": "2024-06-12T01:05:00Z"}
    stamps = {from_json("report", o)["occurred_at"] for o in (iso, millis, zulu)}
    assert stamps == {datetime(2024, 6, 12, 1, 5, tzinfo=UTC)}


def test_timestamps_keep_milliseconds_only() -> None:
    stamp = parse_timestamp("2024-06-12T11:32:10.250999+08:00")
    assert stamp == datetime(2024, 6, 12, 3, 32, 10, 250000, tzinfo=UTC)


def test_missing_optional_fields_take_their_defaults() -> None:
    obj = examples("report")[1]
    record = from_json("report", obj)
    assert record["lat"] is None and record["reporter"] is None and record["note"] is None
    assert record["images"] == [] and record["address"] == "" and record["description"] == ""
    record["images"].append("x")  # defaults are copies, not shared
    assert from_json("report", obj)["images"] == []
    assert from_json("report", {**obj, "images": None})["images"] == []


def test_form_answers_are_encoded_as_documented() -> None:
    record = from_json("form-submission", examples("form-submission")[0])
    assert record["answers"] == {
        "temperature": "37.8",
        "symptoms": '["fever","cough"]',
        "travelled_14d": "false",
        "household_size": "3",
        "remark": "已在家自行隔离",
    }
    assert encode_answer(["咳嗽"]) == '["咳嗽"]'
    assert encode_answer([]) == "[]"
    assert encode_answer(True) == "true"
    for bad in (None, {"a": 1}, [1, 2], float("nan")):
        with pytest.raises(FieldError) as info:
            from_json("form-submission", {**examples("form-submission")[0], "answers": {"q9": bad}})
        assert info.value.reason == contracts.BAD_ANSWER
        assert info.value.field == 'answers["q9"]'


# --- keys --------------------------------------------------------------------------------


def test_keys() -> None:
    reports = [from_json("report", o) for o in examples("report")]
    assert {key_for("report", r) for r in reports[:6]} == {"YY-20240612-000123"}

    forms = [from_json("form-submission", o) for o in examples("form-submission")]
    assert key_for("form-submission", forms[0]) == "epi-fever-check:wx-o6Zk3s9QmT1"
    assert key_for("form-submission", forms[0]) == key_for("form-submission", forms[1])
    anonymous = forms[3]
    assert anonymous["respondent"]["id"] == ""
    assert key_for("form-submission", anonymous) == (
        f"elderly-care-register:{anonymous['submission_id']}"
    )

    alerts = [from_json("alert", o) for o in examples("alert")]
    root = alerts[0]["alert_id"]
    assert [key_for("alert", a) for a in alerts[:3]] == [root, root, root]
    assert key_for("alert", alerts[3]) == alerts[3]["alert_id"] != root

    with pytest.raises(FieldError) as info:
        key_for("report", {"report_id": ""})
    assert info.value.reason == contracts.MISSING_KEY and info.value.field == "report_id"
    with pytest.raises(UnknownTopicError):
        key_for("dead-letter", {})


# --- errors ------------------------------------------------------------------------------


def bad(topic: str, obj: Any) -> FieldError:
    with pytest.raises(ValidationError) as info:
        from_json(topic, obj)
    assert isinstance(info.value, FieldError)
    return info.value


def test_missing_required_field_is_named() -> None:
    obj = examples("report")[0]
    del obj["report_id"]
    err = bad("report", obj)
    assert (err.reason, err.field) == (contracts.MISSING_FIELD, "report_id")
    assert "report_id" in str(err)

    obj = examples("report")[0]
    del obj["reporter"]["id"]
    err = bad("report", obj)
    assert (err.reason, err.field) == (contracts.MISSING_FIELD, "reporter.id")

    err = bad("alert", {**examples("alert")[0], "headline": None})
    assert (err.reason, err.field) == (contracts.MISSING_FIELD, "headline")


def test_wrong_types_are_named() -> None:
    cases: list[tuple[str, dict[str, Any], str, str]] = [
        ("report", {"lat": "29.37"}, "lat", contracts.WRONG_TYPE),
        ("report", {"images": "https://a/1.jpg"}, "images", contracts.WRONG_TYPE),
        ("report", {"images": ["https://a/1.jpg", 7]}, "images[1]", contracts.WRONG_TYPE),
        ("report", {"action": "submit"}, "action", contracts.BAD_ENUM),
        ("report", {"reporter": "李秀兰"}, "reporter", contracts.WRONG_TYPE),
        ("report", {"ocurred_at": 1718154300000}, "ocurred_at", contracts.UNKNOWN_FIELD),
        ("form-submission", {"form_version": "3"}, "form_version", contracts.WRONG_TYPE),
        ("form-submission", {"form_version": True}, "form_version", contracts.WRONG_TYPE),
        ("form-submission", {"form_version": 2**31}, "form_version", contracts.OUT_OF_RANGE),
        ("alert", {"level": "purple"}, "level", contracts.BAD_ENUM),
        ("alert", {"region_codes": [430602]}, "region_codes[0]", contracts.WRONG_TYPE),
    ]
    for topic, change, field, reason in cases:
        err = bad(topic, {**examples(topic)[0], **change})
        assert (err.reason, err.field) == (reason, field), change
    err = bad("report", {**examples("report")[0], "ocurred_at": 1})
    assert "did you mean 'occurred_at'" in err.message
    assert bad("report", ["not", "an", "object"]).reason == contracts.NOT_AN_OBJECT


@pytest.mark.parametrize(
    ("value", "hint"),
    [
        ("2024-06-12 08:41:27", "no time zone"),
        ("2024年6月12日", "not ISO-8601"),
        (1718154300, "epoch seconds"),
        (1718154300000000, "not epoch milliseconds"),
        (1718154300000.0, "got float"),
        (True, "got bool"),
        ("1900-01-01T00:00:00Z", "between 1973 and 2099"),
    ],
)
def test_bad_timestamps_are_named(value: Any, hint: str) -> None:
    err = bad("report", {**examples("report")[0], "occurred_at": value})
    assert (err.reason, err.field) == (contracts.BAD_TIMESTAMP, "occurred_at")
    assert hint in err.message
    err = bad("alert", {**examples("alert")[3], "expires": value})
    assert err.field == "expires"


def test_fastavro_errors_are_translated() -> None:
    record = from_json("report", examples("report")[0])
    record["reporter"]["phone"] = 13907301234
    with pytest.raises(AvroValidationError) as info:
        validate(record, parsed_schema("report"), raise_errors=True)
    err = contracts._translate(info.value, "report")
    assert isinstance(err, ValidationError)
    assert (err.reason, err.field) == (contracts.INVALID, "Person.phone")


def test_action_rules() -> None:
    submit = from_json("report", examples("report")[0])
    assert action_problems({**submit, "description": "  "}) == [
        "SUBMIT needs a non-empty description"
    ]
    assert action_problems({**submit, "address": "", "lat": None, "lon": None}) == [
        "SUBMIT needs an address or lat/lon"
    ]
    assert "lat and lon must be sent together" in action_problems({**submit, "lon": None})
    dispatch = from_json("report", examples("report")[2])
    assert action_problems({**dispatch, "assigned_department": None}) == [
        "DISPATCH needs assigned_department"
    ]
    assert action_problems({**dispatch, "operator": None, "action": "RESOLVE"}) == [
        "RESOLVE needs the operator"
    ]
    cancel = {**dispatch, "action": "CANCEL", "operator": None, "note": "不需要了"}
    assert action_problems(cancel) == ["CANCEL needs the operator"]
    assert action_problems({**cancel, "reporter": submit["reporter"]}) == []


# --- evolution (BACKWARD) ----------------------------------------------------------------


def with_field(schema: dict[str, Any], field: dict[str, Any]) -> dict[str, Any]:
    evolved = copy.deepcopy(schema)
    evolved["fields"].append(field)
    return evolved


OPTIONAL = {"name": "remark_v2", "type": ["null", "string"], "default": None, "doc": "added"}
REQUIRED = {"name": "remark_v2", "type": "string", "doc": "added without a default"}


@pytest.mark.parametrize("topic", AVRO_TOPICS)
def test_added_optional_field_reads_both_ways(topic: str) -> None:
    old = raw(topic)
    new = with_field(old, OPTIONAL)
    record = from_json(topic, examples(topic)[0])
    assert roundtrip(old, record, reader=new) == {**record, "remark_v2": None}
    assert roundtrip(new, {**record, "remark_v2": "新字段"}, reader=old) == record


@pytest.mark.parametrize("topic", AVRO_TOPICS)
def test_added_required_field_cannot_read_old_data(topic: str) -> None:
    old = raw(topic)
    record = from_json(topic, examples(topic)[0])
    with pytest.raises(Exception) as info:
        roundtrip(old, record, reader=with_field(old, REQUIRED))
    assert type(info.value).__name__ == "SchemaResolutionError"
    assert "remark_v2" in str(info.value)


@pytest.mark.parametrize("topic", AVRO_TOPICS)
def test_new_enum_symbol_reads_as_the_enum_default(topic: str) -> None:
    old = raw(topic)
    new = copy.deepcopy(old)
    field = next(
        f for f in new["fields"] if isinstance(f["type"], dict) and f["type"].get("type") == "enum"
    )
    field["type"]["symbols"].append("NEW_SYMBOL")
    record = {**from_json(topic, examples(topic)[0]), field["name"]: "NEW_SYMBOL"}
    assert roundtrip(new, record, reader=old)[field["name"]] == field["type"]["default"]


# --- issue 19: 回访 (REVISIT) and 转派 (TRANSFER) --------------------------------------------


def _before_issue_19() -> dict[str, Any]:
    """report.avsc as it was before issue 19 (no REVISIT/TRANSFER, no rating fields)."""
    old = raw("report")
    old["fields"] = [
        f for f in old["fields"] if f["name"] not in ("satisfaction", "resident_solved")
    ]
    action = next(f for f in old["fields"] if f["name"] == "action")
    action["type"]["symbols"] = [
        s for s in action["type"]["symbols"] if s not in ("REVISIT", "TRANSFER")
    ]
    return old


def test_new_actions_are_appended_after_the_default() -> None:
    action = next(f for f in raw("report")["fields"] if f["name"] == "action")["type"]
    assert action["symbols"][-3:] == ["UNKNOWN", "REVISIT", "TRANSFER"]
    assert action["default"] == "UNKNOWN"
    source = next(f for f in raw("alert")["fields"] if f["name"] == "source")["type"]
    assert source["symbols"][-3:] == ["other", "supervision", "hotspot"]
    assert source["default"] == "other"


def test_a_revisit_reads_as_unknown_for_an_older_reader_and_old_steps_for_the_new_one() -> None:
    revisit = from_json("report", next(o for o in examples("report") if o["action"] == "REVISIT"))
    assert revisit["satisfaction"] == "satisfied" and revisit["resident_solved"] is True
    old = _before_issue_19()
    seen_by_old = roundtrip(raw("report"), revisit, reader=old)
    assert seen_by_old["action"] == "UNKNOWN" and "satisfaction" not in seen_by_old
    step = {
        k: v for k, v in from_json("report", examples("report")[1]).items()
        if k not in ("satisfaction", "resident_solved")
    }  # fmt: skip
    seen_by_new = roundtrip(old, step, reader=raw("report"))
    assert seen_by_new == {**step, "satisfaction": None, "resident_solved": None}


def test_revisit_and_transfer_rules() -> None:
    lines = examples("report")
    revisit = from_json("report", next(o for o in lines if o["action"] == "REVISIT"))
    transfer = from_json("report", next(o for o in lines if o["action"] == "TRANSFER"))
    assert action_problems(revisit) == [] and action_problems(transfer) == []
    assert action_problems({**revisit, "satisfaction": None}) == ["REVISIT needs satisfaction"]
    assert action_problems({**revisit, "resident_solved": None}) == [
        "REVISIT needs resident_solved when the resident was reached"
    ]
    unreachable = {**revisit, "satisfaction": "unreachable", "resident_solved": None}
    assert action_problems(unreachable) == []
    assert action_problems({**unreachable, "resident_solved": False}) == [
        "REVISIT of an unreachable resident has no resident_solved"
    ]
    assert action_problems({**transfer, "assigned_department": None}) == [
        "TRANSFER needs assigned_department"
    ]
    assert action_problems({**transfer, "note": " "}) == ["TRANSFER needs a note"]
    assert action_problems({**transfer, "satisfaction": "satisfied"}) == [
        "TRANSFER carries satisfaction/resident_solved (REVISIT only)"
    ]
    with pytest.raises(FieldError) as info:
        from_json("report", {**lines[9], "satisfaction": "very_happy"})
    assert info.value.reason == contracts.BAD_ENUM and info.value.field == "satisfaction"


# --- issue 14: the dispatcher's corrected category on DISPATCH ---------------------------------


def _before_corrections() -> dict[str, Any]:
    """report.avsc as it was before corrected_category (issue 14, item 3)."""
    old = raw("report")
    old["fields"] = [f for f in old["fields"] if f["name"] != "corrected_category"]
    return old


def _dispatch() -> dict[str, Any]:
    return next(o for o in examples("report") if o["action"] == "DISPATCH")


def test_corrected_category_is_an_optional_field_both_readers_understand() -> None:
    field = next(f for f in raw("report")["fields"] if f["name"] == "corrected_category")
    assert field["type"] == ["null", "string"] and field["default"] is None
    assert "DISPATCH only" in field["doc"]
    corrected = from_json("report", {**_dispatch(), "corrected_category": "S0301"})
    seen_by_old = roundtrip(raw("report"), corrected, reader=_before_corrections())
    assert "corrected_category" not in seen_by_old and seen_by_old["action"] == "DISPATCH"
    step = {k: v for k, v in from_json("report", _dispatch()).items() if k != "corrected_category"}
    seen_by_new = roundtrip(_before_corrections(), step, reader=raw("report"))
    assert seen_by_new == {**step, "corrected_category": None}


def test_only_a_dispatch_carries_a_corrected_category() -> None:
    dispatch = from_json("report", {**_dispatch(), "corrected_category": "S0301"})
    assert action_problems(dispatch) == []
    for line in examples("report"):
        if line["action"] == "DISPATCH":
            continue
        record = from_json("report", {**line, "corrected_category": "S0301"})
        assert f"{line['action']} carries corrected_category (DISPATCH only)" in action_problems(
            record
        )
