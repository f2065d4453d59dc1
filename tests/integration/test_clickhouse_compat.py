"""The embedded ClickHouse endpoint answers real clients as a ClickHouse server does (issue 20,
items 1, 2, 3 and 5), through clickhouse-connect, curl and raw HTTP."""

from __future__ import annotations

import pytest

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
