"""热点预警 (pipelines/hotspots.py): a gov.hotspots row becomes one alert per grid, category and
episode (not again while its window overlaps a warned one), addressed to the grid's township,
valid under the contract and the alert rules, never twice; the contract's new source reads as
``other`` for an older reader."""

from __future__ import annotations

import io
import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from fastavro import parse_schema, schemaless_reader, schemaless_writer

from pipelines import alerts, codec, contracts, divisions, hotspots
from pipelines.settings import Settings

pytestmark = pytest.mark.unit

DAY = date(2026, 11, 30)
NOW = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)  # 14:00 in Beijing, on DAY
GRID = "430602001001-03"


def _row(**changes: Any) -> dict[str, Any]:
    """A gov.hotspots row as closedloop.hotspots returns it."""
    row: dict[str, Any] = {
        "grid_id": GRID, "category_code": "P0101", "category_major": "市政设施",
        "category_minor": "路灯故障", "city": "岳阳市", "county": "岳阳楼区",
        "township_code": "430602001000", "township": "岳阳楼街道", "village": "某社区",
        "window_start": DAY - timedelta(days=6), "window_end": DAY, "reports": 8,
        "baseline_reports": 2, "baseline_mean": 0.5, "ratio": 16.0, "window_days": 7,
        "baseline_windows": 4,
    }  # fmt: skip
    return {**row, **changes}


def test_one_id_per_grid_category_and_window() -> None:
    first = hotspots.root_of(_row())
    assert first == f"govstream-hotspot-{GRID}-P0101-20261130"
    assert hotspots.root_of(_row(window_end="2026-11-30")) == first  # as text, the same
    assert hotspots.root_of(_row(window_end=DAY + timedelta(days=1))) != first  # next window
    assert hotspots.root_of(_row(category_code="P0102")) != first
    assert hotspots.root_of(_row(grid_id="430602001001-04")) != first


@pytest.mark.parametrize(
    ("code", "region"),
    [
        ("430602001000", "430602001"),  # gov.reports' 12-digit township code → 9 digits
        ("430602001", "430602001"),  # already at its own level
        ("430602999000", "430602"),  # a township the data lacks: its county
        ("", None),
        ("999999999", None),
        ("not a code", None),
    ],
)
def test_the_alert_goes_to_the_grids_township(code: str, region: str | None) -> None:
    assert hotspots.region_of(code) == region


def test_the_alert_meets_the_contract_and_the_alert_rules() -> None:
    record = hotspots.hotspot_alert(_row(), NOW, "430602001")
    assert record["alert_id"] == hotspots.root_of(_row())
    assert (record["source"], record["sender"], record["level"]) == (
        "hotspot",
        "govstream/hotspot",
        "yellow",
    )
    assert (record["hazard"], record["hazard_local"], record["msg_type"]) == (
        "other",
        "热点预警",
        "Alert",
    )
    assert record["region_codes"] == ["430602001"] and record["references"] == []
    assert record["sent_at"] == record["effective"] == NOW
    # in force while a window of the grid overlaps the warned one: to the end of 2026-12-06 in
    # Beijing (window end + 7 - 1 days), 2026-12-07 00:00 +08:00
    assert record["expires"] == datetime(2026, 12, 6, 16, 0, tzinfo=UTC)
    assert "近7天（2026-11-24至2026-11-30）市政设施/路灯故障类诉求8件" in record["description"]
    assert "此前4个周期平均每周期0.5件，为其16.0倍" in record["description"]
    assert contracts.from_json(contracts.ALERT, record) == record
    assert alerts.problems(record, NOW) == []
    assert contracts.key_for(contracts.ALERT, record) == record["alert_id"]
    no_baseline = hotspots.hotspot_alert(_row(ratio=None, baseline_mean=0.0), NOW, "430602001")
    assert "此前4个周期无此类诉求" in no_baseline["description"]


def test_it_counts_in_the_reach_like_any_warning() -> None:
    """alerts.apply (the alert agent's fold) reaches every village of the township."""
    record = hotspots.hotspot_alert(_row(), NOW, "430602001")
    state, change = alerts.apply(None, record, received_at=NOW, partition=1, offset=7)
    assert change.outcome == "new" and state["status"] == alerts.ACTIVE
    row = dict(zip(alerts.ALERT_COLUMNS, alerts.alert_row(state), strict=True))
    villages = divisions.villages_under("430602001")
    assert (row["source"], row["villages"]) == ("hotspot", len(villages))
    assert row["population"] == sum(v.population for v in villages)
    targets = alerts.target_rows(state)
    assert len(targets) == len(villages) > 0
    assert alerts.is_active(state, NOW + timedelta(days=6))
    assert not alerts.is_active(state, NOW + timedelta(days=6, hours=10))
    again, dup = alerts.apply(state, record, received_at=NOW, partition=1, offset=8)
    assert dup.outcome == "duplicate" and again["revision"] == state["revision"]


def test_alerts_only_for_hotspots_not_warned_of() -> None:
    old = _row(window_end=DAY - timedelta(days=1), window_start=DAY - timedelta(days=7))
    rows = [
        _row(),
        _row(category_code="P0102"),
        _row(),  # the same hotspot twice: one alert
        old,  # yesterday's window has ended: no alert
        _row(grid_id="g-nowhere", township_code="999999999"),  # no known area
    ]
    out = hotspots.hotspot_alerts(rows, sent=set(), now=NOW)
    assert [r["alert_id"] for r in out] == [
        hotspots.root_of(_row()),
        hotspots.root_of(_row(category_code="P0102")),
    ]
    sent = {hotspots.root_of(_row())}  # in gov.alerts, or sent by this process
    again = hotspots.hotspot_alerts(rows, sent=sent, now=NOW)
    assert [r["alert_id"] for r in again] == [hotspots.root_of(_row(category_code="P0102"))]
    # a restarted worker or a second leader computes the same ids: nothing new to send
    assert hotspots.hotspot_alerts(rows, sent={r["alert_id"] for r in out}, now=NOW) == []
    # the same burst keeps the grid hot in the next 6 windows, which overlap the warned one:
    # no second alert for that episode
    for days in range(1, 7):
        still = _row(window_end=DAY + timedelta(days=days))
        assert hotspots.hotspot_alerts([still], sent=sent, now=NOW + timedelta(days=days)) == []
    # hot again in a window that starts after the warned one ended: a new alert
    again_hot = _row(window_end=DAY + timedelta(days=7))
    later = hotspots.hotspot_alerts([again_hot], sent=sent, now=NOW + timedelta(days=7))
    assert [r["alert_id"] for r in later] == [f"govstream-hotspot-{GRID}-P0101-20261207"]
    # another category of the grid is its own episode
    other = hotspots.hotspot_alerts([_row(category_code="P0102")], sent=sent, now=NOW)
    assert len(other) == 1


def test_an_alert_id_names_its_grid_category_and_window() -> None:
    alert_id = hotspots.root_of(_row())
    assert hotspots.window_end_of(alert_id, GRID, "P0101") == DAY
    assert hotspots.window_end_of(alert_id, GRID, "P0102") is None
    assert hotspots.window_end_of(alert_id, GRID[:-1], "P0101") is None  # another grid
    assert hotspots.window_end_of(alert_id + "x", GRID, "P0101") is None
    # a grid id with dashes, as the contract allows
    dashed = hotspots.hotspot_root("g-1-2", "E0101", DAY)
    assert hotspots.window_end_of(dashed, "g-1-2", "E0101") == DAY


def test_already_sent_asks_gov_alerts_for_the_grids_and_categories_in_force() -> None:
    asked: list[tuple[str, dict[str, Any]]] = []

    class Client:
        def query(self, sql: str, parameters: dict[str, Any]) -> Any:
            asked.append((sql, parameters))
            return type("R", (), {"result_rows": [("a",)]})()

    assert hotspots.already_sent(Client(), "gov", [], NOW) == set() and asked == []
    rows = [_row(), _row(), _row(category_code="P0102")]
    assert hotspots.already_sent(Client(), "gov", rows, NOW) == {"a"}
    sql, parameters = asked[0]
    assert "source = 'hotspot'" in sql and "expires >" in sql
    assert parameters == {
        "db": "gov",
        "prefixes": [f"govstream-hotspot-{GRID}-P0101-", f"govstream-hotspot-{GRID}-P0102-"],
        "since": NOW.replace(tzinfo=None),
    }


def test_the_hotspot_source_is_appended_and_reads_as_other_for_an_older_reader() -> None:
    schema = contracts.parsed_schema(contracts.ALERT)
    raw = json.loads(contracts.load_schema(contracts.ALERT))
    source = next(f for f in raw["fields"] if f["name"] == "source")["type"]
    assert source["symbols"][-3:] == ["other", "supervision", "hotspot"]
    old = json.loads(contracts.load_schema(contracts.ALERT))
    old_source = next(f for f in old["fields"] if f["name"] == "source")["type"]
    old_source["symbols"] = old_source["symbols"][:-1]
    record = contracts.from_json(contracts.ALERT, hotspots.hotspot_alert(_row(), NOW, "430602001"))
    buffer = io.BytesIO()
    schemaless_writer(buffer, schema, record)
    buffer.seek(0)
    seen = schemaless_reader(buffer, schema, parse_schema(old))
    assert isinstance(seen, dict) and seen["source"] == "other"


def test_the_workers_encoder_frames_what_the_alert_agent_decodes() -> None:
    """codec.AvroEncoder (the hotspot timer's, through the worker's Faust producer): the
    registry's id in the Confluent frame, the body the alert agent's decoder reads back."""
    schema = contracts.load_schema(contracts.ALERT)
    encoder = codec.AvroEncoder(schema, "alert-value", {"url": "http://unused"})
    encoder._id = 42  # as if the registry had answered (schema_id() asks it once)
    record = contracts.from_json(contracts.ALERT, hotspots.hotspot_alert(_row(), NOW, "430602001"))
    value = encoder.encode(record)
    assert codec.split_frame(value)[0] == 42
    decoder = codec.AvroDecoder(schema, lambda schema_id: schema)
    assert decoder.decode(value) == record


def test_the_settings_default_and_parse() -> None:
    defaults = Settings.model_construct()
    assert defaults.hotspot_alert_enabled is True and defaults.hotspot_check_interval_s == 600
    off = Settings(hotspot_alert_enabled="false", hotspot_check_interval_s="30")  # type: ignore[arg-type]
    assert off.hotspot_alert_enabled is False and off.hotspot_check_interval_s == 30.0
    with pytest.raises(ValueError):
        Settings(hotspot_check_interval_s=0)
