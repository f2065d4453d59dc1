"""Dead letters (issue 15, item 6): analysts get masked fields only, the writer the originals;
the embedded endpoint's refusal of writer-only tables; the `govstream dead-letters` command."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest

from pipelines import access, deadletter
from pipelines.cli import main
from pipelines.cli.deadletters import build_query, parse_time
from pipelines.errors import ConfigError, ValidationError

pytestmark = pytest.mark.unit

NOW = datetime(2024, 6, 15, tzinfo=UTC)
ID = "430602198503124024"
PHONE = "13907301234"


def _letter(value: bytes, masked: dict | None = None) -> deadletter.DeadLetter:
    return deadletter.DeadLetter.of(
        ValidationError("bad_id_number", f"id {ID} fails its check"), topic="form-submission",
        partition=1, offset=9, key=f"form_id:{ID}".encode(), value=value,
        headers=[("who", f"我叫李秀兰 {PHONE}".encode())], received_at=NOW, dead_at=NOW,
        masked=masked, identity=b"x",
    )  # fmt: skip


def test_analyst_row_holds_masked_fields_only() -> None:
    letter = _letter(f"\x00\x00\x00\x00\x01\x0c李秀兰{PHONE}{ID}".encode())
    row = dict(zip(deadletter.COLUMNS, letter.row(), strict=True))
    text = json.dumps(row, ensure_ascii=False, default=str)
    assert base64.b64decode(row["key"]).decode() == "form_id:430602********4024"
    assert row["value"] == ""  # undecodable bytes: nothing of them for analysts
    assert row["value_size"] == len(letter.value or b"")
    assert row["headers"] == {"who": "我叫李** 139****1234"}
    for raw in (ID, PHONE, "秀兰"):
        assert raw not in text


def test_decoded_record_is_kept_masked_and_scrubbed_again() -> None:
    letter = _letter(b"...", masked={"event_id": "e1", "remark": f"姓名：王小明 {PHONE}"})
    row = dict(zip(deadletter.COLUMNS, letter.row(), strict=True))
    assert json.loads(row["value"]) == {"event_id": "e1", "remark": "姓名：王** 139****1234"}
    assert row["event_id"] == "e1"


def test_payload_row_keeps_the_originals_under_the_same_identity() -> None:
    value = f"李秀兰{ID}".encode()
    letter = _letter(value)
    row = dict(zip(deadletter.COLUMNS, letter.row(), strict=True))
    payload = dict(zip(deadletter.PAYLOAD_COLUMNS, letter.payload_row(), strict=True))
    for column in ("source_topic", "source_partition", "source_offset", "fingerprint"):
        assert payload[column] == row[column]
    assert base64.b64decode(payload["key"]) == f"form_id:{ID}".encode()
    assert base64.b64decode(payload["value"]) == value
    assert base64.b64decode(payload["headers"]["who"]).decode() == f"我叫李秀兰 {PHONE}"


def test_masked_bytes_masks_numbers_in_binary_data() -> None:
    masked = deadletter.masked_bytes(b"\xff\xfe" + PHONE.encode())
    assert masked == b"\xff\xfe139****1234"


AST_FROM = """SelectWithUnionQuery (children 1)
 ExpressionList (children 1)
  SelectQuery (children 2)
   ExpressionList (children 1)
    Asterisk
   TablesInSelectQuery (children 1)
    TablesInSelectQueryElement (children 1)
     TableExpression (children 1)
"""
AST_PAYLOADS = AST_FROM + "      TableIdentifier gov.dead_letter_payloads\n"
AST_MERGE = AST_FROM + (
    "      Function merge (children 1)\n       ExpressionList (children 2)\n"
    "        Literal 'gov'\n        Literal '^dead'\n"
)


def test_analyst_problem_refuses_writer_only_tables_and_merge() -> None:
    assert access.analyst_problem(AST_PAYLOADS).code == 497  # type: ignore[union-attr]
    assert access.analyst_problem(AST_MERGE).code == 497  # type: ignore[union-attr]
    mentioned = "Function mergeTreeIndex\n ExpressionList\n  Literal 'dead_letter_payloads'\n"
    assert access.analyst_problem(mentioned) is not None
    dead_letters = AST_PAYLOADS.replace("dead_letter_payloads", "dead_letters")
    assert access.analyst_problem(dead_letters) is None


def test_analyst_grants_revoke_every_writer_only_table() -> None:
    assert access.analyst_grants("gov") == [
        "GRANT SELECT ON gov.*",
        "REVOKE SELECT ON gov.dead_letter_payloads",
    ]


def test_parse_time_reads_ages_and_iso_times() -> None:
    assert parse_time("2h", "--since", NOW) == NOW - timedelta(hours=2)
    assert parse_time("2024-06-14T08:00", "--since", NOW) == datetime(2024, 6, 14, 8, tzinfo=UTC)
    assert parse_time("2024-06-14T08:00+08:00", "--since", NOW) == datetime(
        2024, 6, 14, 0, tzinfo=UTC
    )
    with pytest.raises(ConfigError):
        parse_time("yesterday", "--since", NOW)


def test_query_joins_payloads_only_when_raw() -> None:
    sql, params = build_query(
        "gov", raw=False, topics=["report"], reasons=[], since=NOW, until=None, key="form",
        limit=5,
    )  # fmt: skip
    assert "dead_letter_payloads" not in sql and "d.key" in sql and "LIMIT 5" in sql
    assert params == {"topics": ["report"], "since": NOW, "key": "form"}
    sql, _ = build_query(
        "gov", raw=True, topics=[], reasons=["bad_key"], since=None, until=None, key="k", limit=1
    )
    assert "gov.dead_letter_payloads" in sql and "base64Decode(p.key)" in sql


@pytest.mark.parametrize(
    "args",
    [
        ["--limit", "0"],
        ["--since", "soon"],
        ["--until", "2024-13-01"],
        ["--since", "1h", "--until", "2h"],
        ["--no-such-flag"],
    ],
)
def test_bad_arguments_print_one_line_and_exit_2(
    args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["dead-letters", *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("govstream: error:")
