"""City analysts' row policies in deploy/: current, read-only, and covering every table."""

from __future__ import annotations

import re
from xml.etree import ElementTree

import pytest

from pipelines import clickhouse, divisions, rowpolicy

pytestmark = pytest.mark.unit

TABLES_WITH_ROWS = {
    "reports", "work_orders", "work_order_events", "form_submissions", "roster",
    "alert_targets", "alerts", "dead_letters", "dead_letter_payloads",
}  # fmt: skip


def test_city_analysts_file_is_generated_from_the_current_division_data() -> None:
    assert rowpolicy.CITY_ANALYSTS_XML.read_text(encoding="utf-8") == rowpolicy.city_analysts_xml()


def test_every_city_has_a_read_only_analyst_with_a_filter_on_every_table() -> None:
    users = ElementTree.parse(rowpolicy.CITY_ANALYSTS_XML).getroot().find("users")
    assert users is not None
    cities = [c for p in divisions.provinces() for c in divisions.children(p.code)]
    assert len(users) == len(cities) > 0
    for city in cities:
        user = users.find(f"analyst_{city.code[:4]}")
        assert user is not None, city.name
        assert user.findtext("profile") == "govstream_analyst"
        tables = user.find("databases/gov")
        assert tables is not None
        assert {t.tag for t in tables} == TABLES_WITH_ROWS
        assert tables.findtext("reports/filter") == f"city_code = '{city.code}'"
        assert tables.findtext("dead_letters/filter") == "0"


def test_every_table_with_rows_is_covered() -> None:
    """A new table in a migration must get a city filter (or an explicit 0) here."""
    created = {
        m.group(1)
        for migration in clickhouse.load_migrations()
        for statement in migration.statements("gov")
        if (m := re.search(r"CREATE TABLE IF NOT EXISTS gov\.(\w+)", statement))
    }
    assert created, "no CREATE TABLE found: the pattern is out of date"
    assert created <= TABLES_WITH_ROWS, created - TABLES_WITH_ROWS
