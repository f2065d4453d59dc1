"""The report stream's pure steps: validate, enrich, route, mask, 并单, rows, dead letters."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pipelines import contracts, deadletter, reports
from pipelines.errors import ValidationError

pytestmark = pytest.mark.unit

EXAMPLES = Path(contracts.SCHEMA_DIR) / "examples" / "report.jsonl"
NOW = datetime(2024, 6, 15, tzinfo=UTC)
SALT = "test-salt"
RAW = ("13907301234", "430602198503124024", "李秀兰")


def _examples() -> list[dict[str, Any]]:
    lines = EXAMPLES.read_text(encoding="utf-8").splitlines()
    return [contracts.from_json("report", json.loads(line)) for line in lines]


def _submit(**changes: Any) -> dict[str, Any]:
    record = dict(_examples()[0])
    record.update(changes)
    return record


def test_every_example_is_valid() -> None:
    for record in _examples():
        reports.validate(record, NOW)


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"region_code": "439999999999"}, reports.UNKNOWN_REGION),
        ({"region_code": "43060200100"}, reports.UNKNOWN_REGION),
        ({"description": "  "}, reports.EMPTY_DESCRIPTION),
        ({"occurred_at": NOW + timedelta(hours=1)}, reports.BAD_TIMESTAMP),
        ({"occurred_at": NOW - timedelta(days=4 * 365)}, reports.BAD_TIMESTAMP),
        (
            {
                "reporter": {
                    "id": "x",
                    "name": "李四",
                    "phone": "1",
                    "id_number": "430602198503124025",
                }
            },
            reports.BAD_ID_NUMBER,
        ),
        ({"lat": 48.85, "lon": 2.35}, reports.BAD_COORDINATES),
        ({"reporter": None}, reports.INCOMPLETE),
    ],
)
def test_invalid_reports_say_why(changes: dict[str, Any], reason: str) -> None:
    with pytest.raises(ValidationError) as err:
        reports.validate(_submit(**changes), NOW)
    assert err.value.reason == reason
    assert reports.problems(_submit(**changes), NOW)[0].reason == reason  # the same first


def test_problems_lists_every_broken_rule_validate_raises_the_first() -> None:
    record = _submit(description=" ", region_code="439999999999", lon=None)
    found = reports.problems(record, NOW)
    assert [p.reason for p in found] == [
        reports.UNKNOWN_REGION,
        reports.EMPTY_DESCRIPTION,
        reports.INCOMPLETE,
    ]
    assert "lat and lon must be sent together" in found[2].message
    with pytest.raises(ValidationError) as err:
        reports.validate(record, NOW)
    assert err.value.reason == reports.UNKNOWN_REGION
    assert all(reports.problems(r, NOW) == [] for r in _examples())


def test_enrich_names_every_level() -> None:
    place = reports.enrich("430602001001")
    assert place.names["province"] == "湖南省"
    assert place.names["city"] == "岳阳市"
    assert place.names["county"] == "岳阳楼区"
    assert place.names["township"] == "岳阳楼街道"
    assert place.codes["township"] == "430602001000"
    assert place.urban_rural == "urban"


def test_work_order_is_classified_routed_and_masked() -> None:
    record = _submit(description="路口的井盖没了，电话13907301234，身份证430602198503124024")
    order = reports.work_order(record, salt=SALT, partition=2, offset=7, received_at=NOW)
    assert order["category"]["code"] == "P0101"  # the valid upstream hint
    assert order["deadline_ms"] - order["occurred_ms"] == order["sla_hours"] * 3_600_000
    assert order["reporter"]["phone"] == "139****1234"
    assert order["reporter"]["name"] == "李**"
    text = json.dumps(order, ensure_ascii=False)
    for raw in RAW:
        assert raw not in text
    row = reports.report_row(order, None)
    assert len(row) == len(reports.REPORT_COLUMNS)
    assert dict(zip(reports.REPORT_COLUMNS, row, strict=True))["village"] == "郭亮社区"


def test_route_flags_p1_emergencies() -> None:
    order = reports.work_order(
        _submit(category_hint=None, description="小区里有人打架，拿着刀，快来人"),
        salt=SALT, partition=0, offset=0, received_at=NOW,
    )  # fmt: skip
    assert (order["priority"] == "P1") == order["emergency"]


def _order(report_id: str, minutes: float, lat: float | None = 29.3712) -> dict[str, Any]:
    return {
        "report_id": report_id,
        "occurred_ms": int(minutes * 60_000),
        "lat": lat,
        "lon": 113.0935 if lat is not None else None,
        "address": "洞庭南路与汴河街交叉口",
    }


def test_duplicates_link_to_the_first_order_within_window_and_distance() -> None:
    window, distance = 7200.0, 300.0
    opened = reports.remember([], _order("A", 0), window)
    assert reports.find_duplicate(opened, _order("B", 30, lat=29.3722), window, distance) == "A"
    assert reports.find_duplicate(opened, _order("C", 30, lat=29.40), window, distance) is None
    assert reports.find_duplicate(opened, _order("D", 121), window, distance) is None
    assert reports.find_duplicate(opened, _order("A", 0), window, distance) is None  # replay
    by_address = reports.remember([], _order("E", 0, lat=None), window)
    assert reports.find_duplicate(by_address, _order("F", 5, lat=None), window, distance) == "E"


def test_remember_forgets_orders_outside_the_window() -> None:
    opened = reports.remember([], _order("A", 0), 7200)
    opened = reports.remember(opened, _order("B", 200), 7200)
    assert [o["report_id"] for o in opened] == ["B"]


def test_step_row_masks_the_operator_and_scrubs_the_note() -> None:
    step = _examples()[2]
    step = {**step, "note": "已联系居民13907301234"}
    row = reports.step_row(step, salt=SALT, partition=1, offset=3, received_at=NOW)
    assert len(row) == len(reports.STEP_COLUMNS)
    values = dict(zip(reports.STEP_COLUMNS, row, strict=True))
    assert values["operator_name"] == "王*"
    assert values["note"] == "已联系居民139****1234"


def test_dead_letter_row_and_headers_hold_no_raw_personal_data() -> None:
    raw_value = "李秀兰 13907301234 430602198503124024".encode()
    error = ValidationError(reports.UNKNOWN_REGION, "region_code '1' is not a known division")
    letter = deadletter.DeadLetter.of(
        error, topic="report", partition=1, offset=9, key=b"k", value=raw_value,
        headers=[("app", b"v1")], received_at=NOW, dead_at=NOW,
    )  # fmt: skip
    row = dict(zip(deadletter.COLUMNS, letter.row(), strict=True))
    assert row["reason"] == "unknown_region"
    assert row["value"] == ""  # undecodable: the original bytes are in dead_letter_payloads only
    payload = dict(zip(deadletter.PAYLOAD_COLUMNS, letter.payload_row(), strict=True))
    assert base64.b64decode(payload["value"]) == raw_value
    headers = dict(letter.topic_headers())
    assert headers["dlq.reason"] == b"unknown_region"
    assert headers["dlq.source.offset"] == b"9"
    assert headers["app"] == b"v1"


def test_every_free_text_field_and_image_url_of_a_report_is_masked() -> None:
    record = _submit(
        description="我叫李秀兰，电话１３９　０７３０　１２３４，身份证430602 19850312 4024",
        address="联系人：李秀兰 0730-1234567",
        images=["https://img.example.gov.cn/r/13907301234/1.jpg?sfz=430602198503124024"],
        grid_id="网格员李秀兰13907301234",
    )
    order = reports.work_order(record, salt=SALT, partition=2, offset=7, received_at=NOW)
    row = dict(zip(reports.REPORT_COLUMNS, reports.report_row(order, None), strict=True))
    text = json.dumps(row, ensure_ascii=False, default=str)
    for raw in (*RAW, "秀兰", "0730-1234567", "１３９"):
        assert raw not in text
    assert row["description"] == "我叫李**，电话139****1234，身份证430602********4024"
    assert row["address"] == "联系人：李** 073****4567"
    assert row["grid_id"] == "网格员李** 139****1234".replace(" ", "")
    assert row["images"] == [
        "https://img.example.gov.cn/r/139****1234/1.jpg?sfz=430602********4024"
    ]
    masked = json.dumps(reports.masked_record(record, SALT), ensure_ascii=False, default=str)
    for raw in (*RAW, "秀兰", "0730-1234567", "１３９"):
        assert raw not in masked


def test_step_row_masks_the_operator_role_department_and_images() -> None:
    step = _examples()[2]
    operator = {**step["operator"], "role": "网格员王小明 13907301234"}
    step = {
        **step,
        "operator": operator,
        "assigned_department": "城管 联系人：张三 0086 139 0730 1234",
        "images": ["https://img.example.gov.cn/done/8613907301234.jpg"],
    }
    row = reports.step_row(step, salt=SALT, partition=1, offset=3, received_at=NOW)
    values = dict(zip(reports.STEP_COLUMNS, row, strict=True))
    assert values["operator_role"] == "网格员王** 139****1234"
    assert values["assigned_department"] == "城管 联系人：张* 139****1234"
    assert values["images"] == ["https://img.example.gov.cn/done/139****1234.jpg"]


def test_rows_carry_request_type_taxonomy_version_and_classifier() -> None:
    from pipelines import clickhouse, taxonomy, workorders

    record = _submit(category_hint=None, description="举报：楼下饭店后厨苍蝇乱飞，卤菜发黏了还在卖")
    order = reports.work_order(record, salt=SALT, partition=0, offset=1, received_at=NOW)
    row = dict(zip(reports.REPORT_COLUMNS, reports.report_row(order, None), strict=True))
    assert row["category_code"] == "S0502"
    assert row["request_type"] == "report"
    assert row["taxonomy_version"] == taxonomy.VERSION
    assert row["classifier"].startswith(("rules-", "model-"))
    state = workorders.open_order(order)
    wo = dict(zip(workorders.ORDER_COLUMNS, workorders.order_row({**state, "revision": 1,
              "pending": [], "last_ms": 0, "updated_ms": 0}), strict=True))  # fmt: skip
    assert (wo["request_type"], wo["taxonomy_version"]) == ("report", taxonomy.VERSION)
    # an order routed before issue 14 (no such keys) still makes a row
    old = {**order, "category": {k: order["category"][k] for k in ("code", "major", "minor",
           "confidence", "evidence", "source")}}  # fmt: skip
    assert reports.report_row(old, None)[-3:] == ["", "", ""]
    # the columns exist in ClickHouse with defaults for the rows written before
    (migration,) = [
        m for m in clickhouse.load_migrations() if m.name == "classification_provenance"
    ]
    sql = " ".join(migration.statements("gov"))
    for table in ("gov.reports", "gov.work_orders"):
        for column in ("request_type", "taxonomy_version", "classifier"):
            assert f"ALTER TABLE {table}\n    ADD COLUMN IF NOT EXISTS {column}" in sql
    assert sql.count("DEFAULT") == 6


def test_a_dispatch_corrects_only_to_a_taxonomy_code() -> None:
    """issue 14, item 3: a DISPATCH's corrected_category must be a taxonomy v2.1 code
    (unknown_category); any other action carrying one is incomplete_for_action."""
    records = _examples()
    dispatch = next(r for r in records if r["action"] == "DISPATCH")
    reports.validate({**dispatch, "corrected_category": "S0301"}, NOW)
    reports.validate({**dispatch, "corrected_category": "X9999"}, NOW)
    for wrong in ("S9999", "s0301", "", "物业管理 13907301234"):
        with pytest.raises(ValidationError) as info:
            reports.validate({**dispatch, "corrected_category": wrong}, NOW)
        assert info.value.reason == reports.UNKNOWN_CATEGORY
        assert "13907301234" not in str(info.value)  # the message is scrubbed
    resolve = next(r for r in records if r["action"] == "RESOLVE")
    with pytest.raises(ValidationError) as info:
        reports.validate({**resolve, "corrected_category": "S0301"}, NOW)
    assert info.value.reason == reports.INCOMPLETE
    assert "corrected_category (DISPATCH only)" in str(info.value)
    masked = reports.masked_record({**dispatch, "corrected_category": "电话13907301234"}, SALT)
    assert "13907301234" not in masked["corrected_category"]


def test_warm_up_builds_what_the_first_report_would_build() -> None:
    """In a fresh interpreter: nothing of the report path is built at import; after
    ``warm_up`` the segmenter, its place names and the division index are."""
    import subprocess
    import sys

    probe = (
        "from pipelines import classify, divisions, reports\n"
        "before = (classify._SEGMENTER, divisions._index.cache_info().currsize)\n"
        "reports.warm_up()\n"
        "after = (classify._SEGMENTER is not None, len(classify._PLACES),\n"
        "         divisions._index.cache_info().currsize)\n"
        "print(before[0] is None, before[1], *after)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out[:3] == ["True", "0", "True"]
    assert int(out[3]) > 10_000  # division names among the segmenter's words
    assert out[4] == "1"
