"""The embedded ClickHouse endpoint answers real clients as a ClickHouse server does (issue 20,
items 1, 2, 3 and 5), through clickhouse-connect, curl and raw HTTP."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

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
