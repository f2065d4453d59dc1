"""The embedded ClickHouse HTTP endpoint, driven by clickhouse-connect with its defaults and by
plain HTTP (what curl sends)."""

from __future__ import annotations

import base64
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError

from pipelines.clickhouse import get_client, temporary_database
from pipelines.settings import Settings

pytestmark = pytest.mark.integration

COLUMNS = ["id", "name", "at", "tags", "score"]
DDL = (
    "CREATE TABLE {db}.t (id UInt64, name String, at DateTime64(3, 'UTC'), tags Array(String), "
    "score Nullable(Float64)) ENGINE = MergeTree ORDER BY id "
    "SETTINGS non_replicated_deduplication_window = 100"
)


@pytest.fixture
def db(stack: Settings, unique: str) -> Iterator[str]:
    client = get_client(stack)
    with temporary_database(client, f"test_{unique}") as name:
        client.command(DDL.format(db=name))
        yield name


def _rows(n: int) -> list[list[object]]:
    at = datetime(2026, 11, 25, 8, 30, tzinfo=UTC)
    return [[i, f"张{i}", at, ["路灯", "井盖"], None if i % 3 else i / 2] for i in range(n)]


@pytest.mark.parametrize("compress", [True, "zstd", "gzip", False])
def test_clickhouse_connect_inserts_and_reads_100k_rows(
    stack: Settings, db: str, compress: bool | str
) -> None:
    client = get_client(stack, compress=compress)
    summary = client.insert(f"{db}.t", _rows(100_000), column_names=COLUMNS)
    assert summary.written_rows == 100_000
    result = client.query(
        f"SELECT count(), sum(id), uniqExact(name), countIf(score IS NULL) FROM {db}.t"
    )
    assert result.result_rows == [(100_000, 4_999_950_000, 100_000, 66_666)]
    first = client.query(f"SELECT * FROM {db}.t ORDER BY id LIMIT 2").result_rows
    assert first[1][1:4] == ("张1", datetime(2026, 11, 25, 8, 30), ["路灯", "井盖"])


def test_server_side_parameters_cannot_inject(stack: Settings, db: str) -> None:
    client = get_client(stack)
    client.insert(f"{db}.t", _rows(10), column_names=COLUMNS)
    hostile = "张1' OR 1=1 --"
    bound = client.query(f"SELECT count() FROM {db}.t WHERE name = {{n:String}}", {"n": hostile})
    assert bound.result_rows == [(0,)]
    client_side = client.query(f"SELECT count() FROM {db}.t WHERE name = %(n)s", {"n": hostile})
    assert client_side.result_rows == [(0,)]


def test_errors_carry_clickhouse_code_and_text(stack: Settings, db: str) -> None:
    client = get_client(stack)
    with pytest.raises(DatabaseError, match="code: 60"):
        client.query(f"SELECT * FROM {db}.missing")
    with pytest.raises(DatabaseError, match="code: 62"):
        client.command("SELEC 1")
    with pytest.raises(DatabaseError, match="Multi-statements"):
        client.command(f"SELECT 1; DROP DATABASE {db}")
    assert client.command(f"EXISTS DATABASE {db}") == 1


def test_deduplication_token_makes_a_retried_insert_land_once(stack: Settings, db: str) -> None:
    client = get_client(stack)
    token = {"insert_deduplication_token": "batch-1"}
    for _ in range(2):
        client.insert(f"{db}.t", _rows(50), column_names=COLUMNS, settings=token)
    assert client.command(f"SELECT count() FROM {db}.t") == 50


def test_an_inserts_url_settings_last_that_insert(stack: Settings, db: str) -> None:
    """The endpoint runs an insert's URL settings as its SETTINGS clause: an unknown one is
    refused with the engine's code, and nothing of it stays on the pooled session."""
    client = get_client(stack)
    with pytest.raises(DatabaseError, match="code: 115"):  # UNKNOWN_SETTING
        client.insert(f"{db}.t", _rows(3), column_names=COLUMNS, settings={"no_such_x": 1})
    limited = {"max_partitions_per_insert_block": 1, "insert_deduplication_token": "b-2"}
    client.insert(f"{db}.t", _rows(4), column_names=COLUMNS, settings=limited)
    assert client.command("SELECT getSetting('max_partitions_per_insert_block')") == 100
    assert client.command(f"SELECT count() FROM {db}.t") == 4


def test_analyst_reads_but_cannot_write_or_lift_readonly(stack: Settings, db: str) -> None:
    get_client(stack).insert(f"{db}.t", _rows(5), column_names=COLUMNS)
    analyst = get_client(stack, analyst=True)
    assert analyst.command(f"SELECT count() FROM {db}.t") == 5
    refused = {
        "insert": lambda: analyst.insert(f"{db}.t", _rows(1), column_names=COLUMNS),
        "alter": lambda: analyst.command(f"ALTER TABLE {db}.t DELETE WHERE 1"),
        "drop": lambda: analyst.command(f"DROP TABLE {db}.t"),
        "settings clause": lambda: analyst.command("SELECT 1 SETTINGS readonly = 0"),
        "readonly param": lambda: analyst.command("SELECT 1", settings={"readonly": 0}),
        "file()": lambda: analyst.command("SELECT * FROM file('/etc/passwd', 'LineAsString')"),
    }
    for what, attempt in refused.items():
        # clickhouse-connect itself refuses to send a setting system.settings marks readonly
        # (as against a ClickHouse server); curl meets the engine's 164 (test_clickhouse_security)
        with pytest.raises(DatabaseError, match=r"code: (164|497)|Setting readonly is readonly"):
            attempt()
            pytest.fail(f"the analyst could run: {what}")
    assert get_client(stack).command(f"SELECT count() FROM {db}.t") == 5


def _http(
    stack: Settings, query: str, *, data: bytes | None = None, user: tuple[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    url = stack.clickhouse_url.rstrip("/") + "/?" + urllib.parse.urlencode({"query": query})
    req = urllib.request.Request(url, data=data)
    if user is None:  # the writer
        kwargs = stack.clickhouse_kwargs()
        user = (kwargs["username"], kwargs["password"])
    if user:
        token = base64.b64encode(f"{user[0]}:{user[1]}".encode()).decode()
        req.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 (test URL)
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def test_plain_http_like_curl(stack: Settings, db: str) -> None:
    status, _, body = _http(stack, f"INSERT INTO {db}.t (id, name) FORMAT CSV", data=b"1,a\n2,b\n")
    assert status == 200, body
    status, headers, body = _http(stack, f"SELECT id, name FROM {db}.t ORDER BY id FORMAT CSV")
    assert (status, body) == (200, b'1,"a"\n2,"b"\n')
    assert headers["X-ClickHouse-Format"] == "CSV"
    # GET is read-only for every user, as in ClickHouse
    status, headers, body = _http(stack, f"DROP TABLE {db}.t")
    assert status == 403 and headers["X-ClickHouse-Exception-Code"] == "164"
    status, headers, body = _http(stack, "SELECT 1", data=b"", user=("analyst", "wrong"))
    assert status == 401 and headers["X-ClickHouse-Exception-Code"] == "516"
    assert body.startswith(b"Code: 516.")
    with urllib.request.urlopen(stack.clickhouse_url.rstrip("/") + "/ping", timeout=5) as resp:  # noqa: S310
        assert resp.read() == b"Ok.\n"


def test_concurrent_clients_are_safe(stack: Settings, db: str) -> None:
    def work(k: int) -> int:
        client: Client = get_client(stack)
        client.insert(
            f"{db}.t",
            [[k * 1000 + i, "x", datetime.now(UTC), [], None] for i in range(1000)],
            column_names=COLUMNS,
        )
        return int(client.command(f"SELECT count() FROM {db}.t WHERE id >= {k * 1000}"))

    with ThreadPoolExecutor(8) as pool:
        seen = list(pool.map(work, range(16)))
    assert all(n >= 1000 for n in seen)
    assert get_client(stack).query(f"SELECT count(), uniqExact(id) FROM {db}.t").result_rows == [
        (16000, 16000)
    ]
