"""Property-based fuzzing of the event path: whatever arrives, decode/validate/classify either
succeed or raise the pipeline's own EventError with a reason code — never anything else."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from fastavro import schemaless_writer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines import contracts, reports, taxonomy
from pipelines.classify import classify
from pipelines.codec import AvroDecoder, frame
from pipelines.errors import EventError

pytestmark = pytest.mark.unit

SCHEMA = contracts.load_schema(contracts.REPORT)
PARSED = contracts.parsed_schema(contracts.REPORT)
EXAMPLE = contracts.from_json(
    "report",
    json.loads((contracts.SCHEMA_DIR / "examples" / "report.jsonl").read_text().splitlines()[0]),
)
NOW = datetime(2024, 6, 15, tzinfo=UTC)


def _fetch(schema_id: int) -> str:
    if schema_id == 1:
        return SCHEMA
    if schema_id == 2:
        return "not json"
    return json.dumps({"type": "record", "name": "Other", "fields": []})


DECODER = AvroDecoder(SCHEMA, _fetch)


def _encoded(record: dict[str, Any]) -> bytes:
    out = io.BytesIO()
    schemaless_writer(out, PARSED, record)
    return frame(1, out.getvalue())


VALID = _encoded(EXAMPLE)
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _decode_or_reason(data: bytes | None) -> dict[str, Any] | str:
    try:
        return DECODER.decode(data)
    except EventError as err:  # the only kind of failure the agent dead-letters
        assert err.reason and err.message
        return err.reason


@FUZZ
@given(st.binary(max_size=300))
def test_random_bytes_decode_or_fail_with_a_reason(data: bytes) -> None:
    _decode_or_reason(data)


@FUZZ
@given(st.integers(min_value=0, max_value=len(VALID) - 1))
def test_truncated_records_fail_with_a_reason(cut: int) -> None:
    assert isinstance(_decode_or_reason(VALID[:cut]), str)


@FUZZ
@given(st.integers(min_value=5, max_value=len(VALID) - 1), st.integers(0, 255))
def test_flipped_bytes_decode_or_fail_with_a_reason(pos: int, value: int) -> None:
    data = bytearray(VALID)
    data[pos] = value
    _decode_or_reason(bytes(data))


@pytest.mark.parametrize("schema_id", [2, 3, 99])
def test_unknown_or_foreign_schema_ids_fail_with_a_reason(schema_id: int) -> None:
    assert isinstance(_decode_or_reason(frame(schema_id, VALID[5:])), str)


_text = st.text(max_size=400)
_records = st.fixed_dictionaries(
    {
        "region_code": st.one_of(st.just(EXAMPLE["region_code"]), st.text(max_size=14)),
        "description": _text,
        "occurred_at": st.datetimes(
            min_value=datetime(1971, 1, 1), max_value=datetime(2099, 1, 1), timezones=st.just(UTC)
        ),
        "lat": st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)),
        "lon": st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)),
        "reporter": st.one_of(
            st.none(),
            st.fixed_dictionaries(
                {
                    "id": _text,
                    "name": _text,
                    "phone": _text,
                    "id_number": st.one_of(st.none(), _text),
                }
            ),
        ),
        "action": st.sampled_from(["SUBMIT", "ACCEPT", "CLOSE", "CANCEL"]),
    }
)


@FUZZ
@given(_records)
def test_validate_accepts_or_refuses_with_a_reason(changes: dict[str, Any]) -> None:
    record = {**EXAMPLE, **changes}
    try:
        reports.validate(record, NOW)
    except EventError as err:
        assert err.reason


@FUZZ
@given(st.text(max_size=2000), st.one_of(st.none(), st.text(max_size=8)))
def test_classify_always_answers_a_taxonomy_code(text: str, hint: str | None) -> None:
    result = classify(text, hint)
    assert taxonomy.is_valid(result.code)
    assert 0.0 <= result.confidence <= 1.0


def test_an_oversized_description_is_classified_and_masked() -> None:
    text = ("井盖丢了，联系13907301234。" * 20_000)[:200_000]
    record = {**EXAMPLE, "description": text}
    reports.validate(record, NOW)
    order = reports.work_order(record, salt="s", partition=0, offset=0, received_at=NOW)
    assert "13907301234" not in order["description"]
