"""The writer's generated password: written once into the home (0600), read by the clients."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from pipelines.errors import StackError
from pipelines.settings import Settings
from pipelines.stack.clickhouse_http import users_of, writer_password

pytestmark = pytest.mark.unit


def test_generated_once_mode_0600_and_read_by_the_clients(tmp_path: Path) -> None:
    settings = Settings(
        home=tmp_path / "home", clickhouse_password="", clickhouse_analyst_password="analyst"
    )
    assert settings.clickhouse_kwargs()["password"] == ""  # nothing generated yet
    password = writer_password(settings)
    assert len(password) >= 32
    assert stat.S_IMODE(settings.clickhouse_password_file.stat().st_mode) == 0o600
    assert writer_password(settings) == password  # the same on every start
    assert settings.clickhouse_kwargs()["password"] == password
    assert settings.clickhouse_kwargs(analyst=True)["password"] == "analyst"
    assert users_of(settings)[settings.clickhouse_user].password == password
    assert [p.name for p in settings.home.iterdir()] == ["clickhouse-password"]


def test_a_set_password_wins_and_nothing_is_written(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, clickhouse_password="pw")
    assert writer_password(settings) == "pw"
    assert settings.clickhouse_kwargs()["password"] == "pw"
    assert not settings.clickhouse_password_file.exists()


def test_an_external_clickhouse_never_gets_the_generated_one(tmp_path: Path) -> None:
    writer_password(Settings(home=tmp_path, clickhouse_password=""))
    external = Settings(home=tmp_path, embedded="kafka,registry", clickhouse_password="")
    assert external.clickhouse_kwargs()["password"] == ""


def test_a_loose_file_is_tightened_and_an_empty_one_refused(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, clickhouse_password="")
    settings.clickhouse_password_file.write_text("secret\n")
    settings.clickhouse_password_file.chmod(0o644)
    assert writer_password(settings) == "secret"
    assert stat.S_IMODE(settings.clickhouse_password_file.stat().st_mode) == 0o600
    settings.clickhouse_password_file.write_text("")
    with pytest.raises(StackError, match="empty"):
        writer_password(settings)
