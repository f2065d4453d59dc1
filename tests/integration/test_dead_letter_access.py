"""Issue 15, item 6 on the embedded endpoint: the analyst reads masked dead letters and never
their payloads (curl and clickhouse-connect); the writer reads both; `govstream dead-letters`."""

from __future__ import annotations

import base64
import json
import subprocess
from datetime import UTC, datetime
from urllib.parse import quote

import pytest

from pipelines import clickhouse, deadletter
from pipelines import settings as settings_module
from pipelines.cli import main
from pipelines.errors import ValidationError
from pipelines.settings import Settings

pytestmark = pytest.mark.integration

ID = "430602198503124024"
NOW = datetime(2024, 6, 15, tzinfo=UTC)


def _letter() -> deadletter.DeadLetter:
    return deadletter.DeadLetter.of(
        ValidationError("bad_key", "key does not match"), topic="form-submission", partition=0,
        offset=7, key=f"form_id:{ID}".encode(), value="我叫李秀兰".encode(), headers=[],
        received_at=NOW, dead_at=NOW, identity=b"id",
    )  # fmt: skip


@pytest.fixture
def database(stack: Settings, unique: str):  # type: ignore[no-untyped-def]
    writer = clickhouse.get_client(stack)
    with clickhouse.temporary_database(writer, f"dla_{unique}") as db:
        clickhouse.migrate(writer, db)
        letter = _letter()
        writer.insert(f"{db}.dead_letters", [letter.row()], column_names=list(deadletter.COLUMNS))
        writer.insert(
            f"{db}.{deadletter.PAYLOAD_TABLE}",
            [letter.payload_row()],
            column_names=list(deadletter.PAYLOAD_COLUMNS),
        )
        yield db


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM {db}.dead_letter_payloads",
        "SELECT * FROM {db}.`dead\\x5fletter_payloads`",
        "SELECT count() FROM {db}.dead_letters"
        " WHERE key IN (SELECT key FROM {db}.dead_letter_payloads)",
        "SELECT * FROM merge('{db}', '^dead')",
    ],
)
def test_the_analyst_cannot_read_payloads(stack: Settings, database: str, sql: str) -> None:
    analyst = clickhouse.get_client(stack, analyst=True)
    with pytest.raises(Exception, match="497|Not enough privileges"):
        analyst.query(sql.format(db=database))
    user = f"{stack.clickhouse_analyst_user}:{stack.clickhouse_analyst_password}"
    answer = subprocess.run(
        ["curl", "-sS", "-u", user,
         f"{stack.clickhouse_url}/?query={quote(sql.format(db=database))}"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert "Code: 497" in answer.stdout and "李秀兰" not in answer.stdout


def test_identifier_parameters_are_checked_too(stack: Settings, database: str) -> None:
    analyst = clickhouse.get_client(stack, analyst=True)
    with pytest.raises(Exception, match="497|Not enough privileges"):
        analyst.query(
            "SELECT * FROM {t:Identifier}", parameters={"t": f"{database}.dead_letter_payloads"}
        )


def test_the_analyst_reads_masked_dead_letters_and_the_writer_the_originals(
    stack: Settings, database: str
) -> None:
    analyst = clickhouse.get_client(stack, analyst=True)
    key, value = analyst.query(f"SELECT key, value FROM {database}.dead_letters").result_rows[0]
    assert base64.b64decode(key).decode() == "form_id:430602********4024" and value == ""
    writer = clickhouse.get_client(stack)
    raw = writer.query(f"SELECT value FROM {database}.dead_letter_payloads").result_rows[0][0]
    assert base64.b64decode(raw).decode() == "我叫李秀兰"


def test_cli_masked_by_default_and_raw_for_the_writer(
    stack: Settings, database: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    for name, value in settings_module.settings_env(stack).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("GOVSTREAM_CLICKHOUSE_DATABASE", database)
    settings_module.get_settings.cache_clear()
    try:
        assert main(["dead-letters", "--json", "--key", "form_id"]) == 0
        masked = json.loads(capsys.readouterr().out)
        assert [d["key"] for d in masked["dead_letters"]] == ["form_id:430602********4024"]
        assert ID not in json.dumps(masked, ensure_ascii=False)
        assert main(["dead-letters", "--json", "--raw", "--topic", "form-submission"]) == 0
        raw = json.loads(capsys.readouterr().out)["dead_letters"][0]["original"]
        assert raw["key"] == f"form_id:{ID}"
        assert base64.b64decode(raw["value_base64"]).decode() == "我叫李秀兰"
        monkeypatch.setenv("GOVSTREAM_CLICKHOUSE_PASSWORD", "wrong")
        settings_module.get_settings.cache_clear()
        assert main(["dead-letters", "--raw"]) == 1
    finally:
        settings_module.get_settings.cache_clear()
