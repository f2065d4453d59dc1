"""The embedded ClickHouse endpoint answers real clients as a ClickHouse server does (issue 20,
items 1, 2, 3 and 5), through clickhouse-connect, curl and raw HTTP."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
from clickhouse_connect.driver.exceptions import DatabaseError
from clickhouse_connect.driver.summary import QuerySummary

from pipelines.clickhouse import get_client
from pipelines.settings import Settings
from tests.integration.test_clickhouse_security import analyst_of, curl, writer_of

pytestmark = pytest.mark.integration


# --- item 1: a body that does not decompress ----------------------------------------------------


@pytest.mark.parametrize("encoding", ["lz4", "zstd", "gzip", "deflate"])
@pytest.mark.parametrize("who", ["writer", "analyst"])
def test_a_body_that_does_not_decompress_is_an_http_error(
    stack: Settings, encoding: str, who: str
) -> None:
    """``printf junk | curl -H 'Content-Encoding: lz4' --data-binary @- "$URL/"``."""
    user = writer_of(stack) if who == "writer" else analyst_of(stack)
    reply = curl(stack, data=b"junk", user=user, headers={"Content-Encoding": encoding})
    assert reply.status == 400 and reply.code == "271", reply
    assert b"Code: 271. DB::Exception: Cannot decompress" in reply.body
    assert b"(CANNOT_DECOMPRESS)" in reply.body
    # the connection and the service stay usable
    assert curl(stack, "SELECT 1", user=user).body == b"1\n"


# --- item 2: multipart/form-data bodies ---------------------------------------------------------


def curl_form(settings: Settings, user: tuple[str, str], *fields: str) -> tuple[int, bytes]:
    """``curl -F field … "$URL/"``: (HTTP status, body); ``--form-string`` unless a file."""
    args = ["curl", "-sS", "--max-time", "60", "-u", f"{user[0]}:{user[1]}", "-w", "\n%{http_code}"]
    for field in fields:
        args += ["-F" if "=@" in field or "=<" in field else "--form-string", field]
    done = subprocess.run(
        [*args, settings.clickhouse_url.rstrip("/") + "/"], capture_output=True, check=True
    )
    body, _, status = done.stdout.rpartition(b"\n")
    return int(status), body


@pytest.mark.parametrize("who", ["writer", "analyst"])
def test_a_form_body_carries_the_query_and_its_parameters(stack: Settings, who: str) -> None:
    user = writer_of(stack) if who == "writer" else analyst_of(stack)
    assert curl_form(stack, user, "query=SELECT {x:UInt8}+1", "param_x=41") == (200, b"42\n")
    # settings may be form fields too; the analyst's are refused by the engine as in the URL
    status, body = curl_form(stack, user, "query=SELECT getSetting('max_threads')", "max_threads=3")
    if who == "writer":
        assert (status, body) == (200, b"3\n")
    else:
        assert status == 403 and b"(READONLY)" in body, body


@pytest.mark.parametrize("who", ["writer", "analyst"])
def test_clickhouse_connect_with_parameters_over_4_kib(stack: Settings, who: str) -> None:
    """clickhouse-connect sends a multipart body by itself once parameters pass 4 KiB."""
    client = get_client(stack, analyst=who == "analyst")
    result = client.query("SELECT length({s:String})", parameters={"s": "x" * 5000})
    assert result.result_rows == [(5000,)]
    assert client.command("SELECT length({s:String})", parameters={"s": "é" * 5000}) == 10000


def test_a_form_keeps_the_rules_of_the_analyst(stack: Settings, tmp_path: Path) -> None:
    analyst = analyst_of(stack)
    # one statement, read-only, credentials only from the request head
    status, body = curl_form(stack, analyst, "query=SELECT 1; SELECT 2")
    assert status == 400 and b"Multi-statements are not allowed" in body, body
    status, body = curl_form(stack, analyst, "query=CREATE TABLE default.f (a Int8) ENGINE=Memory")
    assert status == 403 and b"(READONLY)" in body, body
    status, body = curl_form(stack, analyst, "query=SELECT 1", "readonly=0")
    assert status == 403 and b"(READONLY)" in body, body
    status, body = curl_form(stack, ("nobody", "x"), "query=SELECT 1", "user=" + analyst[0])
    assert status == 401, body
    # the writer's form readonly=1 picks the read-only session
    status, body = curl_form(
        stack, writer_of(stack), "query=CREATE TABLE default.f (a Int8) ENGINE=Memory", "readonly=1"
    )
    assert status == 403 and b"(READONLY)" in body, body
    # the read-only body limit holds for forms
    (tmp_path / "big").write_bytes(b"x" * (1 << 20))
    big = f"param_s=<{tmp_path / 'big'}"
    status, body = curl_form(stack, analyst, "query=SELECT length({s:String})", big)
    assert status == 413, body


def test_external_data_is_refused_with_a_clear_error(stack: Settings, tmp_path: Path) -> None:
    data = tmp_path / "ext.tsv"
    data.write_text("1\n2\n")
    status, body = curl_form(
        stack,
        writer_of(stack),
        "query=SELECT sum(a) FROM ext",
        "ext_structure=a UInt8",
        f"ext=@{data}",
    )
    assert status == 400 and b"External data" in body, body


# --- item 3: session_id -------------------------------------------------------------------------


def test_a_temporary_table_lives_in_its_session(stack: Settings, unique: str) -> None:
    writer = writer_of(stack)
    s1, s2 = {"session_id": f"s1-{unique}"}, {"session_id": f"s2-{unique}"}
    for sql in ("CREATE TEMPORARY TABLE tt (x UInt8)", "INSERT INTO tt VALUES (7)"):
        assert curl(stack, data=sql.encode(), params=s1, user=writer).status == 200
    assert curl(stack, data=b"SELECT x FROM tt", params=s1, user=writer).body == b"7\n"
    for params in (s2, {}):
        reply = curl(stack, data=b"SELECT x FROM tt", params=params, user=writer)
        assert reply.status == 404 and reply.code == "60", reply
    # the same session id of another user is another session
    reply = curl(stack, data=b"SELECT x FROM tt", params=s1, user=analyst_of(stack))
    assert reply.code == "60", reply


@pytest.mark.parametrize("who", ["writer", "analyst"])
def test_a_session_keeps_its_settings_and_database(stack: Settings, unique: str, who: str) -> None:
    session = f"set-{who}-{unique}"
    client = get_client(stack, analyst=who == "analyst", session_id=session)
    other = get_client(stack, analyst=who == "analyst")
    client.command("USE system")
    assert client.command("SELECT currentDatabase()") == "system"
    assert other.command("SELECT currentDatabase()") == "default"
    if who == "analyst":  # readonly = 1 in the engine: no SET, no temporary table
        with pytest.raises(DatabaseError, match="readonly"):
            client.command("SET max_result_rows = 7")
        with pytest.raises(DatabaseError, match="readonly"):
            client.command("CREATE TEMPORARY TABLE x (a UInt8)")
        return
    client.command("SET max_result_rows = 7")
    assert client.command("SELECT getSetting('max_result_rows')") == 7
    # a URL setting lasts one query, then the session's value is back
    assert (
        client.command("SELECT getSetting('max_result_rows')", settings={"max_result_rows": 9}) == 9
    )
    assert client.command("SELECT getSetting('max_result_rows')") == 7
    assert other.command("SELECT getSetting('max_result_rows')") == 0


def test_session_check_and_timeout(stack: Settings, unique: str) -> None:
    writer = writer_of(stack)
    check = {"session_id": f"unknown-{unique}", "session_check": "1"}
    reply = curl(stack, data=b"SELECT 1", params=check, user=writer)
    assert reply.code == "372" and b"(SESSION_NOT_FOUND)" in reply.body, reply
    short = {"session_id": f"short-{unique}", "session_timeout": "1"}
    assert curl(stack, data=b"SET max_result_rows = 5", params=short, user=writer).status == 200
    known = {**short, "session_check": "1"}
    assert curl(stack, data=b"SELECT 1", params=known, user=writer).body == b"1\n"
    time.sleep(2.5)
    reply = curl(stack, data=b"SELECT 1", params=known, user=writer)
    assert reply.code == "372", reply
    reply = curl(stack, data=b"SELECT 1", params={**short, "session_timeout": "7200"}, user=writer)
    assert reply.status == 400 and reply.code == "374", reply


# --- item 5: what clients read in the answer ----------------------------------------------------


def test_ddl_through_command_returns_a_query_summary(stack: Settings, unique: str) -> None:
    writer = get_client(stack)
    summary = writer.command(f"CREATE DATABASE compat_{unique}")
    try:
        assert isinstance(summary, QuerySummary), summary
        assert writer.command(f"CREATE TABLE compat_{unique}.t (a UInt8) ENGINE = Memory") != ""
        # a result-producing statement with no rows still answers ''
        assert writer.command(f"SELECT a FROM compat_{unique}.t") == ""
        reply = curl(stack, data=f"DROP TABLE compat_{unique}.t".encode(), user=writer_of(stack))
        assert reply.status == 200 and "x-clickhouse-format" not in reply.headers, reply
        assert "x-clickhouse-summary" in reply.headers
    finally:
        writer.command(f"DROP DATABASE IF EXISTS compat_{unique}")
