"""Settings parsing and the CLI's error contract (one line, exit code 2, no traceback)."""

from __future__ import annotations

import pytest

from pipelines.cli import main
from pipelines.settings import Settings, host_port, settings_env

pytestmark = pytest.mark.unit


def test_embedded_list_from_comma_text_and_empty() -> None:
    assert Settings(embedded="kafka, clickhouse").embedded == ["kafka", "clickhouse"]
    assert Settings(embedded="").embedded == []
    with pytest.raises(ValueError, match="unknown service"):
        Settings(embedded="kafka,zookeeper")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:9092", ("127.0.0.1", 9092)),
        ("http://ch.example:18123", ("ch.example", 18123)),
        ("https://ch.example", ("ch.example", 8123)),
        ("kafka", ("kafka", 8123)),
    ],
)
def test_host_port(text: str, expected: tuple[str, int]) -> None:
    assert host_port(text, 8123) == expected


def test_settings_env_round_trips() -> None:
    original = Settings(embedded="registry", kafka_bootstrap="k:1", clickhouse_password="pw")
    env = {k.removeprefix("GOVSTREAM_").lower(): v for k, v in settings_env(original).items()}
    assert Settings(**env) == original


def test_bad_option_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["stack", "status", "--bogus"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["govstream: error: No such option: --bogus"]


def test_unknown_command_is_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["frobnicate"]) == 2
    assert "frobnicate" in capsys.readouterr().err


def test_bad_setting_is_one_line_and_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from pipelines.settings import get_settings

    get_settings.cache_clear()
    monkeypatch.setenv("GOVSTREAM_EMBEDDED", "kafka,nope")
    try:
        assert main(["stack", "status"]) == 2
    finally:
        get_settings.cache_clear()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "GOVSTREAM_EMBEDDED" in err[0]
