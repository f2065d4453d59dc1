"""Attacks on the embedded ClickHouse endpoint (issue 15, items 1-4), through curl, raw HTTP and
clickhouse-connect: the analyst only reads, the engine decides, nothing is served before
authentication, and the front end's own resources are bounded."""

from __future__ import annotations

import contextlib
import gzip
import socket
import stat
import subprocess
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import clickhouse_connect
import pytest
from clickhouse_connect.driver.exceptions import DatabaseError

from pipelines.clickhouse import get_client, temporary_database
from pipelines.settings import Settings
from pipelines.stack import control

pytestmark = pytest.mark.integration

SMUGGLED = [
    "SELECT $$'$$; CREATE TABLE {db}.x (a Int8) ENGINE=Memory; SELECT $$'$$",
    "SELECT ‘'’; CREATE TABLE {db}.x (a Int8) ENGINE=Memory; SELECT ‘'’",
]


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def code(self) -> str:
        return self.headers.get("x-clickhouse-exception-code", "")


def curl(
    settings: Settings,
    query: str | None = None,
    *,
    user: tuple[str, str] | None = None,
    data: bytes | None = None,
    params: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> Reply:
    """One request with curl (the query in the URL, ``data`` as the POST body)."""
    args = ["curl", "-sS", "-i", "--max-time", "60", "-G" if data is None else "-XPOST"]
    if data is not None:
        args[-1:] = ["--data-binary", "@-"]
    url = settings.clickhouse_url.rstrip("/") + "/"
    fields = {"query": query} if query is not None else {}
    for name, value in {**fields, **(params or {})}.items():
        args += ["--url-query", f"{name}={value}"]
    if user is not None:
        args += ["-u", f"{user[0]}:{user[1]}"]
    for name, value in (headers or {}).items():
        args += ["-H", f"{name}: {value}"]
    done = subprocess.run([*args, url], input=data, capture_output=True, check=True, timeout=90)
    head, _, body = done.stdout.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    fields = dict(line.split(":", 1) for line in lines[1:] if ":" in line)
    return Reply(
        int(lines[0].split()[1]), {k.strip().lower(): v.strip() for k, v in fields.items()}, body
    )


def writer_of(settings: Settings) -> tuple[str, str]:
    kwargs = settings.clickhouse_kwargs()
    return kwargs["username"], kwargs["password"]


def analyst_of(settings: Settings) -> tuple[str, str]:
    return settings.clickhouse_analyst_user, settings.clickhouse_analyst_password


@pytest.fixture
def db(stack: Settings, unique: str) -> Iterator[str]:
    writer = get_client(stack)
    with temporary_database(writer, f"sec_{unique}") as name:
        writer.command(f"CREATE TABLE {name}.t (a Int8) ENGINE = MergeTree ORDER BY a")
        writer.command(f"INSERT INTO {name}.t VALUES (1), (2)")
        yield name


def exists(settings: Settings, table: str) -> bool:
    return bool(get_client(settings).command(f"EXISTS TABLE {table}"))


# --- item 1: one statement, read-only by the engine ---------------------------------------------


@pytest.mark.parametrize("template", SMUGGLED, ids=["dollar", "curly"])
def test_smuggled_statements_do_not_run_through_curl(
    stack: Settings, db: str, template: str
) -> None:
    reply = curl(stack, data=template.format(db=db).encode(), user=analyst_of(stack))
    assert reply.status == 400 and reply.code == "62", reply
    assert b"Multi-statements are not allowed" in reply.body
    reply = curl(stack, template.format(db=db), user=analyst_of(stack))  # GET
    assert reply.status == 400 and reply.code == "62", reply
    assert not exists(stack, f"{db}.x")


@pytest.mark.parametrize("template", SMUGGLED, ids=["dollar", "curly"])
def test_smuggled_statements_do_not_run_through_clickhouse_connect(
    stack: Settings, db: str, template: str
) -> None:
    analyst = get_client(stack, analyst=True)
    with pytest.raises(DatabaseError, match="Multi-statements are not allowed"):
        analyst.command(template.format(db=db))
    assert not exists(stack, f"{db}.x")


@pytest.mark.parametrize(
    "statement",
    [
        "CREATE TABLE {db}.x (a Int8) ENGINE = Memory",
        "INSERT INTO {db}.t SELECT 9",
        "DROP TABLE {db}.t",
        "SYSTEM DROP DNS CACHE",
        "CREATE TEMPORARY TABLE x (a Int8)",
    ],
)
def test_the_engine_refuses_writes_of_the_analyst(stack: Settings, db: str, statement: str) -> None:
    reply = curl(stack, data=statement.format(db=db).encode(), user=analyst_of(stack))
    assert reply.status == 403 and reply.code == "164", reply
    assert b"Cannot execute query in readonly mode" in reply.body  # the engine's own words
    assert get_client(stack).command(f"SELECT count() FROM {db}.t") == 2


def test_the_analyst_session_is_readonly_1_in_the_engine(stack: Settings) -> None:
    analyst = get_client(stack, analyst=True)
    assert analyst.command("SELECT getSetting('readonly')") == 1
    assert get_client(stack).command("SELECT getSetting('readonly')") == 0


# --- item 2: INTO OUTFILE -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "statement",
    [
        "SELECT 'import os' INTO OUTFILE '{path}'",
        "SELECT 1 INTO OUTFILE '{path}' COMPRESSION 'gzip' FORMAT CSV",
        "EXPLAIN SELECT 1 INTO OUTFILE '{path}'",
        "SHOW CREATE TABLE {db}.t INTO OUTFILE '{path}'",
        "EXISTS TABLE {db}.t INTO OUTFILE '{path}'",
    ],
)
def test_into_outfile_writes_nothing(
    stack: Settings, db: str, tmp_path: Path, statement: str
) -> None:
    target = tmp_path / "evil.pth"
    sql = statement.format(db=db, path=target)
    reply = curl(stack, data=sql.encode(), user=analyst_of(stack))
    assert reply.status == 403 and reply.code == "358", reply
    with pytest.raises(DatabaseError, match="INTO OUTFILE is not allowed"):
        get_client(stack, analyst=True).command(sql)
    assert not target.exists()


# --- item 3: files, URLs, other servers, programs -------------------------------------------------


@pytest.mark.parametrize(
    ("statement", "code"),
    [
        ("SELECT file('/etc/passwd')", "497"),
        ("SELECT length(file('/proc/self/environ'))", "497"),
        ("SELECT arrayMap(p -> file(p), ['/etc/passwd'])", "497"),
        ("SELECT * FROM file('/etc/passwd', 'LineAsString')", "497"),
        ("SELECT * FROM url('http://127.0.0.1:9/', 'LineAsString')", "164"),
        ("SELECT * FROM remote('127.0.0.1', system.one)", "164"),
        ("SELECT * FROM s3('http://127.0.0.1:9/bucket/x.csv', 'CSV')", "164"),
        ("SELECT * FROM executable('cat /etc/passwd', 'LineAsString', 'x String')", "164"),
        ("SELECT * FROM python(settings)", "164"),
    ],
)
def test_the_analyst_reads_nothing_outside_the_database(
    stack: Settings, statement: str, code: str
) -> None:
    reply = curl(stack, data=statement.encode(), user=analyst_of(stack))
    assert (reply.status, reply.code) == (403, code), reply
    assert b"root:" not in reply.body and b"GOVSTREAM" not in reply.body
    with pytest.raises(DatabaseError, match=f"[Cc]ode: {code}"):
        get_client(stack, analyst=True).query(statement)


def test_reads_that_stay_inside_still_work(stack: Settings, db: str) -> None:
    analyst = get_client(stack, analyst=True)
    assert analyst.command(f"SELECT sum(a) FROM {db}.t") == 3
    assert analyst.command("SELECT count() FROM numbers(10)") == 10
    found = analyst.query(f"SELECT a FROM {db}.t WHERE a = {{a:Int8}}", {"a": 2}).result_rows
    assert found == [(2,)]
    reply = curl(stack, f"SELECT a FROM {db}.t ORDER BY a FORMAT CSV", user=analyst_of(stack))
    assert (reply.status, reply.body) == (200, b"1\n2\n")
    assert reply.headers["x-clickhouse-format"] == "CSV"
    reply = curl(stack, data=f"SHOW TABLES FROM {db}".encode(), user=analyst_of(stack))
    assert (reply.status, reply.body) == (200, b"t\n")


# --- item 4: settings, authentication, bodies, headers, sockets ---------------------------------


@pytest.mark.parametrize(
    "setting",
    [
        {"readonly": "0"},
        {"readonly": "2"},
        {"max_threads": "1"},
        {"max_execution_time": "1"},
        {"allow_introspection_functions": "0"},
        {"max_result_rows": "1"},
    ],
)
def test_the_analyst_cannot_change_settings_by_url(
    stack: Settings, setting: dict[str, str]
) -> None:
    reply = curl(stack, data=b"SELECT 1", params=setting, user=analyst_of(stack))
    assert reply.status == 403 and reply.code == "164", reply
    assert b"in readonly mode" in reply.body


def test_the_analyst_cannot_change_settings_in_the_statement(stack: Settings) -> None:
    for sql in ("SET max_threads = 1", "SELECT 1 SETTINGS readonly = 0"):
        reply = curl(stack, data=sql.encode(), user=analyst_of(stack))
        assert reply.status == 403 and reply.code == "164", (sql, reply)


def test_a_request_without_credentials_is_not_the_writer(stack: Settings, unique: str) -> None:
    for sql in (f"CREATE DATABASE nocred_{unique}", "SELECT 1"):
        reply = curl(stack, data=sql.encode())
        assert reply.status == 401 and reply.code == "516", reply
    reply = curl(stack, data=b"SELECT 1", user=("default", ""))
    assert reply.status == 401 and reply.code == "516", reply
    with pytest.raises(DatabaseError, match="516|Authentication failed"):
        host, port = stack.clickhouse_address
        clickhouse_connect.get_client(host=host, port=port, username="default", password="")
    assert not exists(stack, f"nocred_{unique}.t")
    assert get_client(stack).command(f"EXISTS DATABASE nocred_{unique}") == 0


def test_the_writer_has_a_generated_password_in_the_home(stack: Settings) -> None:
    if stack.clickhouse_password:
        pytest.skip("the writer's password is set in the environment")
    path = stack.clickhouse_password_file
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    password = path.read_text().strip()
    assert len(password) >= 32
    assert stack.clickhouse_kwargs()["password"] == password
    assert curl(stack, data=b"SELECT 1", user=(stack.clickhouse_user, password)).status == 200
    assert curl(stack, data=b"SELECT 1", user=(stack.clickhouse_user, "")).status == 401


def _raw(settings: Settings, request: bytes, *, timeout: float = 10.0) -> bytes:
    """Send ``request`` on a fresh socket and read until the server closes or answers."""
    with socket.create_connection(settings.clickhouse_address, timeout=timeout) as sock:
        sock.sendall(request)
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
        return answer


def test_authentication_comes_before_the_body(stack: Settings) -> None:
    """A 1 GiB Content-Length with a wrong password is answered at once, body unread."""
    started = time.monotonic()
    answer = _raw(
        stack,
        b"POST / HTTP/1.1\r\nHost: x\r\nX-ClickHouse-User: analyst\r\n"
        b"X-ClickHouse-Key: wrong\r\nContent-Length: 1073741824\r\n\r\nSELECT",
    )
    assert answer.startswith(b"HTTP/1.1 401"), answer
    assert b"X-ClickHouse-Exception-Code: 516" in answer
    assert time.monotonic() - started < 5


def _gzip_of_zeros(size: int) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = bytes(1 << 20)
    parts = [packer.compress(block) for _ in range(size >> 20)]
    return b"".join([*parts, packer.flush()])


def _peak_rss_kib(stack: Settings) -> int:
    pid = next(s.pid for s in control.status(stack) if s.name == "clickhouse")
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


@pytest.mark.parametrize("who", ["analyst", "writer"])
def test_a_gzip_bomb_is_refused_without_inflating_it(stack: Settings, who: str) -> None:
    if who == "writer":
        user, size = writer_of(stack), 1 << 30  # 1 GiB of zeros in about 1 MiB
    else:
        user, size = analyst_of(stack), 64 << 20
    bomb = _gzip_of_zeros(size)
    before = _peak_rss_kib(stack)
    reply = curl(stack, data=bomb, user=user, headers={"Content-Encoding": "gzip"})
    assert reply.status == 413 and reply.code == "307", reply
    grown_mib = (_peak_rss_kib(stack) - before) / 1024
    assert grown_mib < 200, f"the service grew by {grown_mib:.0f} MiB"


def test_a_body_over_the_limit_is_refused(stack: Settings) -> None:
    answer = _raw(
        stack,
        b"POST / HTTP/1.1\r\nHost: x\r\nX-ClickHouse-User: analyst\r\n"
        b"X-ClickHouse-Key: " + stack.clickhouse_analyst_password.encode() + b"\r\n"
        b"Content-Length: 1073741824\r\n\r\nSELECT",
    )
    assert answer.startswith(b"HTTP/1.1 413"), answer
    assert b"X-ClickHouse-Exception-Code: 307" in answer


def test_a_query_id_with_a_line_break_injects_no_header(stack: Settings) -> None:
    reply = curl(
        stack,
        data=b"SELECT 1",
        params={"query_id": "a\r\nX-Injected: yes\r\nSet-Cookie: s=1"},
        user=analyst_of(stack),
    )
    assert "x-injected" not in reply.headers and "set-cookie" not in reply.headers
    assert reply.status == 400 and reply.code == "408", reply
    ok = curl(stack, data=b"SELECT 1", params={"query_id": "q-1"}, user=analyst_of(stack))
    assert ok.status == 200 and ok.headers["x-clickhouse-query-id"] == "q-1"


def test_a_silent_client_is_disconnected(stack: Settings) -> None:
    """A half-sent request does not hold a server thread forever (socket timeouts)."""
    with socket.create_connection(stack.clickhouse_address, timeout=60) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\n")  # and then nothing
        started = time.monotonic()
        with contextlib.suppress(TimeoutError):
            sock.recv(65536)  # b"" once the server closes
        elapsed = time.monotonic() - started
    assert elapsed < 30, f"the server waited {elapsed:.0f} s"


def test_writer_clients_keep_working(stack: Settings, db: str) -> None:
    writer = get_client(stack)
    writer.insert(f"{db}.t", [[3]], column_names=["a"])
    assert writer.command(f"SELECT sum(a) FROM {db}.t") == 6
    packed = gzip.compress(f"INSERT INTO {db}.t FORMAT CSV\n4\n".encode())
    reply = curl(stack, data=packed, user=writer_of(stack), headers={"Content-Encoding": "gzip"})
    assert reply.status == 200, reply
    assert writer.command(f"SELECT sum(a) FROM {db}.t") == 10
