"""The embedded ClickHouse endpoint answers real clients as a ClickHouse server does (issue 20,
items 1 to 6), through clickhouse-connect, curl and raw HTTP."""

from __future__ import annotations

import base64
import http.client
import subprocess
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

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


# --- item 4: results are streamed unless the client waits for the end of the query --------------

#: Fails at its fourth row; each row takes 0.2 s, so its first three rows are out before.
FAILS_AT_ROW_4 = "SELECT number, throwIf(number = 3) FROM numbers(10) WHERE sleepEachRow(0.2) = 0"


def test_a_result_is_streamed_and_a_late_error_ends_the_body(stack: Settings) -> None:
    """``max_block_size=1&wait_end_of_query=0``: 200, the first rows, then the exception."""
    writer = writer_of(stack)
    streamed = {"max_block_size": "1", "wait_end_of_query": "0"}
    reply = curl(stack, data=FAILS_AT_ROW_4.encode(), params=streamed, user=writer)
    assert reply.status == 200, reply
    assert reply.headers.get("transfer-encoding") == "chunked", reply
    assert reply.body.startswith(b"0\t0\n1\t0\n2\t0\nCode: 395. DB::Exception: "), reply
    assert reply.body.rstrip().endswith(b"(FUNCTION_THROW_IF_VALUE_IS_NON_ZERO)"), reply
    # wait_end_of_query=1 buffers the whole result: an HTTP error and no rows
    waited = {"max_block_size": "1", "wait_end_of_query": "1"}
    reply = curl(stack, data=FAILS_AT_ROW_4.encode(), params=waited, user=writer)
    assert reply.status == 500 and reply.code == "395", reply
    assert reply.body.startswith(b"Code: 395."), reply
    # an error before the first row is an HTTP error when streamed too
    reply = curl(stack, data=b"SELECT * FROM default.no_such_table", params=streamed, user=writer)
    assert reply.status == 404 and reply.code == "60", reply


def test_clickhouse_connect_reads_the_rows_then_the_error(stack: Settings) -> None:
    client = get_client(stack)
    rows: list[tuple[int, int]] = []
    stream = client.query_row_block_stream(FAILS_AT_ROW_4, settings={"max_block_size": 1})
    with pytest.raises(DatabaseError, match="Code: 395"), stream as blocks:  # noqa: PT012
        for block in blocks:
            rows.extend(block)
    assert rows == [(0, 0), (1, 0), (2, 0)]


@pytest.mark.parametrize("who", ["writer", "analyst"])
def test_a_large_streamed_result_arrives_whole(stack: Settings, who: str) -> None:
    """Many chunks, compressed as clickhouse-connect negotiates (lz4) and as curl does (gzip)."""
    client = get_client(stack, analyst=who == "analyst")
    result = client.query("SELECT number FROM numbers(200000) WHERE number % 3 = 0")
    assert [row[0] for row in result.result_rows] == list(range(0, 200000, 3))
    user = writer_of(stack) if who == "writer" else analyst_of(stack)
    args = ["curl", "-sS", "--compressed", "-u", f"{user[0]}:{user[1]}", "--data-binary", "@-"]
    url = stack.clickhouse_url.rstrip("/") + "/?enable_http_compression=1"
    done = subprocess.run(
        [*args, "-H", "Accept-Encoding: gzip", url],
        input=b"SELECT number FROM numbers(100000) FORMAT JSONEachRow",
        capture_output=True,
        check=True,
    )
    lines = done.stdout.splitlines()
    assert len(lines) == 100000 and lines[-1] == b'{"number":99999}', lines[-1:]


def test_a_client_that_leaves_mid_stream_frees_its_session(stack: Settings) -> None:
    """Endless results whose readers hang up: their queries stop, the sessions serve again."""
    host, port = stack.clickhouse_address
    user, password = analyst_of(stack)
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    for _ in range(12):  # more than the pool of read-only sessions
        conn = http.client.HTTPConnection(host, port, timeout=30)
        conn.request(
            "POST", "/", b"SELECT number FROM system.numbers", {"Authorization": f"Basic {auth}"}
        )
        response = conn.getresponse()
        assert response.status == 200
        assert response.read(1000)
        conn.close()
    started = time.monotonic()
    assert curl(stack, "SELECT 1", user=analyst_of(stack)).body == b"1\n"
    assert time.monotonic() - started < 20


# --- item 5: what the engine is sent ------------------------------------------------------------


@pytest.mark.parametrize("who", ["writer", "analyst"])
def test_query_bytes_that_are_not_utf8_reach_the_engine(stack: Settings, who: str) -> None:
    """A String literal with an invalid UTF-8 byte, in the body and in the URL."""
    user = writer_of(stack) if who == "writer" else analyst_of(stack)
    reply = curl(stack, data=b"SELECT length('x\xff'), hex('x\xff')", user=user)
    assert (reply.status, reply.body) == (200, b"2\t78FF\n"), reply
    done = subprocess.run(
        [
            "curl", "-sS", "-u", f"{user[0]}:{user[1]}",
            stack.clickhouse_url.rstrip("/") + "/?query=SELECT%20hex('%FE%FF')",
        ],
        capture_output=True,
        check=True,
    )  # fmt: skip
    assert done.stdout == b"FEFF\n"
    reply = curl(stack, data=b"SELECT hex({s:String})", params={"param_s": "a"}, user=user)
    assert reply.body == b"61\n", reply
    # an error quoting such bytes: chDB cannot pass the engine's text on, the code says so
    reply = curl(stack, data=b"SELECT no_such_function('\xfe')", user=user)
    assert reply.status == 500 and reply.code == "1002", reply
    assert b"not UTF-8" in reply.body, reply


def test_a_string_that_is_not_utf8_is_stored_as_sent(stack: Settings, unique: str) -> None:
    writer = writer_of(stack)
    table = f"default.bytes_{unique}"
    curl(stack, data=f"CREATE TABLE {table} (s String) ENGINE = Memory".encode(), user=writer)
    try:
        reply = curl(
            stack, data=f"INSERT INTO {table} VALUES ('\xfe;')".encode("latin-1"), user=writer
        )
        assert reply.status == 200, reply
        reply = curl(stack, data=f"SELECT hex(s) FROM {table}".encode(), user=writer)
        assert reply.body == b"FE3B\n", reply
    finally:
        curl(stack, data=f"DROP TABLE {table}".encode(), user=writer)


def test_tab_separated_insert_data_keeps_its_trailing_semicolon(
    stack: Settings, unique: str
) -> None:
    """The data after ``FORMAT TabSeparated`` is data, its ``;`` too (body, URL, form, client).

    (clickhouse-connect's ``command`` strips a trailing ``;`` from its text before sending,
    whatever the server: its ``raw_insert`` or ``command(…, data=…)`` carry such data.)
    """
    writer = writer_of(stack)
    table = f"default.semi_{unique}"
    curl(stack, data=f"CREATE TABLE {table} (s String) ENGINE = Memory".encode(), user=writer)
    try:
        insert = f"INSERT INTO {table} FORMAT TabSeparated"
        assert curl(stack, data=f"{insert}\na;".encode(), user=writer).status == 200
        assert curl(stack, data=f"{insert} b;".encode(), user=writer).status == 200
        assert curl(stack, insert, data=b"c;", user=writer).status == 200
        assert curl_form(stack, writer, f"query={insert}\nd;") == (200, b"")
        client = get_client(stack)
        client.raw_insert(table, ["s"], insert_block="e;\n", fmt="TabSeparated")
        client.command(insert, data="f;")
        rows = client.query(f"SELECT s FROM {table} ORDER BY s").result_rows
        assert rows == [("a;",), ("b;",), ("c;",), ("d;",), ("e;",), ("f;",)]
    finally:
        curl(stack, data=f"DROP TABLE {table}".encode(), user=writer)


@pytest.mark.parametrize("who", ["writer", "analyst"])
def test_native_results_keep_their_time_zone(stack: Settings, who: str) -> None:
    """clickhouse-connect's client_protocol_version probe succeeds; DateTime types keep their
    time zone, streamed or buffered in many blocks, and statements that are not SELECTs."""
    client = get_client(stack, analyst=who == "analyst")
    assert client.protocol_version == 54405  # not 0: the probe's BlockInfo came back
    query = (
        "SELECT number AS n, toDateTime(number, 'Europe/Berlin') AS b, toString(number) AS s, "
        "toDateTime64(number, 3, 'Asia/Tokyo') AS t FROM numbers(1000)"
    )
    for wait in (0, 1):
        settings = {"max_block_size": 100, "wait_end_of_query": wait} if who == "writer" else {}
        result = client.query(query, settings=settings)
        names = [t.name for t in result.column_types]
        assert names == [
            "UInt64",
            "DateTime('Europe/Berlin')",
            "String",
            "DateTime64(3, 'Asia/Tokyo')",
        ]
        rows = result.result_rows
        assert len(rows) == 1000 and rows[999][2] == "999"
        assert rows[999][1] == datetime.fromtimestamp(999, ZoneInfo("Europe/Berlin"))
        assert rows[999][3].tzinfo == ZoneInfo("Asia/Tokyo") and rows[999][3].timestamp() == 999
    assert ("default",) in client.query("SHOW DATABASES").result_rows
    assert client.query("DESCRIBE system.one").result_rows[0][:2] == ("dummy", "UInt8")


def test_native_blocks_as_the_protocol_version_asks(stack: Settings) -> None:
    """Raw HTTP: BlockInfo from version 1, the custom-serialization byte from 54454."""
    user = analyst_of(stack)
    query = b"SELECT 1 AS check, toDateTime(0, 'UTC') AS u FORMAT Native"
    column = b"\x05check\x05UInt8"
    answers = {
        version: curl(
            stack, data=query, params={"client_protocol_version": version}, user=user
        ).body
        for version in ("0", "54405", "54454")
    }
    assert answers["0"].startswith(b"\x02\x01" + column + b"\x01\x01u\x08DateTime\x00")
    block_info = b"\x01\x00\x02\xff\xff\xff\xff\x00"
    assert answers["54405"].startswith(block_info + b"\x02\x01" + column + b"\x01")
    assert b"\x01u\x0fDateTime('UTC')\x00\x00\x00\x00" in answers["54405"]
    assert answers["54454"].startswith(block_info + b"\x02\x01" + column + b"\x00\x01")
    assert answers["54454"].endswith(b"\x01u\x0fDateTime('UTC')\x00\x00\x00\x00\x00")


# --- item 6: different clients run side by side -------------------------------------------------


def _timed(run: Callable[[], object], marks: dict[str, float], name: str) -> None:
    marks[f"{name} start"] = time.monotonic()
    run()
    marks[f"{name} end"] = time.monotonic()


def test_two_slow_queries_run_side_by_side(stack: Settings) -> None:
    """Two ``SELECT sleep(1)`` (the writer's and the analyst's) overlap in time."""
    marks: dict[str, float] = {}
    users = {"writer": writer_of(stack), "analyst": analyst_of(stack)}
    threads = [
        threading.Thread(
            target=_timed,
            args=(lambda u=user: curl(stack, data=b"SELECT sleep(1)", user=u), marks, name),
        )
        for name, user in users.items()
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # each starts before the other ends: they ran at the same time
    assert marks["writer start"] < marks["analyst end"], marks
    assert marks["analyst start"] < marks["writer end"], marks
    overlap = min(marks["writer end"], marks["analyst end"]) - max(
        marks["writer start"], marks["analyst start"]
    )
    assert overlap > 0.5, marks


def test_inserts_run_while_an_analyst_query_runs(stack: Settings, unique: str) -> None:
    """An analyst's 5-second query does not hold up the worker's inserts."""
    writer = get_client(stack)
    table = f"default.side_{unique}"
    writer.command(f"CREATE TABLE {table} (n UInt32, s String) ENGINE = MergeTree ORDER BY n")
    try:
        analyst = get_client(stack, analyst=True)
        marks: dict[str, float] = {}
        slow = threading.Thread(
            target=_timed,
            args=(lambda: analyst.query("SELECT sleep(3) + sleep(2)"), marks, "analyst"),
        )
        slow.start()
        time.sleep(0.5)  # the analyst's query is running
        marks["inserts start"] = time.monotonic()
        for batch in range(10):
            writer.insert(table, [(batch * 100 + i, "x") for i in range(100)], ["n", "s"])
        marks["inserts end"] = time.monotonic()
        slow.join()
        assert writer.command(f"SELECT count() FROM {table}") == 1000
        assert marks["analyst start"] < marks["inserts start"], marks
        assert marks["inserts end"] < marks["analyst end"], marks
    finally:
        writer.command(f"DROP TABLE IF EXISTS {table}")


def test_a_busy_session_refuses_a_second_request(stack: Settings, unique: str) -> None:
    """One HTTP session runs one query at a time: ClickHouse's 373 SESSION_IS_LOCKED."""
    writer = writer_of(stack)
    session = {"session_id": f"busy-{unique}"}
    slow = threading.Thread(
        target=curl,
        args=(stack,),
        kwargs={"data": b"SELECT sleep(2)", "params": session, "user": writer},
    )
    slow.start()
    time.sleep(0.7)
    reply = curl(stack, data=b"SELECT 1", params=session, user=writer)
    slow.join()
    assert reply.status == 500 and reply.code == "373", reply
    assert b"(SESSION_IS_LOCKED)" in reply.body, reply
    assert curl(stack, data=b"SELECT 1", params=session, user=writer).body == b"1\n"
