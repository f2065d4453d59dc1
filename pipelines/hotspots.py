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
  YYYYMMDD>``). The id is derived from the hotspot alone, so a restarted worker or a second
  leader makes the same id, and a message sent twice anyway (between the send and the alert
  agent's insert) is a duplicate the alert agent's state and gov.alerts (ReplacingMergeTree by
  root id) collapse.
- One alert per episode: the window slides by a day, so one burst of reports keeps its grid
  and category hot for up to ``window_days`` windows; a hotspot whose window overlaps the window
  of an alert already sent for the same grid and category (gov.alerts, :data:`SENT_SQL`, or
  sent by this process) is not warned of again. The grid is warned again once it is hot in a
  window that starts after the warned one ended.
- ``region_codes`` = the grid's township (乡镇/街道, 9 digits, its own level as the contract
  wants): the grid has no division code of its own, and the township is the level that
  organises its grid workers (网格化管理); the warning reaches every village of it. A township
  code the division data lacks falls back to its county (6 digits); a row with neither is
  skipped.
- ``level`` yellow (Moderate): a hotspot is a call to look, not an emergency; ``hazard``
  other, ``hazard_local`` 热点预警, ``sender`` govstream/hotspot.
- ``sent_at`` = ``effective`` = the check's time; ``expires`` = midnight (Asia/Shanghai) after
  the last day of the first window that no longer overlaps the warned one (``window_end +
  window_days - 1``): the warning stays in force exactly as long as the grid cannot be warned
  again, so at most one hotspot alert per grid and category is active at a time.

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

#: root ids of the hotspot alerts gov.alerts holds for any of the grid-and-category prefixes
#: (:func:`prefix_of`) that are still in force after ``since``
SENT_SQL = (
    "SELECT DISTINCT root_id FROM {db:Identifier}.alerts "
    "WHERE source = 'hotspot' AND expires > {since:DateTime64(3, 'UTC')} "
    "AND arrayExists(p -> startsWith(root_id, p), {prefixes:Array(String)})"
)


def prefix_of(grid_id: str, category_code: str) -> str:
    """The start every hotspot alert id of a grid and category shares."""
    return f"govstream-hotspot-{grid_id}-{category_code}-"


def hotspot_root(grid_id: str, category_code: str, window_end: date) -> str:
    """The alert id of a hotspot: its grid, category and window (its last day)."""
    return f"{prefix_of(grid_id, category_code)}{window_end:%Y%m%d}"


def window_end_of(root_id: str, grid_id: str, category_code: str) -> date | None:
    """The window end a hotspot alert id of this grid and category names (None otherwise)."""
    prefix = prefix_of(grid_id, category_code)
    if not root_id.startswith(prefix):
        return None
    try:
        return datetime.strptime(root_id[len(prefix) :], "%Y%m%d").date()
    except ValueError:
        return None


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


def expires_at(window_end: date, window_days: int = 1) -> datetime:
    """The warning's end (UTC): midnight (Asia/Shanghai) after ``window_end + window_days -
    1``, the last day whose window still overlaps the warned one (``window_days`` 1: the end of
    ``window_end`` itself)."""
    last = window_end + timedelta(days=max(1, int(window_days)) - 1)
    return datetime.combine(last + timedelta(days=1), time(), CST).astimezone(UTC)


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
        "expires": expires_at(end, int(row["window_days"])),
        "source": SOURCE,
    }


def hotspot_alerts(
    rows: Iterable[Mapping[str, Any]], *, sent: Collection[str], now: datetime
) -> list[dict[str, Any]]:
    """The alerts to send for the hotspots ``rows`` at ``now``: one per row whose window has
    not ended by ``now``, whose township or county is known and whose window does not overlap
    the window of an alert in ``sent`` (ids already sent for any hotspot: in gov.alerts, or by
    this process) for the same grid and category; in the rows' order, each id once."""
    out: list[dict[str, Any]] = []
    seen = set(sent)
    for row in rows:
        alert_id = root_of(row)
        end = _day(row["window_end"])
        if alert_id in seen or _warned(row, end, seen):
            continue
        seen.add(alert_id)
        if expires_at(end) <= now:
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


def _warned(row: Mapping[str, Any], end: date, sent: Collection[str]) -> bool:
    """Whether an id in ``sent`` warned of the row's grid and category for a window that
    overlaps the row's (its end within ``window_days`` days before the row's end)."""
    grid, category = str(row["grid_id"]), str(row["category_code"])
    days = max(1, int(row["window_days"]))
    for alert_id in sent:
        warned_end = window_end_of(alert_id, grid, category)
        if warned_end is not None and end - timedelta(days=days) < warned_end <= end:
            return True
    return False


def already_sent(
    client: Any, database: str, rows: Iterable[Mapping[str, Any]], now: datetime
) -> set[str]:
    """The ids of the hotspot alerts gov.alerts holds for the grids and categories of ``rows``
    that are in force at ``now`` (an alert in force is one whose window may overlap a current
    one: :func:`expires_at`); ``client``: any user that reads gov.alerts."""
    prefixes = sorted({prefix_of(str(r["grid_id"]), str(r["category_code"])) for r in rows})
    if not prefixes:
        return set()
    since = now.astimezone(UTC).replace(tzinfo=None)
    parameters = {"db": database, "prefixes": prefixes, "since": since}
    return {str(r[0]) for r in client.query(SENT_SQL, parameters=parameters).result_rows}


def _day(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value))
