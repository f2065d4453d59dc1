"""热点预警 against a real embedded ClickHouse: the hotspot check reads gov.hotspots as the worker
does, makes one alert per hotspot of today's window (ids, area and figures computed here by
hand), the alert agent's fold writes them, they count in the warning-reach views, and a second
check (a restarted worker, another leader) finds them in gov.alerts and sends nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client

from pipelines import alerts, closedloop, hotspots
from pipelines.settings import Settings
from tests.integration import test_repeat_hotspot_views as views_test
from tests.integration.test_repeat_hotspot_views import G1, G2, TODAY, _hotspot_scenario

pytestmark = pytest.mark.integration
db = views_test.db  # the fixture: a migrated database of its own per test

TOWNSHIP = "430602001"  # 岳阳楼街道, the township of both grids (village 430602001001)
# 岳阳楼街道 in pipelines/data/divisions: 11 villages/communities, 52,640 registered people
VILLAGES, POPULATION = 11, 52_640


def _check(client: Client, name: str, now: datetime) -> list[dict[str, Any]]:
    """What the leader's timer does (agents/hotspots.py), without Kafka."""
    rows = closedloop.hotspots(client, name)
    sent = hotspots.already_sent(client, name, rows, now)
    return hotspots.hotspot_alerts(rows, sent=sent, now=now)


def _write(client: Client, name: str, records: list[dict[str, Any]], now: datetime) -> None:
    """What the alert agent does with each message (agents/alerts.py)."""
    for offset, record in enumerate(records):
        alerts.validate(record, now)
        state, _ = alerts.apply(None, record, received_at=now, partition=0, offset=offset)
        client.insert(
            f"{name}.alerts", [alerts.alert_row(state)], column_names=list(alerts.ALERT_COLUMNS)
        )
        client.insert(
            f"{name}.alert_targets",
            alerts.target_rows(state),
            column_names=list(alerts.TARGET_COLUMNS),
        )


def test_hotspots_become_alerts_once_and_count_in_the_reach(
    stack: Settings, db: tuple[Client, str]
) -> None:
    client, name = db
    _hotspot_scenario(client, name)  # hot today: G1/P0101 (5 vs mean 1), G2/P0102 (5, none)
    now = datetime.now(UTC)
    records = _check(client, name, now)
    day = f"{TODAY:%Y%m%d}"
    assert [r["alert_id"] for r in records] == [
        f"govstream-hotspot-{G1}-P0101-{day}",
        f"govstream-hotspot-{G2}-P0102-{day}",
    ]
    first, second = records
    assert all(r["region_codes"] == [TOWNSHIP] and r["source"] == "hotspot" for r in records)
    assert f"近7天（{TODAY - timedelta(days=6)}至{TODAY}）" in first["description"]
    assert "诉求5件，此前4个周期平均每周期1.0件，为其5.0倍" in first["description"]
    assert "诉求5件，此前4个周期无此类诉求" in second["description"]
    assert first["expires"] == hotspots.expires_at(TODAY, 7) > now

    _write(client, name, records, now)
    by_level = client.query(
        f"SELECT source, level, warnings, villages, population FROM {name}.alerts_active_by_level"
    ).result_rows
    assert by_level == [("hotspot", "yellow", 2, 2 * VILLAGES, 2 * POPULATION)]
    reached = client.query(
        f"SELECT count(), sum(population), max(active_warnings), "
        f"arraySort(groupUniqArrayArray(sources)) FROM {name}.alert_villages_reached"
    ).result_rows
    assert reached == [(VILLAGES, POPULATION, 2, ["hotspot"])]
    county = client.query(
        f"SELECT county_code, villages, population FROM {name}.alert_reach_by_county"
    ).result_rows
    assert county == [("430602000000", VILLAGES, POPULATION)]

    # the next check (this worker later, a restarted one, or another leader): nothing new
    assert _check(client, name, now + timedelta(minutes=10)) == []
    rows = closedloop.hotspots(client, name)
    assert hotspots.already_sent(client, name, rows, now) == {r["alert_id"] for r in records}
    # the alerts stay in force while the grids' windows overlap theirs: a check in 6 days
    # still finds them, one in 7 days (a window that starts after theirs ended) does not
    assert len(hotspots.already_sent(client, name, rows, now + timedelta(days=6))) == 2
    assert hotspots.already_sent(client, name, rows, now + timedelta(days=8)) == set()
    # a message sent twice anyway is the same warning in gov.alerts
    _write(client, name, records[:1], now)
    (count,) = client.query(
        f"SELECT count() FROM {name}.alerts FINAL WHERE source = 'hotspot'"
    ).result_rows[0]
    assert count == 2
