"""gov.roster, written once per database: every division with its registered population (the
denominator of the form completion views), from the rows :func:`pipelines.forms.roster_rows`
builds. ClickHouse I/O; the rows themselves are pure."""

from __future__ import annotations

from clickhouse_connect.driver.client import Client

from pipelines.clickhouse import check_identifier
from pipelines.forms import ROSTER_COLUMNS, roster_rows


def load_roster(client: Client, database: str) -> int:
    """Fill ``database.roster`` from the division data unless it already holds it; returns
    the rows inserted (0 when it was up to date). Safe to call from every worker on startup."""
    db = check_identifier(database)
    rows = list(roster_rows())
    have = client.query(f"SELECT count(), sum(population) FROM {db}.roster FINAL").result_rows[0]
    if (int(have[0]), int(have[1] or 0)) == (len(rows), sum(r[-1] for r in rows)):
        return 0
    client.insert(f"{db}.roster", rows, column_names=list(ROSTER_COLUMNS))
    return len(rows)
