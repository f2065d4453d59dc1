"""`make demo` never touches a user's data (issue 17, item 8): with the user's stack running
in their home, the demo runs its own stack in ``<home>/demo`` on other ports and database
``gov_demo``; the user's rows are all still there afterwards."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pipelines import clickhouse
from pipelines.demo import demo_settings
from pipelines.settings import Settings, settings_env
from pipelines.stack import control

pytestmark = pytest.mark.integration


def test_demo_settings_move_away_from_a_running_stack(stack: Settings) -> None:
    demo = demo_settings(stack)
    assert demo.home == stack.home / "demo"
    assert demo.clickhouse_database == f"{stack.clickhouse_database}_demo"
    for attr in ("kafka_address", "registry_address", "clickhouse_address"):
        assert getattr(demo, attr) != getattr(stack, attr)  # the user's stack holds those


def test_demo_leaves_the_users_database_alone(stack: Settings, unique: str) -> None:
    user = stack.model_copy(update={"clickhouse_database": "gov"})
    client = clickhouse.get_client(user)
    client.command("CREATE DATABASE IF NOT EXISTS gov")
    table = f"gov.keep_{unique}"
    client.command(f"CREATE TABLE {table} (n UInt32) ENGINE = MergeTree ORDER BY n")
    client.command(f"INSERT INTO {table} SELECT number FROM numbers(2928)")
    try:
        done = subprocess.run(
            [sys.executable, "-m", "pipelines", "demo", "--reports", "10", "--timeout", "120"],
            capture_output=True,
            text=True,
            env={"PATH": "/usr/bin:/bin", "COLUMNS": "200", **settings_env(user)},
            timeout=600,
        )
        assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-2000:])
        assert "database gov_demo" in done.stdout
        assert client.query(f"SELECT count() FROM {table}").result_rows[0][0] == 2928
        assert control.supervisor_pid(demo_settings(user)) is None  # the demo stopped its stack
    finally:
        client.command(f"DROP TABLE IF EXISTS {table}")
