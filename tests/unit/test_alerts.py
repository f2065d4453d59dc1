"""The alert stream's pure steps: hazard/level and CAP checks, fan-out to villages, supersede
by Update/Cancel, rows."""

from __future__ import annotations

import csv
import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pipelines import alerts, clickhouse, contracts, divisions
from pipelines.errors import ValidationError

pytestmark = pytest.mark.unit

EXAMPLES = Path(contracts.SCHEMA_DIR) / "examples" / "alert.jsonl"
NOW = datetime(2024, 8, 2, tzinfo=UTC)


def _examples() -> list[dict[str, Any]]:
    lines = EXAMPLES.read_text(encoding="utf-8").splitlines()
    return [contracts.from_json(contracts.ALERT, json.loads(line)) for line in lines]


def _alert(**changes: Any) -> dict[str, Any]:
    return {**_examples()[0], **changes}


def test_every_example_is_valid() -> None:
    for record in _examples():
        alerts.validate(record, NOW)


def test_warning_types_are_the_project_data() -> None:
    types = alerts.warning_types()
    assert len(types) == 14
    assert types["drought"].levels == ("orange", "red")
    assert types["rainstorm"].name == "暴雨"
    with alerts.DATA.open(encoding="utf-8") as handle:
        assert len(list(csv.DictReader(handle))) == 14


def test_severity_follows_cap() -> None:
    assert [alerts.severity(lv) for lv in ("blue", "yellow", "orange", "red", "unknown")] == [
        "Minor",
        "Moderate",
        "Severe",
        "Extreme",
        "Unknown",
    ]


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"hazard": "drought", "level": "blue"}, alerts.BAD_HAZARD_LEVEL),
        ({"hazard": "frost", "level": "red"}, alerts.BAD_HAZARD_LEVEL),
        ({"level": "unknown"}, alerts.BAD_HAZARD_LEVEL),
        ({"hazard": "other", "hazard_local": None}, alerts.MISSING_HAZARD_LOCAL),
        ({"msg_type": "Unknown"}, alerts.UNKNOWN_MSG_TYPE),
        ({"headline": " "}, alerts.MISSING_CAP_FIELD),
        ({"sender": ""}, alerts.MISSING_CAP_FIELD),
        ({"msg_type": "Update"}, alerts.MISSING_REFERENCES),
        ({"msg_type": "Cancel", "references": []}, alerts.MISSING_REFERENCES),
        ({"references": ["x"]}, alerts.BAD_REFERENCES),
        ({"msg_type": "Update", "references": ["a", "a"]}, alerts.BAD_REFERENCES),
        ({"region_codes": []}, alerts.UNKNOWN_REGION),
        ({"region_codes": ["439999", "4306021"]}, alerts.UNKNOWN_REGION),  # nothing resolves
        ({"region_codes": ["4306021"]}, alerts.UNKNOWN_REGION),
        ({"sent_at": NOW + timedelta(hours=1)}, alerts.BAD_TIMESTAMP),
        (
            {"expires": datetime(2024, 6, 11, 22, 0, tzinfo=UTC)},  # before sent_at
            alerts.BAD_TIME_WINDOW,
        ),
        ({"effective": datetime(2024, 9, 1, tzinfo=UTC)}, alerts.BAD_TIME_WINDOW),
    ],
)
def test_invalid_alerts_have_reasons(changes: dict[str, Any], reason: str) -> None:
    with pytest.raises(ValidationError) as caught:
        alerts.validate(_alert(**changes), NOW)
    assert caught.value.reason == reason
    assert alerts.problems(_alert(**changes), NOW)[0].reason == reason  # the same first


def test_problems_lists_every_broken_rule_validate_raises_the_first() -> None:
    record = _alert(headline=" ", hazard="frost", level="red", region_codes=["4306021"])
    found = alerts.problems(record, NOW)
    assert [p.reason for p in found] == [
        alerts.MISSING_CAP_FIELD,
        alerts.BAD_HAZARD_LEVEL,
        alerts.UNKNOWN_REGION,
    ]
    with pytest.raises(ValidationError) as caught:
        alerts.validate(record, NOW)
    assert caught.value.reason == alerts.MISSING_CAP_FIELD
    assert all(alerts.problems(r, NOW) == [] for r in _examples())


def test_every_hazard_level_pair_of_the_table_is_accepted() -> None:
    for hazard, kind in alerts.warning_types().items():
        for level in ("blue", "yellow", "orange", "red"):
            record = _alert(hazard=hazard, level=level)
            if level in kind.levels:
                alerts.validate(record, NOW)
            else:
                with pytest.raises(ValidationError):
                    alerts.validate(record, NOW)


@pytest.mark.parametrize("code", ["43", "4306", "430602", "430602001", "430602001001"])
def test_region_codes_of_any_level_expand_to_villages(code: str) -> None:
    villages = alerts.expand([code])
    assert villages == divisions.villages_under(code)
    assert villages and all(v.level == "village" and v.code.startswith(code) for v in villages)


def test_overlapping_region_codes_count_villages_once() -> None:
    county = divisions.villages_under("430602")
    assert alerts.expand(["430602", "430602001", "4306"]) == divisions.villages_under("4306")
    assert alerts.reach(["430602", "430602001"]) == (
        len(county),
        sum(v.population for v in county),
    )


def _chain() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    alert, update, cancel = _examples()[:3]
    return alert, update, cancel


def test_update_supersedes_and_lifts_villages_it_no_longer_covers() -> None:
    alert, update, _cancel = _chain()
    state, change = alerts.apply(None, alert, received_at=NOW)
    assert (change.outcome, state["status"], state["level"]) == ("new", alerts.ACTIVE, "yellow")
    assert state["root_id"] == alert["alert_id"]
    state, change = alerts.apply(state, update, received_at=NOW, partition=1, offset=7)
    assert change.outcome == "superseded"
    assert (state["root_id"], state["alert_id"]) == (alert["alert_id"], update["alert_id"])
    assert (state["level"], state["region_codes"], state["status"]) == (
        "orange",
        ["430602", "430603"],
        alerts.ACTIVE,
    )
    row = dict(zip(alerts.ALERT_COLUMNS, alerts.alert_row(state), strict=True))
    assert (row["severity"], row["villages"], row["population"], row["version"]) == (
        "Severe",
        *alerts.reach(["430602", "430603"]),
        2,
    )
    assert row["messages"] == [alert["alert_id"], update["alert_id"]]
    targets = alerts.target_rows(state, change.lifted)
    by_status: dict[str, set[str]] = {}
    for t in targets:
        by_status.setdefault(t[alerts.TARGET_COLUMNS.index("status")], set()).add(t[2])
    assert by_status[alerts.ACTIVE] == {v.code for v in alerts.expand(["430602", "430603"])}
    assert by_status[alerts.LIFTED] == {v.code for v in divisions.villages_under("430611")}


def test_cancel_lifts_the_whole_warning_for_good() -> None:
    alert, update, cancel = _chain()
    state, _ = alerts.apply(None, alert, received_at=NOW)
    state, _ = alerts.apply(state, update, received_at=NOW)
    state, change = alerts.apply(state, cancel, received_at=NOW)
    assert (change.outcome, state["status"], state["msg_type"]) == (
        "superseded",
        alerts.CANCELLED,
        "Cancel",
    )
    assert not alerts.is_active(state, NOW)
    statuses = {t[alerts.TARGET_COLUMNS.index("status")] for t in alerts.target_rows(state)}
    assert statuses == {alerts.CANCELLED}
    later = {**update, "alert_id": "late-update", "sent_at": cancel["sent_at"] + timedelta(hours=1)}
    after, change = alerts.apply(state, later, received_at=NOW)
    assert (change.outcome, after["status"]) == ("stale", alerts.CANCELLED)


def test_an_older_message_arriving_late_does_not_supersede() -> None:
    alert, update, _ = _chain()
    state, _ = alerts.apply(None, update, received_at=NOW)  # the Update came first
    assert (state["root_id"], state["level"]) == (alert["alert_id"], "orange")
    state, change = alerts.apply(state, alert, received_at=NOW)
    assert change.outcome == "stale"
    assert (state["level"], state["alert_id"]) == ("orange", update["alert_id"])
    assert state["first_sent_ms"] == int(alert["sent_at"].timestamp() * 1000)


def test_a_replayed_message_changes_nothing() -> None:
    alert, update, _ = _chain()
    state, _ = alerts.apply(None, alert, received_at=NOW)
    state, _ = alerts.apply(state, update, received_at=NOW)
    again, change = alerts.apply(state, alert, received_at=NOW)
    assert change.outcome == "duplicate" and again == state


def test_a_cancel_without_its_alert_is_recorded_cancelled() -> None:
    _alert_msg, _update, cancel = _chain()
    state, _ = alerts.apply(None, cancel, received_at=NOW)
    assert state["root_id"] == cancel["references"][0] and state["status"] == alerts.CANCELLED


def test_expiry_and_effective_time_bound_activity() -> None:
    forest = _examples()[3]
    state, _ = alerts.apply(None, forest, received_at=NOW)
    assert alerts.is_active(state, datetime(2024, 8, 2, tzinfo=UTC))
    assert not alerts.is_active(state, datetime(2024, 8, 5, tzinfo=UTC))
    assert not alerts.is_active(state, datetime(2024, 7, 1, tzinfo=UTC))
    assert state["hazard_local"] == "森林火险"
    assert alerts.alert_row(state)[alerts.ALERT_COLUMNS.index("hazard_name")] == "森林火险"


# --- outdated and unknown region codes (issue 13, item 9) -------------------------------------


def _row(state: dict[str, Any]) -> dict[str, Any]:
    return dict(zip(alerts.ALERT_COLUMNS, alerts.alert_row(state), strict=True))


def _village_codes(rows: list[list[Any]], status: str = alerts.ACTIVE) -> set[str]:
    col = alerts.TARGET_COLUMNS.index("status")
    return {r[alerts.TARGET_COLUMNS.index("village_code")] for r in rows if r[col] == status}


def test_a_withdrawn_county_code_reaches_its_successors_villages(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """宁乡县 430124 became 宁乡市 430182 in 2017: the red warning used to be dead-lettered
    whole, so 浏阳市 430181 got nothing either."""
    red = _alert(hazard="rainstorm", level="red", region_codes=["430124", "430181"])
    alerts.validate(red, NOW)  # raised unknown_region before
    with caplog.at_level(logging.INFO, logger="govstream.alerts"):
        state, _ = alerts.apply(None, red, received_at=NOW)
    assert state["region_codes"] == ["430182", "430181"]
    want = {v.code for code in ("430182", "430181") for v in divisions.villages_under(code)}
    assert len(want) > 600 and _village_codes(alerts.target_rows(state)) == want
    row = _row(state)
    assert row["replaced_codes"] == {"430124": ["430182"]} and row["unknown_codes"] == []
    assert (row["villages"], row["population"]) == alerts.reach(["430182", "430181"])
    assert "withdrawn region code 430124 replaced by its successor 430182" in caplog.text


def test_an_unknown_code_is_dropped_not_the_warning(caplog: pytest.LogCaptureFixture) -> None:
    record = _alert(region_codes=["439999", "430602", "4306021"])
    alerts.validate(record, NOW)
    with caplog.at_level(logging.WARNING, logger="govstream.alerts"):
        state, _ = alerts.apply(None, record, received_at=NOW)
    assert state["region_codes"] == ["430602"]
    assert _village_codes(alerts.target_rows(state)) == {
        v.code for v in divisions.villages_under("430602")
    }
    row = _row(state)
    assert row["unknown_codes"] == ["439999", "4306021"] and row["replaced_codes"] == {}
    assert "unknown region code(s) 439999, 4306021 dropped; the warning goes to 430602" in (
        caplog.text
    )


def test_only_a_warning_with_no_resolvable_area_is_refused() -> None:
    with pytest.raises(ValidationError) as caught:
        alerts.validate(_alert(region_codes=["439999", "4306021"]), NOW)
    assert caught.value.reason == alerts.UNKNOWN_REGION
    assert "'439999', '4306021'" in caught.value.message
    alerts.validate(_alert(region_codes=["430124"]), NOW)  # a withdrawn code alone is enough


def test_a_split_division_reaches_every_successor() -> None:
    state, _ = alerts.apply(None, _alert(region_codes=["440582"]), received_at=NOW)  # 潮阳市
    assert state["region_codes"] == ["440513", "440514"]  # 潮阳区, 潮南区
    assert _row(state)["replaced_codes"] == {"440582": ["440513", "440514"]}


def test_update_and_cancel_with_outdated_codes_keep_the_mapping() -> None:
    alert, update, cancel = _chain()
    state, _ = alerts.apply(None, {**alert, "region_codes": ["430124"]}, received_at=NOW)
    update = {**update, "region_codes": ["430122", "439999"]}  # 望城县 → 望城区 430112
    state, change = alerts.apply(state, update, received_at=NOW)
    assert state["region_codes"] == ["430112"] and change.lifted == ("430182",)
    assert _row(state)["replaced_codes"] == {"430122": ["430112"]}
    assert _row(state)["unknown_codes"] == ["439999"]
    lifted = _village_codes(alerts.target_rows(state, change.lifted), alerts.LIFTED)
    assert lifted == {v.code for v in divisions.villages_under("430182")}
    state, _ = alerts.apply(state, {**cancel, "region_codes": ["430124"]}, received_at=NOW)
    assert state["status"] == alerts.CANCELLED
    assert state["region_codes"] == ["430112", "430182"]
    assert _row(state)["replaced_codes"] == {"430122": ["430112"], "430124": ["430182"]}
    assert _row(state)["unknown_codes"] == ["439999"]


def test_a_state_kept_before_the_mapping_columns_still_gives_a_row() -> None:
    state, _ = alerts.apply(None, _examples()[0], received_at=NOW)
    old = {k: v for k, v in state.items() if k not in ("replaced_codes", "unknown_codes")}
    row = _row(old)
    assert (row["replaced_codes"], row["unknown_codes"]) == ({}, [])
    again, _ = alerts.apply(old, _examples()[2], received_at=NOW)  # a Cancel folds in
    assert _row(again)["replaced_codes"] == {}


def test_the_migration_adds_the_columns_with_defaults() -> None:
    (migration,) = [m for m in clickhouse.load_migrations() if m.name == "alert_region_changes"]
    assert migration.version == 6
    text = " ".join(migration.sql.split())
    assert "ADD COLUMN IF NOT EXISTS replaced_codes Map(String, Array(String)) DEFAULT map()" in (
        text
    )
    assert "ADD COLUMN IF NOT EXISTS unknown_codes Array(String) DEFAULT []" in text
    assert alerts.ALERT_COLUMNS[-2:] == ("replaced_codes", "unknown_codes")


def test_alert_free_texts_are_scrubbed_in_rows_and_dead_letters() -> None:
    record = _alert(
        headline="暴雨预警 联系人：张三 １３９ ０７３０ １２３４",
        instruction="咨询0730-1234567",
        hazard_local="内涝（联系人：李四 13907301234）",
    )
    state, _ = alerts.apply(None, record, received_at=NOW)
    rows = json.dumps([alerts.alert_row(state), alerts.masked_record(record)],
                      ensure_ascii=False, default=str)  # fmt: skip
    for raw in ("13907301234", "１３９", "0730-1234567", "张三", "李四"):
        assert raw not in rows
    assert state["headline"] == "暴雨预警 联系人：张* 139****1234"
    assert state["hazard_local"] == "内涝（联系人：李* 139****1234）"


def test_a_warning_rebuilt_from_its_row_takes_its_update_and_cancel() -> None:
    alert, update, cancel = _chain()
    lost, _ = alerts.apply(None, alert, received_at=NOW, partition=1, offset=3)
    row = dict(zip(alerts.ALERT_COLUMNS, alerts.alert_row(lost), strict=True))
    rebuilt = alerts.state_from_row(row)
    assert alerts.alert_row(rebuilt) == alerts.alert_row(lost)
    assert alerts.apply(rebuilt, alert, received_at=NOW)[1].outcome == "duplicate"
    updated, change = alerts.apply(rebuilt, update, received_at=NOW, partition=1, offset=7)
    assert (change.outcome, updated["level"]) == ("superseded", "orange")
    assert alerts.alert_row(updated) == alerts.alert_row(
        alerts.apply(lost, update, received_at=NOW, partition=1, offset=7)[0]
    )
    assert alerts.apply(updated, cancel, received_at=NOW)[0]["status"] == alerts.CANCELLED
