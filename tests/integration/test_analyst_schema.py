"""What an analyst reads (issue 17, item 7): every table, view and column of the pipeline's
database has a COMMENT, every time column shows Asia/Shanghai, and so does the session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pipelines import clickhouse
from pipelines.settings import Settings

pytestmark = pytest.mark.integration


@pytest.fixture
def database(stack: Settings, unique: str) -> Iterator[tuple[Settings, str]]:
    settings = stack.model_copy(update={"clickhouse_database": f"an_{unique}"})
    client = clickhouse.get_client(settings)
    clickhouse.migrate(client, settings.clickhouse_database)
    try:
        yield settings, settings.clickhouse_database
    finally:
        client.command(f"DROP DATABASE IF EXISTS {settings.clickhouse_database}")


def test_every_object_and_column_has_a_comment(database: tuple[Settings, str]) -> None:
    settings, db = database
    client = clickhouse.get_client(settings, analyst=True)
    params = {"db": db}
    objects = client.query(
        "SELECT name FROM system.tables WHERE database = {db:String} AND comment = '' "
        "AND name != 'schema_migrations'",
        params,
    ).result_rows
    assert objects == []
    columns = client.query(
        "SELECT table, name FROM system.columns WHERE database = {db:String} AND comment = '' "
        "AND table != 'schema_migrations'",
        params,
    ).result_rows
    assert columns == []
    count = client.query(
        "SELECT count() FROM system.tables WHERE database = {db:String}", params
    ).result_rows[0][0]
    assert count >= 25
    [[rate]] = client.query(
        "SELECT comment FROM system.columns WHERE database = {db:String} "
        "AND table = 'work_order_by_department' AND name = 'on_time_rate'",
        params,
    ).result_rows
    assert "resolved" in rate


def test_every_time_column_is_asia_shanghai(database: tuple[Settings, str]) -> None:
    settings, db = database
    client = clickhouse.get_client(settings, analyst=True)
    other = client.query(
        "SELECT table, name, type FROM system.columns WHERE database = {db:String} "
        "AND type LIKE '%DateTime%' AND type NOT LIKE '%Asia/Shanghai%' "
        "AND table != 'schema_migrations'",
        {"db": db},
    ).result_rows
    assert other == []


def test_the_session_is_asia_shanghai(stack: Settings) -> None:
    for analyst in (False, True):
        client = clickhouse.get_client(stack, analyst=analyst)
        [[zone, same_day]] = client.query(
            "SELECT timezone(), today() = toDate(now(), 'Asia/Shanghai')"
        ).result_rows
        assert zone == "Asia/Shanghai" and same_day
