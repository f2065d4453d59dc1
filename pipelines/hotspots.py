"""热点预警 (hotspot alerts), pure: the current hotspots of gov.hotspots → alert events.

gov.hotspots (migration 0013) finds the grids and categories whose reports in the sliding
window of ``hotspot_window_days`` days reached ``hotspot_min_reports`` and
``hotspot_min_ratio`` × the baseline mean (README, "The closed loop"). Nothing in a view warns
anyone, so the worker's leader reads the hotspots of the window ending today every
``hotspot_check_interval_s`` seconds (``agents/hotspots.py``) and sends each new one as an
``alert`` event (``source = hotspot``) through the project's producer, like any upstream
warning: the alert agent writes it to gov.alerts and fans it out to gov.alert_targets, so it
counts in the warning-reach views (gov.alerts_active, alerts_active_by_level,
alert_villages_reached, alert_reach_by_county) as the 督办 warnings (``source = supervision``)
do, through the same ``pipelines.alerts.apply`` / ``alert_row`` / ``target_rows``.

Input: a gov.hotspots row as a dict (``closedloop.hotspots``: grid_id, category_code,
category_major, category_minor, city, county, township_code, township, village, window_start,
window_end (``date``, Asia/Shanghai), reports, baseline_reports, baseline_mean, ratio (None
without baseline reports), window_days, baseline_windows). Output: one alert per row in the
decoded alert-contract shape (``schemas/avro/alert.avsc``; datetimes aware, UTC):

- ``alert_id`` = :func:`hotspot_root` (``govstream-hotspot-<grid>-<category>-<window end
  YYYYMMDD>``): one alert per grid, category and window, ever. The id is derived from the
  hotspot alone, so a restarted worker or a second leader makes the same id; the leader skips
  the ids gov.alerts already holds (:data:`SENT_SQL`), and a message sent twice anyway (between
  the send and the alert agent's insert) is a duplicate the alert agent's state and gov.alerts
  (ReplacingMergeTree by root id) collapse.
- ``region_codes`` = the grid's township (乡镇/街道, 9 digits, its own level as the contract
  wants): the grid has no division code of its own, and the township is the level that
  organises its grid workers (网格化管理); the warning reaches every village of it. A township
  code the division data lacks falls back to its county (6 digits); a row with neither is
  skipped.
- ``level`` yellow (Moderate): a hotspot is a call to look, not an emergency; ``hazard``
  other, ``hazard_local`` 热点预警, ``sender`` govstream/hotspot.
- ``sent_at`` = ``effective`` = the check's time; ``expires`` = the end of the window's last
  day (midnight after ``window_end``, Asia/Shanghai): the warning is in force while its window
  is the current one. A grid that is still hot the next day gets the next window's alert, so at
  most one hotspot alert per grid and category is active at a time.

Names no person: reports are counted, never quoted.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from pipelines import divisions

log = logging.getLogger("govstream.hotspots")

CST = ZoneInfo("Asia/Shanghai")
SOURCE = "hotspot"
SENDER = "govstream/hotspot"
HAZARD = "热点预警"
LEVEL = "yellow"

#: root ids among ``ids`` that gov.alerts already holds (hotspot alerts sent before)
SENT_SQL = (
    "SELECT DISTINCT root_id FROM {db:Identifier}.alerts "
    "WHERE source = 'hotspot' AND root_id IN {ids:Array(String)}"
)


def hotspot_root(grid_id: str, category_code: str, window_end: date) -> str:
    """The alert id of a hotspot: one per grid, category and window (its last day)."""
    return f"govstream-hotspot-{grid_id}-{category_code}-{window_end:%Y%m%d}"


def root_of(row: Mapping[str, Any]) -> str:
    """The alert id of a gov.hotspots row."""
    return hotspot_root(str(row["grid_id"]), str(row["category_code"]), _day(row["window_end"]))


def region_of(township_code: str) -> str | None:
    """The code a hotspot alert names: the township at its own level (9 digits), else its
    county (6 digits) when the division data lacks the township; None when neither is known.
    ``township_code`` as gov.reports holds it (12 digits, zero-padded) or at its own level."""
    try:
        padded = divisions.normalize(str(township_code or ""))
    except divisions.UnknownDivision:
        return None
    for code, level in ((padded, "township"), (padded[:6], "county")):
        if divisions.is_known(code) and divisions.get(code).level == level:
            return divisions.get(code).prefix
    return None


def expires_at(window_end: date) -> datetime:
    """Midnight after the window's last day in Asia/Shanghai (UTC): the warning's end."""
    return datetime.combine(window_end + timedelta(days=1), time(), CST).astimezone(UTC)


def hotspot_alert(row: Mapping[str, Any], now: datetime, region: str) -> dict[str, Any]:
    """The alert of one gov.hotspots row, sent at ``now`` to ``region`` (:func:`region_of`),
    in the decoded alert-contract shape."""
    end, start = _day(row["window_end"]), _day(row["window_start"])
    place = f"{row['county']}{row['township']}{row['village']}"
    what = f"{row['category_major']}/{row['category_minor']}"
    ratio = row.get("ratio")
    against = (
        f"此前{row['baseline_windows']}个周期平均每周期{float(row['baseline_mean']):.1f}件，"
        f"为其{float(ratio):.1f}倍"
        if ratio is not None
        else f"此前{row['baseline_windows']}个周期无此类诉求"
    )
    sent = now.astimezone(UTC).replace(microsecond=now.microsecond // 1000 * 1000)
    return {
        "alert_id": root_of(row),
        "sender": SENDER,
        "sent_at": sent,
        "msg_type": "Alert",
        "references": [],
        "hazard": "other",
        "hazard_local": HAZARD,
        "level": LEVEL,
        "region_codes": [region],
        "headline": f"{place}网格{row['grid_id']}：{row['category_minor']}诉求集中（热点预警）",
        "description": (
            f"网格{row['grid_id']}（{place}）近{row['window_days']}天"
            f"（{start.isoformat()}至{end.isoformat()}）{what}类诉求{row['reports']}件，"
            f"{against}。"
        ),
        "instruction": "请属地街道（乡镇）核查成因、统筹处置，必要时列入每月一题专项治理。",
        "effective": sent,
        "expires": expires_at(end),
        "source": SOURCE,
    }


def hotspot_alerts(
    rows: Iterable[Mapping[str, Any]], *, sent: Collection[str], now: datetime
) -> list[dict[str, Any]]:
    """The alerts to send for the hotspots ``rows`` at ``now``: one per row whose id
    (:func:`root_of`) is not in ``sent`` (already sent: in gov.alerts, or by this process),
    whose window has not ended by ``now`` and whose township or county is known; in the rows'
    order, each id once."""
    out: list[dict[str, Any]] = []
    seen = set(sent)
    for row in rows:
        alert_id = root_of(row)
        if alert_id in seen:
            continue
        seen.add(alert_id)
        if expires_at(_day(row["window_end"])) <= now:
            continue  # an old window: nothing to warn of any more
        region = region_of(str(row.get("township_code") or ""))
        if region is None:
            log.warning(
                "hotspot %s: township %r is not a known division; no alert",
                alert_id, row.get("township_code"),
            )  # fmt: skip
            continue
        out.append(hotspot_alert(row, now, region))
    return out


def already_sent(client: Any, database: str, ids: Collection[str]) -> set[str]:
    """The ids among ``ids`` gov.alerts holds as hotspot alerts (``client``: any user that
    reads gov.alerts)."""
    if not ids:
        return set()
    rows = client.query(SENT_SQL, parameters={"db": database, "ids": list(ids)}).result_rows
    return {str(r[0]) for r in rows}


def _day(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value))
