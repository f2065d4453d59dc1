"""The embedded ClickHouse: the ClickHouse HTTP interface over one chDB session.

chDB runs the real ClickHouse engine in-process, but only one process may open a data
directory. This service owns ``Settings().data_dir / "clickhouse"`` and serves everyone else
(the worker, clickhouse-connect, curl) over the ClickHouse HTTP protocol:

* ``GET``/``POST`` ``/`` with the query in the ``query`` parameter, the body, or both (the
  parameter first, then a line break, then the body, as ClickHouse does);
* ``multipart/form-data`` bodies (``curl -F``; clickhouse-connect sends one once bound
  parameters pass 4 KiB): the form's fields are parameters as in the URL and its ``query``
  field the query (:func:`parse_form`); credentials only from the head, files (external
  data) refused;
* ``INSERT … FORMAT <fmt>`` followed by data in any input format chDB reads (Native,
  RowBinary, JSONEachRow, CSV, TSV, …): the data goes to a temporary file that the statement
  reads with ``FROM INFILE``, so binary data is never parsed as SQL;
* ``database``, ``default_format``, ``query_id``, ``param_<name>`` and any ClickHouse setting
  as URL parameters (applied for the one query, then reset);
* request bodies compressed with ``Content-Encoding`` lz4, zstd, gzip or deflate, and response
  compression by ``Accept-Encoding`` when ``enable_http_compression=1`` (what
  clickhouse-connect negotiates by default);
* users over basic auth, ``X-ClickHouse-User``/``X-ClickHouse-Key`` or ``user``/``password``
  parameters: the writer (``GOVSTREAM_CLICKHOUSE_USER``, whose password is generated into
  the home when none is set: :func:`writer_password`) and the read-only analyst
  (``GOVSTREAM_CLICKHOUSE_ANALYST_USER``). Nothing is served, and no body is read, before
  the user is authenticated; a request without credentials is refused (516), never the writer;
* ``session_id`` (``session_timeout``, default 60 s, at most 3600; ``session_check``): a
  session of the user's own, a chDB session of its own that keeps its ``SET``, ``USE`` and
  temporary tables and is closed once unused for its timeout (:meth:`Engine._session`); a
  writer's read-only request in a session runs on the shared read-only session;
* errors as non-200 answers with ClickHouse's error text and ``X-ClickHouse-Exception-Code``;
  ``/ping`` answers ``Ok.``.

Read-only (the analyst, every ``GET``, and ``readonly`` ≠ 0 in the URL) is the engine's: those
requests run on a second chDB session over the same data that was given ``SET readonly = 1``
when it opened, which ClickHouse forbids to lower again. So the engine itself refuses writes,
DDL, ``SET``, ``SETTINGS`` clauses, settings in the URL and the table functions that reach
outside (``file``, ``url``, ``remote``, ``s3``, ``executable``, chDB's ``python`` …), with
its own READONLY error (164), as a ClickHouse server does for a ``readonly = 1`` user. On
top, for a read-only request (see :meth:`Engine.read`):

* the statement is parsed by the engine (``formatQuerySingleLine`` of the text bound as a
  query parameter, so the text is never run as SQL): more than one statement is the engine's
  "Multi-statements are not allowed" (62), and what runs is the engine's own rendering of
  the one statement it parsed;
* what ``readonly = 1`` lets through in chDB (clickhouse-local) is refused from the engine's
  parse (``EXPLAIN AST``, :func:`chsql.outside_problem`): ``INTO OUTFILE`` (358, as the
  server's HTTP interface does) and the ``file()`` function (497).
* tables only the writer reads (``dead_letter_payloads``) are refused (497) from the same
  parse: :func:`pipelines.access.analyst_problem`.

The front end's own resources are bounded: request bodies (:data:`MAX_BODY_BYTES`, and
:data:`MAX_READONLY_BODY_BYTES` for read-only requests, which carry no data) before and after
Content-Encoding, decompressed as a stream that stops at the limit (413, code 307); sockets
time out after :data:`SOCKET_TIMEOUT_S`; a ``query_id`` that is not printable ASCII is
refused (408), and no header carries a line break.

Results are streamed as ClickHouse does unless the client sets ``wait_end_of_query=1``: a
``SELECT`` whose output format concatenates (:data:`STREAMABLE_FORMATS`: TSV, CSV, the
JSON*EachRow family, RowBinary, Native, RawBLOB) goes out in HTTP/1.1 chunks as chDB
produces its blocks (compressed piece by piece when asked), and a query that fails after its
first rows ends the body with ClickHouse's exception text (status 200, as the server). Limits
of chDB 4.4 (measured): it streams only ``SELECT``/``WITH`` (``SHOW``, ``EXPLAIN``, … and
other formats are sent whole), and it runs a query ahead of its reader and drops the blocks
not yet handed over once the query fails, so rows made just before a failure can be lost and
an early failure comes as an HTTP error with no rows (``SELECT number, throwIf(number=3)
FROM numbers(10)`` at ``max_block_size=1``: 200 with 0 to 3 rows, or 500, varying from run to
run; 3 rows every time when each row takes 0.2 s).

Native results honour ``client_protocol_version`` (:func:`native_for_protocol`): chDB writes
them as for protocol 0, and the front end adds each block's BlockInfo (from version 1), gives
DateTime types their time zone back from the engine's ``DESCRIBE`` of the query (from 54337;
for SELECTs, and only when the result holds a DateTime) and marks each column's
serialization as the default one (from 54454), so clickhouse-connect keeps protocol 54405.

Requests of different clients run side by side on chDB sessions of their own (pools of
:data:`POOL_SIZE` for the writer and for read-only requests, see :class:`Engine`); query
bytes that are not UTF-8 (a String literal, say) reach the engine as sent.
``python -m pipelines.stack.clickhouse_http`` serves in the foreground.
"""

from __future__ import annotations

import base64
import dataclasses
import email.parser
import email.policy
import gzip
import hmac
import json
import logging
import os
import re
import secrets
import socket
import socketserver
import sys
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from pipelines import access
from pipelines.chsql import tokens
from pipelines.errors import StackError
from pipelines.settings import Settings
from pipelines.stack import chsql
from pipelines.stack.chsql import SqlError
from pipelines.stack.serve import bind_error, open_server, serve_until_signalled

log = logging.getLogger("govstream.clickhouse")

SETTING = "GOVSTREAM_CLICKHOUSE_URL"
VERSION_TEXT = "chDB"
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CODE = re.compile(r"Code:\s*(\d+)")
#: A header value we send: printable ASCII only (no CR/LF, so no header injection).
_HEADER_SAFE = re.compile(r"^[\x20-\x7e]*$")
#: A byte that is not UTF-8, as ``surrogateescape`` decodes it.
_SURROGATE = re.compile("[\udc80-\udcff]")

#: Largest request body, as sent and after Content-Encoding (the writer's INSERT data; the
#: worker's batches are a few MiB).
MAX_BODY_BYTES = 128 << 20
#: Largest body of a read-only request: a query, no data (ClickHouse's max_query_size is 256 KiB).
MAX_READONLY_BODY_BYTES = 1 << 20
#: Seconds a socket may stay silent (ClickHouse's http_receive_timeout is 30, keep-alive 10).
SOCKET_TIMEOUT_S = 10.0

#: URL parameters of the HTTP interface itself; every other one is a ClickHouse setting.
HTTP_PARAMS = frozenset(
    {
        "query",
        "database",
        "default_format",
        "query_id",
        "user",
        "password",
        "quota_key",
        "session_id",
        "session_timeout",
        "session_check",
        "compress",
        "decompress",
        "buffer_size",
        "wait_end_of_query",
        "enable_http_compression",
        "http_zlib_compression_level",
        "send_progress_in_http_headers",
        "http_headers_progress_interval_ms",
        "cancel_http_readonly_queries_on_client_close",
        "client_protocol_version",
        "http_response_buffer_size",
        "role",
    }
)

#: HTTP status for the ClickHouse error codes clients meet most (everything else: 500).
STATUS = {
    chsql.SYNTAX_ERROR: 400,
    chsql.BAD_ARGUMENTS: 400,
    chsql.UNKNOWN_SETTING: 400,
    chsql.UNKNOWN_FORMAT: 400,
    27: 400,  # CANNOT_PARSE_INPUT_ASSERTION_FAILED
    47: 400,  # UNKNOWN_IDENTIFIER
    53: 400,  # TYPE_MISMATCH
    60: 404,  # UNKNOWN_TABLE
    81: 404,  # UNKNOWN_DATABASE
    57: 500,  # TABLE_ALREADY_EXISTS
    chsql.READONLY: 403,
    chsql.ACCESS_DENIED: 403,
    chsql.INTO_OUTFILE_NOT_ALLOWED: 403,
    chsql.AUTHENTICATION_FAILED: 401,
    chsql.TOO_MANY_BYTES: 413,
    chsql.CANNOT_DECOMPRESS: 400,
    chsql.BAD_REQUEST_PARAMETER: 400,
    chsql.INVALID_SESSION_TIMEOUT: 400,
}


# --- compression -----------------------------------------------------------------------------


def too_big(limit: int) -> SqlError:
    return SqlError(
        chsql.TOO_MANY_BYTES, f"Request body exceeds {limit} bytes (with Content-Encoding undone)"
    )


def decompress(body: bytes, encoding: str, limit: int = MAX_BODY_BYTES) -> bytes:
    """The request body without its Content-Encoding (concatenated frames/members included).

    Decompresses as a stream and stops once the output passes ``limit``: a small bomb never
    inflates beyond it. Raises :class:`SqlError` TOO_MANY_BYTES (307) past the limit,
    CANNOT_DECOMPRESS (271) for a damaged stream, BAD_ARGUMENTS for an unknown encoding.
    """
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        if len(body) > limit:
            raise too_big(limit)
        return body
    try:
        if encoding in ("gzip", "x-gzip"):
            return _inflate(body, 16 + zlib.MAX_WBITS, limit)
        if encoding == "deflate":
            try:
                return _inflate(body, zlib.MAX_WBITS, limit)
            except zlib.error:
                return _inflate(body, -zlib.MAX_WBITS, limit)
        if encoding == "lz4":
            return _unlz4(body, limit)
        if encoding == "zstd":
            return _unzstd(body, limit)
    except SqlError:
        raise
    except Exception as exc:  # zlib.error, lz4's RuntimeError, zstandard.ZstdError, EOFError
        raise SqlError(
            chsql.CANNOT_DECOMPRESS, f"Cannot decompress the {encoding} body: {exc}"
        ) from exc
    raise SqlError(chsql.BAD_ARGUMENTS, f"Unknown Content-Encoding {encoding!r}")


class _Output:
    """Decompressed pieces, refused (307) once they pass the limit; no copy until the end."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.pieces: list[bytes] = []
        self.size = 0

    @property
    def room(self) -> int:
        """How much more output to ask for: one byte past the limit shows it is passed."""
        return self.limit + 1 - self.size

    def add(self, piece: bytes) -> None:
        self.pieces.append(piece)
        self.size += len(piece)
        if self.size > self.limit:
            self.pieces.clear()
            raise too_big(self.limit)

    def joined(self) -> bytes:
        return b"".join(self.pieces)


def _inflate(body: bytes, wbits: int, limit: int) -> bytes:
    out = _Output(limit)
    rest = body
    while rest:  # one zlib stream (gzip member) after the other
        unpack = zlib.decompressobj(wbits)
        data = rest
        while not unpack.eof:
            chunk = unpack.decompress(data, min(out.room, 1 << 20))
            out.add(chunk)
            data = unpack.unconsumed_tail
            if not chunk and not data:
                raise EOFError("the compressed stream ends early")
        rest = unpack.unused_data
    return out.joined()


def _unlz4(body: bytes, limit: int) -> bytes:
    import lz4.frame

    out = _Output(limit)
    rest = body
    while rest:
        unpack = lz4.frame.LZ4FrameDecompressor()
        data = rest
        while not unpack.eof:
            chunk = unpack.decompress(data, max_length=min(out.room, 1 << 20))
            out.add(chunk)
            data = b""
            if not chunk and unpack.needs_input and not unpack.eof:
                raise EOFError("the lz4 frame ends early")
        rest = unpack.unused_data
    return out.joined()


def _unzstd(body: bytes, limit: int) -> bytes:
    import zstandard

    # zstandard's decompressobj has no output limit: feed it small pieces (a zstd block
    # inflates at most 32768-fold, so 256 input bytes give at most 8 MiB)
    out = _Output(limit)
    view, at = memoryview(body), 0
    while at < len(view):
        unpack = zstandard.ZstdDecompressor().decompressobj()
        while at < len(view) and not unpack.eof:
            out.add(unpack.decompress(view[at : at + 256]))
            at += 256
        if not unpack.eof:
            raise EOFError("the zstd frame ends early")
        at = min(at, len(view)) - len(unpack.unused_data)  # the next frame starts there
    return out.joined()


def _accepted(header: str) -> list[str]:
    """Encodings of an Accept-Encoding header, in the client's order of preference."""
    ranked = []
    for n, part in enumerate(header.split(",")):
        name, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        if name and q > 0:
            ranked.append((-q, n, name.strip().lower()))
    return [name for _, _, name in sorted(ranked)]


def compress(body: bytes, accept: str) -> tuple[bytes, str | None]:
    """The response body compressed with the first supported encoding the client accepts."""
    for name in _accepted(accept):
        if name == "lz4":
            import lz4.frame

            return lz4.frame.compress(body), name
        if name == "zstd":
            import zstandard

            return zstandard.ZstdCompressor().compress(body), name
        if name == "gzip":
            return gzip.compress(body, compresslevel=3), name
        if name == "deflate":
            return zlib.compress(body, 3), name
    return body, None


class Packer:
    """Streaming response compression: the first supported encoding the client accepts.

    Each piece is compressed and flushed at once, so the client can read the rows sent so far.
    """

    def __init__(self, accept: str) -> None:
        self.encoding = next((n for n in _accepted(accept) if n in _STREAM_ENCODINGS), None)
        self._head = b""
        self._pack: Callable[[bytes], bytes] = bytes
        self._finish: Callable[[], bytes] = bytes
        if self.encoding == "lz4":
            import lz4.frame

            # auto_flush: each piece comes out whole, in one frame that ends with the answer
            lz4_packer = lz4.frame.LZ4FrameCompressor(auto_flush=True)
            self._head = lz4_packer.begin()
            self._pack, self._finish = lz4_packer.compress, lz4_packer.flush
        elif self.encoding == "zstd":
            import zstandard

            zstd_packer = zstandard.ZstdCompressor().compressobj()
            self._pack = lambda data: (
                zstd_packer.compress(data) + zstd_packer.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK)
            )
            self._finish = zstd_packer.flush
        elif self.encoding is not None:
            zlib_packer = zlib.compressobj(3, wbits=31 if self.encoding == "gzip" else 15)
            self._pack = lambda data: (
                zlib_packer.compress(data) + zlib_packer.flush(zlib.Z_SYNC_FLUSH)
            )
            self._finish = zlib_packer.flush

    def pack(self, data: bytes) -> bytes:
        head, self._head = self._head, b""
        return head + self._pack(data) if data else head

    def finish(self) -> bytes:
        return self.pack(b"") + self._finish()


_STREAM_ENCODINGS = ("lz4", "zstd", "gzip", "deflate")


@dataclass(frozen=True)
class Form:
    """A ``multipart/form-data`` body: its text fields and its files (external data)."""

    fields: dict[str, bytes]
    files: dict[str, bytes]


def parse_form(body: bytes, content_type: str) -> Form:
    """The parts of a ``multipart/form-data`` body, parsed by the standard library's ``email``.

    Parts with a ``filename`` are files (ClickHouse's external data), the others fields (the
    ``query``, ``param_<name>`` values and settings, as in the URL). ClickHouse's HTTP
    interface reads such bodies as an HTML form (``HTMLForm`` in its ``HTTPHandler``): the
    body is then not part of the query. Raises :class:`SqlError` BAD_REQUEST_PARAMETER (408)
    for a body that is not a form with a boundary.
    """
    head = b"Content-Type: " + content_type.encode("latin-1", "replace") + b"\r\n\r\n"
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    if not message.is_multipart() or not message.get_boundary():
        raise SqlError(chsql.BAD_REQUEST_PARAMETER, "The multipart/form-data body has no parts")
    fields: dict[str, bytes] = {}
    files: dict[str, bytes] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str) or not name:
            raise SqlError(chsql.BAD_REQUEST_PARAMETER, "A form part has no name")
        payload = part.get_payload(decode=True)
        value = payload if isinstance(payload, bytes) else b""
        (files if part.get_filename() is not None else fields)[name] = value
    return Form(fields, files)


# --- the engine --------------------------------------------------------------------------------


@dataclass(frozen=True)
class User:
    name: str
    password: str
    readonly: bool


@dataclass(frozen=True)
class Context:
    """What a request's URL says about its statement."""

    database: str | None  # None: the session's current one ("default" without a session)
    settings: dict[str, str]  # ClickHouse settings
    params: dict[str, str]  # values of the {name:Type} placeholders
    default_format: str
    session: SessionRequest | None = None
    protocol: int = 0  # client_protocol_version: how Native results are written


@dataclass(frozen=True)
class SessionRequest:
    """A request's ``session_id``, ``session_timeout`` and ``session_check``, and its user."""

    user: str
    id: str
    timeout: float
    check: bool
    readonly: bool  # the user's: the analyst's sessions are read-only in the engine


@dataclass
class Answer:
    """A statement's result: ``body``, then (streamed) the chunks of ``rest``.

    ``rest`` holds the statement's chDB session until it is exhausted or closed; a chunk may
    raise :class:`EngineError` (the query failed after its first rows were sent).
    """

    body: bytes
    format: str | None
    summary: dict[str, str]
    rest: _Rest | None = None
    streamed: bool = False  # body and each chunk of rest are one block of chDB's output each

    def close(self) -> None:
        """Release what a streamed answer still holds (its session), if not exhausted."""
        if self.rest is not None:
            self.rest.close()


#: The time zone of every query on the embedded endpoint (issue 17, item 7).
SESSION_TIMEZONE = "Asia/Shanghai"
#: ClickHouse's default ``session_timeout`` and its ``max_session_timeout`` (seconds).
DEFAULT_SESSION_TIMEOUT_S = 60.0
MAX_SESSION_TIMEOUT_S = 3600.0
#: Open HTTP sessions at most (each is a chDB session; its temporary tables hold memory;
#: clickhouse-connect opens one per client unless autogenerate_session_id=False).
MAX_SESSIONS = 1000
#: chDB sessions each pool (the writer's, the read-only one) keeps for requests without an
#: HTTP session: so many such queries of each kind run at once, the next one waits.
POOL_SIZE = 8
#: ClickHouse's SESSION_IS_LOCKED: a second request in an HTTP session that is busy.
SESSION_IS_LOCKED = 373

#: Output formats whose chunks, as chDB streams them (one format instance per block, measured
#: on chDB 4.4), concatenate to the whole result: no prefix, suffix or row delimiter. Results
#: in other formats (JSON, Pretty, TSVWithNames, Arrow, Parquet, …) are sent whole.
STREAMABLE_FORMATS = frozenset(
    {
        "TabSeparated",
        "TSV",
        "TabSeparatedRaw",
        "TSVRaw",
        "CSV",
        "JSONEachRow",
        "JSONLines",
        "NDJSON",
        "JSONCompactEachRow",
        "JSONStringsEachRow",
        "JSONCompactStringsEachRow",
        "RowBinary",
        "Native",
        "RawBLOB",
    }
)

#: First words of statements that answer with a result set (possibly empty).
_RESULT_KEYWORDS = frozenset(
    {"SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXPLAIN", "EXISTS", "CHECK", "VALUES", ""}
)


#: Statements chDB streams (its send_query refuses SHOW, EXPLAIN, DESCRIBE, INSERT, …): by
#: their first word (a parenthesis: '') and by the root of their ``EXPLAIN AST``.
_STREAMED_KEYWORDS = frozenset({"SELECT", "WITH", ""})
_STREAMED_ROOTS = frozenset({"SelectWithUnionQuery", "SelectIntersectExceptQuery", "SelectQuery"})


class SessionLocked(SqlError):
    """A request in an HTTP session that is running another one (ClickHouse's 373)."""

    def text(self) -> str:
        return f"Code: {self.code}. DB::Exception: {self.message}. (SESSION_IS_LOCKED)"


@dataclass
class _HttpSession:
    chdb: _Session
    timeout: float
    last_used: float
    busy: threading.Lock


#: seconds a request waits for a pooled session before one more is opened
OVERFLOW_AFTER_S = 10.0


class _Pool:
    """chDB sessions of one kind, opened on demand (at most ``size``), one request each."""

    def __init__(self, open_session: Callable[[], _Session], size: int) -> None:
        self.open_session = open_session
        self.size = size
        self.idle: list[_Session] = []
        self.all: list[_Session] = []
        self.free = threading.Condition()

    @contextmanager
    def take(self) -> Iterator[_Session]:
        """A session of the pool for the ``with`` block; waits while all ``size`` are busy,
        at most ``OVERFLOW_AFTER_S``: then it opens one more (logged), so sessions held by
        requests whose clients vanished (a worker killed mid-request) cannot stop the server."""
        with self.free:
            deadline = time.monotonic() + OVERFLOW_AFTER_S
            while not self.idle and len(self.all) >= self.size:
                left = deadline - time.monotonic()
                if left <= 0:
                    log.warning(
                        "all %d sessions of a pool busy for %.0f s: opening another",
                        len(self.all), OVERFLOW_AFTER_S,
                    )  # fmt: skip
                    break
                self.free.wait(left)
            if self.idle:
                session = self.idle.pop()
            else:
                session = self.open_session()
                self.all.append(session)
        try:
            yield session
        finally:
            with self.free:
                self.idle.append(session)
                self.free.notify()

    def close(self) -> None:
        with self.free:
            for session in self.all:
                session.session.close()
            self.all.clear()
            self.idle.clear()


class Engine:
    """chDB sessions over one data directory: pools for the writer and the read-only requests.

    A request without an HTTP session runs on a session of its pool: ``writers`` for the
    writer's statements, ``readers`` for every read-only request; each reader was given
    ``SET readonly = 1`` when it opened (ClickHouse refuses to lower it again; measured on
    chDB 4.4: sessions on one path share the data but not their settings).

    Queries of different chDB sessions run side by side (measured on chDB 4.4 with 2 cores:
    two ``SELECT sleep(1)`` on two sessions take 1.0 s together, on one session 2.0 s, as chDB
    serialises the queries of one connection; 26 000 concurrent parameterised queries on 2
    and 8 sessions never mixed their parameters). A session runs one request at a time,
    holding it until its streamed answer is sent, so each pool runs at most
    :data:`POOL_SIZE` requests at once and the next one waits for a free session.

    An HTTP ``session_id`` gets a chDB session of its own on the same directory (measured on
    chDB 4.4: opening one takes under a millisecond, and its ``SET`` values and temporary
    tables are its own), read-only like the readers for the analyst; it is closed once unused
    for its ``session_timeout``. At most :data:`MAX_SESSIONS` are open. A second request in a
    session that is busy is refused with SESSION_IS_LOCKED (373), as ClickHouse does.
    ``lock`` guards the table of HTTP sessions only.
    """

    def __init__(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.tmp = path / "http-tmp"
        self.tmp.mkdir(exist_ok=True)
        for stale in self.tmp.iterdir():
            stale.unlink(missing_ok=True)
        # every session reads and shows times in Asia/Shanghai (today() is the Chinese date), as
        # deploy/clickhouse/config.d/govstream.xml sets the production server's <timezone>
        self.where = f"{path}?session_timezone={SESSION_TIMEZONE}"
        self.writers = _Pool(self._open, POOL_SIZE)
        self.readers = _Pool(self._open_readonly, POOL_SIZE)
        self.lock = threading.Lock()
        self.sessions: dict[tuple[str, str], _HttpSession] = {}
        with self.writers.take(), self.readers.take():
            pass  # open one of each now: a chDB that does not keep readonly fails at start

    def _open(self) -> _Session:
        from chdb import session

        return _Session(session.Session(self.where))

    def _open_readonly(self) -> _Session:
        opened = self._open()
        _make_readonly(opened)
        return opened

    @contextmanager
    def _session(self, request: SessionRequest | None) -> Iterator[_Session | None]:
        """The chDB session of an HTTP session (opened unless ``session_check``), held.

        Raises :class:`SqlError` SESSION_NOT_FOUND (372) for ``session_check=1`` on a session
        that is not open (never opened, or expired), LIMIT_EXCEEDED (290) past
        :data:`MAX_SESSIONS`, SESSION_IS_LOCKED (373) while it runs another request.
        """
        with self.lock:
            now = time.monotonic()
            for key, open_session in list(self.sessions.items()):
                expired = now - open_session.last_used > open_session.timeout
                if expired and open_session.busy.acquire(blocking=False):
                    del self.sessions[key]
                    open_session.chdb.session.close()
            if request is None:
                found = None
            else:
                found = self._http_session(request, now)
                if not found.busy.acquire(blocking=False):
                    raise SessionLocked(
                        SESSION_IS_LOCKED,
                        f"Session {request.id} is locked by a concurrent client",
                    )
                found.timeout, found.last_used = request.timeout, now
        if found is None:
            yield None
            return
        try:
            yield found.chdb
        finally:
            found.last_used = time.monotonic()
            found.busy.release()

    def _http_session(self, request: SessionRequest, now: float) -> _HttpSession:
        """The open HTTP session of ``request``, opened when new; lock held."""
        key = (request.user, request.id)
        found = self.sessions.get(key)
        if found is None:
            if request.check:
                raise chsql.SessionError(chsql.SESSION_NOT_FOUND, f"Session {request.id} not found")
            if len(self.sessions) >= MAX_SESSIONS:
                raise chsql.SessionError(
                    chsql.LIMIT_EXCEEDED, f"Too many open sessions (at most {MAX_SESSIONS})"
                )
            chdb = self._open_readonly() if request.readonly else self._open()
            found = self.sessions[key] = _HttpSession(chdb, request.timeout, now, threading.Lock())
        return found

    def close(self) -> None:
        with self.lock:
            for open_session in self.sessions.values():
                open_session.chdb.session.close()
            self.sessions.clear()
        self.readers.close()
        self.writers.close()

    def execute(
        self, statement: bytes, context: Context, *, readonly: bool, stream: bool = False
    ) -> Answer:
        """Run one request's statement; read-only ones on a reader (see :meth:`read`).

        With ``stream`` a result in a :data:`STREAMABLE_FORMATS` format comes in chunks as
        chDB produces them (its first chunk fetched here, so an error before any row is
        still raised here); the answer then holds its session until it is exhausted or closed.
        """
        if readonly:
            return self.read(statement, context, stream=stream)
        database, settings, params = context.database, context.settings, context.params
        default_format = context.default_format
        insert = chsql.insert_with_data(statement)  # what follows its FORMAT is data, not SQL
        if insert is None:
            statement = chsql.single_statement(statement)
        else:
            chsql.single_statement(statement[: insert.data_start])
        keyword = chsql.first_keyword(statement if insert is None else insert.head)
        fmt = chsql.format_clause(statement) if insert is None else None
        with ExitStack() as held:
            session = held.enter_context(self._session(context.session))
            if keyword in ("SET", "USE"):
                if session is None:
                    # without an HTTP session these change nothing beyond the one query (as
                    # in ClickHouse); the pooled chDB sessions must not keep them
                    return Answer(b"", None, {})
                session.run(statement)  # the session keeps them
                session.database = _current_database(session)
                return Answer(b"", None, {})
            target = session or held.enter_context(self.writers.take())
            if database is not None or session is None:
                target.use(database or "default")
            if insert is not None and settings and not insert.settings:
                # URL settings as the INSERT's own SETTINGS clause: they last this statement
                # alone, as a SET before it and a SET back after it did, with two engine
                # queries less per insert (the sink sends insert_deduplication_token with each)
                clause = ", ".join(f"{name} = {_literal(v)}" for name, v in settings.items())
                insert = dataclasses.replace(insert, settings=f"SETTINGS {clause}".encode())
                settings = {}
            restore: dict[str, str | None] = {}
            held.callback(_restore_settings, target, restore)  # URL settings last one query
            for name, value in settings.items():
                restore[name] = _changed_setting(target, name) if session else None
                target.run(f"SET {name} = {_literal(value)}")
            started = time.perf_counter()
            if insert is not None:
                result = self._insert(target, statement, insert, params)
                return Answer(b"", None, _summary(result, time.perf_counter() - started))
            stream = stream and keyword in _STREAMED_KEYWORDS
            answer = _result(target, statement, fmt or default_format, params, stream, held)
            describable = statement if keyword in _STREAMED_KEYWORDS else None
            answer = self._for_protocol(answer, context, describable, target.database, False)
        if not answer.body and answer.rest is None and keyword not in _RESULT_KEYWORDS:
            # DDL and other statements without a result: no X-ClickHouse-Format, as ClickHouse
            # (clickhouse-connect's command then returns the X-ClickHouse-Summary)
            answer.format = None
        return answer

    def read(self, sql: bytes, context: Context, *, stream: bool = False) -> Answer:
        """Run one read-only statement on a ``readonly = 1`` session.

        The engine parses ``sql`` (bound as a parameter, never run as SQL) and renders the one
        statement it found; that rendering is what runs. URL ``settings`` go to the engine as
        ``SET``, which it refuses at ``readonly = 1`` unless nothing changes. Raises
        :class:`EngineError` with the engine's code (62 more than one statement, 164 READONLY)
        or :class:`SqlError` (358 INTO OUTFILE, 497 ``file()``), see
        :func:`chsql.outside_problem`.
        """
        params = context.params
        with ExitStack() as held:
            session = held.enter_context(self._session(context.session))
            # a writer's read-only request in a session runs on a pooled reader (its session
            # is not read-only in the engine)
            own = session is not None and context.session is not None and context.session.readonly
            if own and session is not None:
                reader = session
            else:
                reader = held.enter_context(self.readers.take())
            canonical = reader.canonical(sql)
            ast = reader.run(b"EXPLAIN AST " + canonical, "TSVRaw", params)
            tree = ast.bytes().decode("utf-8", "replace")
            problem = chsql.outside_problem(tree) or access.analyst_problem(tree)
            if problem:
                raise problem
            for name, value in context.settings.items():
                reader.run(f"SET {name} = {_literal(value)}")  # 164 unless a no-op
            root = chsql.ast_nodes(tree)[0].name
            if root == "UseQuery":
                if own:  # the analyst's own session keeps it
                    reader.run(canonical)
                    reader.database = _current_database(reader)
                return Answer(b"", None, {})  # without a session a USE changes nothing after it
            if root == "Set":
                reader.run(canonical)  # the engine refuses any change (164)
                return Answer(b"", None, {})
            if root == "InsertQuery":
                # its data was dropped from the rendering, and chDB's client would answer
                # "No data to insert" before the engine's own readonly refusal
                raise SqlError(chsql.READONLY, "Cannot execute query in readonly mode")
            if context.database is not None or not own:
                reader.use(context.database or "default")
            fmt = chsql.format_clause(canonical) or context.default_format
            streamed = root in _STREAMED_ROOTS
            answer = _result(reader, canonical, fmt, params, stream and streamed, held)
            describable = canonical if streamed else None
            return self._for_protocol(answer, context, describable, reader.database, True)

    def _for_protocol(
        self, answer: Answer, context: Context, sql: bytes | None, database: str, readonly: bool
    ) -> Answer:
        """A Native answer as written for the client's ``client_protocol_version``.

        DateTime types get their time zone back from the engine's DESCRIBE of ``sql`` (a
        SELECT; None for other statements) on a session of its own (so a streamed query
        keeps its session), and only when the result holds one.
        """
        version = context.protocol
        if answer.format != "Native" or version < _WITH_BLOCK_INFO:
            return answer
        types = None
        if sql is not None and version >= _WITH_TIME_ZONE and b"DateTime" in answer.body:
            types = self._describe(sql, context.params, database, readonly)
        one_block = answer.streamed  # measured on chDB 4.4: a streamed chunk is one block
        answer.body = native_for_protocol(answer.body, version, types, one_block=one_block)
        if answer.rest is not None:
            answer.rest.rewrite = lambda chunk: native_for_protocol(
                chunk, version, types, one_block=True
            )
        return answer

    def _describe(
        self, sql: bytes, params: dict[str, str], database: str, readonly: bool
    ) -> list[str] | None:
        """The result types of a SELECT (``DESCRIBE TABLE (…)``), None when it cannot tell.

        On a fresh session: what a request's HTTP session holds (temporary tables, SET
        values) is not there, and its DateTime types then go without their time zone.
        """
        toks = [t for t in tokens(sql) if t.depth == 0]
        for first, second in zip(toks, toks[1:], strict=False):
            if first.text == b"FORMAT":  # DESCRIBE's own output format is asked for below
                sql = sql[: first.start] + sql[second.end :]
                break
        session = self._open_readonly() if readonly else self._open()
        try:
            session.use(database)
            described = session.run(b"DESCRIBE TABLE (" + sql + b")", "JSONCompactEachRow", params)
            return [json.loads(line)[1] for line in described.bytes().splitlines()]
        except (EngineError, ValueError, IndexError):
            return None
        finally:
            session.session.close()

    def _insert(
        self,
        target: _Session,
        statement: bytes,
        insert: chsql.InsertWithData,
        params: dict[str, str],
    ) -> Any:
        data = memoryview(statement)[insert.data_start :]
        path = self.tmp / f"insert-{uuid.uuid4().hex}.data"
        try:
            with path.open("wb") as fh:
                fh.write(data)
            return target.run(insert.from_infile(str(path)), "TabSeparated", params)
        finally:
            path.unlink(missing_ok=True)


def _restore_settings(target: _Session, restore: dict[str, str | None]) -> None:
    for name, old in restore.items():
        target.run(f"SET {name} = {'DEFAULT' if old is None else _literal(old)}")


def _result(
    target: _Session,
    sql: bytes,
    fmt: str,
    params: dict[str, str],
    stream: bool,
    held: ExitStack,
) -> Answer:
    """The answer of a query on ``target``: streamed when asked for and ``fmt`` allows it.

    A streamed answer takes over ``held`` (the session and what restores it) and releases it
    once its last chunk is read or it is closed.
    """
    started = time.perf_counter()
    if stream and fmt in STREAMABLE_FORMATS:
        chunks = target.stream(sql, fmt, params)
        if chunks is not None:
            held.callback(chunks.cancel)
            first = chunks.fetch()  # EngineError before any row: an HTTP error
            summary = _summary(first, time.perf_counter() - started)
            if first is None:
                return Answer(b"", fmt, summary)
            rest = _Rest(chunks, held.pop_all())
            return Answer(first.bytes(), fmt, summary, rest, streamed=True)
    result = target.run(sql, fmt, params)
    return Answer(result.bytes(), fmt, _summary(result, time.perf_counter() - started))


class _Rest:
    """The chunks after the first; ``held`` (the session) is released at the end, or on close.

    An iterator with a ``close`` of its own (not a generator), so that an answer closed before
    it was iterated releases its session too.
    """

    def __init__(self, chunks: _Stream, held: ExitStack) -> None:
        self.chunks = chunks
        self.held = held
        self.rewrite: Callable[[bytes], bytes] = bytes  # what each chunk becomes

    def __iter__(self) -> _Rest:
        return self

    def __next__(self) -> bytes:
        try:
            chunk = self.chunks.fetch()
        except BaseException:
            self.close()
            raise
        if chunk is None:
            self.close()
            raise StopIteration
        return self.rewrite(chunk.bytes())

    def close(self) -> None:
        self.held.close()  # idempotent


#: The error when the engine's message quotes bytes that are not UTF-8: chDB's Python binding
#: fails to decode it, and ClickHouse's own text is lost (chDB 4.4).
_UNDECODABLE = (
    "Code: 1002. DB::Exception: The query failed, and the engine's error message quotes bytes "
    "that are not UTF-8, which chDB cannot pass on. (UNKNOWN_EXCEPTION)"
)


def _engine_text(exc: Exception) -> str:
    """ClickHouse's error text of a chDB exception (:data:`_UNDECODABLE` when chDB lost it)."""
    text = str(exc)
    if isinstance(exc, UnicodeDecodeError) or ("Code:" not in text and "can't decode" in text):
        return _UNDECODABLE
    return text


class _Stream:
    """A chDB streaming result: its chunks (one per block), errors as :class:`EngineError`."""

    def __init__(self, result: Any) -> None:
        self.result = result

    def fetch(self) -> Any:
        """The next chunk (chDB's result object), None at the end."""
        try:
            return self.result.fetch()
        except Exception as exc:  # ChdbError "Streaming query failed: Code: …"
            raise EngineError(_engine_text(exc).removeprefix("Streaming query failed: ")) from exc

    def cancel(self) -> None:
        """Stop the query unless it ended (idempotent); the session is usable afterwards."""
        try:
            self.result.cancel()
        except Exception:  # a query that failed or ended has nothing to cancel
            log.debug("cancelling a streamed query failed", exc_info=True)


class _Session:
    """One chDB session and the database its statements run in."""

    def __init__(self, session: Any) -> None:
        self.session = session
        self.database = "default"

    def run(
        self, sql: str | bytes, fmt: str = "TabSeparated", params: dict[str, str] | None = None
    ) -> Any:
        """chDB's result of ``sql`` in ``fmt``; :class:`EngineError` with ClickHouse's text.

        chDB takes the statement as bytes too: text that is not UTF-8 reaches the engine as
        sent, as on a ClickHouse server.
        """
        try:
            return self.session.query(sql, fmt, params=params or None)
        except Exception as exc:  # chdb raises ChdbError (a RuntimeError) with ClickHouse's text
            raise EngineError(_engine_text(exc)) from exc

    def stream(self, sql: bytes, fmt: str, params: dict[str, str]) -> _Stream | None:
        """chDB's streaming result of ``sql``; None for a statement chDB cannot stream."""
        try:
            return _Stream(self.session.send_query(sql, fmt, params=params or None))
        except Exception as exc:
            if isinstance(exc, UnicodeDecodeError) or "Streaming query is not supported" in str(
                exc
            ):  # chDB's refusal quotes the statement, which need not be UTF-8
                return None
            raise EngineError(str(exc)) from exc

    def use(self, database: str) -> None:
        if self.database != database:
            self.run(f"USE `{database}`")
            self.database = database

    def canonical(self, sql: bytes) -> bytes:
        """The engine's rendering of the one statement of ``sql`` (62 when there are more).

        The rendering must render to itself, so it parses as exactly what the engine read.
        Bytes that are not UTF-8 (in a String literal, say) reach the engine unchanged.
        """
        render = (
            "SELECT if(formatQuerySingleLine(c) = c, c, '') "
            "FROM (SELECT formatQuerySingleLine({q:String}) AS c)"
        )
        text = self.run(render, "RawBLOB", {"q": _escaped(sql)}).bytes()
        if not text:
            raise SqlError(chsql.SYNTAX_ERROR, "The statement does not survive formatting")
        return bytes(text)


def _make_readonly(session: _Session) -> None:
    """``SET readonly = 1`` on a chDB session, checked (ClickHouse refuses to lower it again)."""
    session.run("SET readonly = 1")
    level = session.run("SELECT getSetting('readonly')", "TSVRaw").bytes().strip()
    if level != b"1":
        raise StackError(f"chDB did not keep readonly = 1 on a read-only session (got {level!r})")


def _current_database(session: _Session) -> str:
    return str(session.run("SELECT currentDatabase()", "TSVRaw").bytes().decode().strip())


def _changed_setting(session: _Session, name: str) -> str | None:
    """A setting's value if the session changed it (``SET``), else None (it has its default)."""
    rows = session.run(
        "SELECT value FROM system.settings WHERE name = {n:String} AND changed",
        "TSVRaw",
        {"n": name},
    ).bytes()
    return rows.decode().removesuffix("\n") if rows else None


def _escaped(value: str | bytes) -> str:
    """A query parameter's value as ClickHouse reads it (TSV escaping), so it arrives unchanged.

    Bytes that are not UTF-8 (bytes given, or text decoded with ``surrogateescape``) become
    ``\\xHH`` escapes, which ClickHouse reads back as those bytes.
    """
    if isinstance(value, bytes):
        value = value.decode("utf-8", "surrogateescape")
    for raw, escape in (("\\", "\\\\"), ("\n", "\\n"), ("\t", "\\t"), ("\r", "\\r"), ("\0", "\\0")):
        value = value.replace(raw, escape)
    return _bytes_escaped(value)


def _bytes_escaped(value: str) -> str:
    """``value`` with each byte kept by ``surrogateescape`` written as a ``\\xHH`` escape."""
    return _SURROGATE.sub(lambda m: f"\\x{ord(m.group()) - 0xDC00:02X}", value)


def _summary(result: Any, elapsed: float) -> dict[str, str]:
    """The X-ClickHouse-Summary of a chDB result (of the first chunk when streamed)."""
    return {
        "read_rows": str(result.rows_read() if result is not None else 0),
        "read_bytes": str(result.bytes_read() if result is not None else 0),
        "written_rows": str(getattr(result, "rows_written", lambda: 0)()),
        "written_bytes": str(getattr(result, "bytes_written", lambda: 0)()),
        "total_rows_to_read": "0",
        "result_rows": "0",
        "result_bytes": "0",
        "elapsed_ns": str(int(elapsed * 1e9)),
    }


class EngineError(Exception):
    """A ClickHouse exception raised by chDB; ``code`` parsed from its text."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        match = _CODE.search(text)
        self.code = int(match.group(1)) if match else 1002  # UNKNOWN_EXCEPTION
        self.text = text.strip()


def _literal(value: str) -> str:
    """A SQL string literal of ``value`` (bytes kept by ``surrogateescape`` as ``\\xHH``)."""
    return "'" + _bytes_escaped(value.replace("\\", "\\\\").replace("'", "\\'")) + "'"


# --- Native results for a client protocol version ----------------------------------------------

#: ``client_protocol_version`` from which a Native block starts with its BlockInfo, from which
#: DateTime types keep their time zone, and from which each column says whether its
#: serialization is custom (ClickHouse's DBMS_MIN_REVISION_WITH_… in ProtocolDefines.h).
_WITH_BLOCK_INFO = 1
_WITH_TIME_ZONE = 54337
_WITH_CUSTOM_SERIALIZATION = 54454
#: BlockInfo as ClickHouse writes it: is_overflows (field 1) false, bucket_num (field 2) -1.
_BLOCK_INFO = b"\x01\x00\x02\xff\xff\xff\xff\x00"
_FIXED_SIZES = {
    **dict.fromkeys(("UInt8", "Int8", "Bool", "Enum8", "Nothing"), 1),
    **dict.fromkeys(("UInt16", "Int16", "Date", "Enum16", "BFloat16"), 2),
    **dict.fromkeys(("UInt32", "Int32", "Float32", "Date32", "DateTime", "IPv4", "Decimal32"), 4),
    **dict.fromkeys(("Time",), 4),
    **dict.fromkeys(("UInt64", "Int64", "Float64", "DateTime64", "Decimal64", "Time64"), 8),
    **dict.fromkeys(("UInt128", "Int128", "UUID", "IPv6", "Decimal128"), 16),
    **dict.fromkeys(("UInt256", "Int256", "Decimal256"), 32),
}
#: Geo types as the types they are stored as.
_ALIASES = {
    "Point": "Tuple(Float64, Float64)",
    "Ring": "Array(Point)",
    "LineString": "Array(Point)",
    "Polygon": "Array(Ring)",
    "MultiLineString": "Array(LineString)",
    "MultiPolygon": "Array(Polygon)",
}
_TIME_ZONE = re.compile(r"(DateTime\()'[^']*'\)|(DateTime64\(\d+), '[^']*'\)")


class _Unreadable(Exception):
    """A Native column of a type whose data :class:`_NativeReader` cannot step over."""


def without_time_zone(type_name: str) -> str:
    """A type name as ClickHouse sends it to protocol versions before 54337."""
    return _TIME_ZONE.sub(lambda m: "DateTime" if m.group(1) else f"{m.group(2)})", type_name)


def _type_parts(type_name: str) -> tuple[str, list[str]]:
    """``Name(a, b)`` → ("Name", ["a", "b"]), splitting at top-level commas outside quotes."""
    type_name = type_name.strip()
    open_at = type_name.find("(")
    if open_at < 0 or not type_name.endswith(")"):
        return type_name, []
    args, depth, quote, start = [], 0, "", open_at + 1
    inner_end = len(type_name) - 1
    i = start
    while i < inner_end:
        c = type_name[i]
        if quote:
            if c == "\\":
                i += 1
            elif c == quote:
                quote = ""
        elif c in "'`\"":
            quote = c
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif c == "," and depth == 0:
            args.append(type_name[start:i].strip())
            start = i + 1
        i += 1
    args.append(type_name[start:inner_end].strip())
    return type_name[:open_at], args


def _element_type(element: str) -> str:
    """The type of a Tuple element, which may be named (``a UInt8``, ``\\`a b\\` String``)."""
    if element.startswith("`"):
        end = element.find("`", 1)
        return element[end + 1 :].strip()
    head, _, rest = element.partition(" ")
    if rest and "(" not in head:
        return rest.strip()
    return element


class _NativeReader:
    """Steps over the blocks of ClickHouse's Native format (as written for protocol 0)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def take(self, size: int) -> bytes:
        end = self.at + size
        if size < 0 or end > len(self.data):
            raise _Unreadable("the block ends early")
        piece = self.data[self.at : end]
        self.at = end
        return piece

    def varuint(self) -> int:
        value, shift = 0, 0
        while True:
            byte = self.take(1)[0]
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                return value
            shift += 7

    def string(self) -> bytes:
        return self.take(self.varuint())

    def uint64s(self, count: int) -> list[int]:
        raw = self.take(8 * count)
        return [int.from_bytes(raw[i : i + 8], "little") for i in range(0, len(raw), 8)]

    def prefix(self, type_name: str) -> None:
        """Step over the column's serialization prefix (LowCardinality's key version)."""
        base, args = _type_parts(_ALIASES.get(type_name, type_name))
        if base == "LowCardinality":
            self.take(8)
        elif base in ("Array", "Nullable"):
            self.prefix(args[0])
        elif base in ("Tuple", "Map", "Nested"):
            for element in args:
                self.prefix(_element_type(element))
        elif base == "SimpleAggregateFunction":
            self.prefix(args[-1])

    def skip(self, type_name: str, rows: int) -> None:
        """Step over ``rows`` values of ``type_name`` (after the prefix)."""
        base, args = _type_parts(_ALIASES.get(type_name, type_name))
        if base in _FIXED_SIZES:
            self.take(_FIXED_SIZES[base] * rows)
        elif base.startswith("Interval"):
            self.take(8 * rows)
        elif base == "Decimal":
            precision = int(args[0])
            self.take(
                rows
                * (4 if precision <= 9 else 8 if precision <= 18 else 16 if precision <= 38 else 32)
            )
        elif base == "FixedString":
            self.take(int(args[0]) * rows)
        elif base == "String":
            for _ in range(rows):
                self.string()
        elif base == "Nullable":
            self.take(rows)
            self.skip(args[0], rows)
        elif base in ("Array", "Map", "Nested"):
            offsets = self.uint64s(rows)
            count = offsets[-1] if offsets else 0
            elements = [args[0]] if base == "Array" else [_element_type(e) for e in args]
            for element in elements:
                self.skip(element, count)
        elif base == "Tuple":
            for element in args:
                self.skip(_element_type(element), rows)
        elif base == "LowCardinality":
            self._skip_low_cardinality(args[0], rows)
        elif base == "SimpleAggregateFunction":
            self.skip(args[-1], rows)
        else:  # Variant, Dynamic, JSON, AggregateFunction, …
            raise _Unreadable(f"cannot step over {type_name} data")

    def _skip_low_cardinality(self, inner: str, rows: int) -> None:
        if rows == 0:
            return
        flags = int.from_bytes(self.take(8), "little")
        if flags & (1 << 8):  # a global dictionary: not written in Native
            raise _Unreadable("LowCardinality with a shared dictionary")
        if flags & (1 << 9):  # additional keys
            base, args = _type_parts(inner)
            keys = self.uint64s(1)[0]
            self.skip(args[0] if base == "Nullable" else inner, keys)
        indexes = self.uint64s(1)[0]
        self.take(indexes * (1, 2, 4, 8)[flags & 0xFF])


def native_for_protocol(
    data: bytes, version: int, full_types: list[str] | None = None, *, one_block: bool = False
) -> bytes:
    """Native blocks written for protocol 0 (what chDB writes) as written for ``version``.

    From version 1 each block starts with its BlockInfo; from 54337 DateTime types carry
    their time zone (``full_types``: the result's types as the engine describes them, used
    where they match the type sent); from 54454 each column says its serialization is the
    default one. A column whose data cannot be stepped over (Variant, Dynamic, JSON,
    AggregateFunction) ends the rewriting: the rest of ``data`` is taken as that one block.

    With ``one_block`` (``data`` is known to be one block) the columns after the last one
    whose head changes are copied as they are, without stepping over their data (a String
    column is stepped over value by value, about 0.7 µs a row).
    """
    if version < _WITH_BLOCK_INFO:
        return data
    changes = version >= _WITH_CUSTOM_SERIALIZATION or (
        version >= _WITH_TIME_ZONE
        and full_types is not None
        and any(without_time_zone(t) != t for t in full_types)
    )
    if one_block and not changes:
        return _BLOCK_INFO + data
    last_change = None  # the last column whose head changes, when the rest can be copied
    if one_block and version < _WITH_CUSTOM_SERIALIZATION and full_types:
        last_change = max(i for i, t in enumerate(full_types) if without_time_zone(t) != t)
    reader, out = _NativeReader(data), bytearray()
    while reader.at < len(data):
        block_start = reader.at
        out += _BLOCK_INFO
        try:
            columns, rows = reader.varuint(), reader.varuint()
            head = _varuint(columns) + _varuint(rows)
            parts = [head]
            for index in range(columns):
                name = reader.string()
                type_name = reader.string().decode("utf-8", "surrogateescape")
                full = full_types[index] if full_types and index < len(full_types) else ""
                sent = type_name
                if version >= _WITH_TIME_ZONE and without_time_zone(full) == type_name:
                    sent = full
                data_start = reader.at
                if last_change is not None and index >= last_change:
                    reader.at = len(data)  # the rest of the block as it is
                elif rows:
                    reader.prefix(type_name)
                    reader.skip(type_name, rows)
                parts.append(_varuint(len(name)) + name)
                sent_bytes = sent.encode("utf-8", "surrogateescape")
                parts.append(_varuint(len(sent_bytes)) + sent_bytes)
                if version >= _WITH_CUSTOM_SERIALIZATION:
                    parts.append(b"\x00")
                parts.append(data[data_start : reader.at])
                if last_change is not None and index >= last_change:
                    break  # the columns after it are in the copied rest
        except _Unreadable:
            out += data[block_start:]
            return bytes(out)
        out += b"".join(parts)
    return bytes(out)


def _varuint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


# --- HTTP --------------------------------------------------------------------------------------


class ClickHouseHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = SOCKET_TIMEOUT_S  # set on the connection's socket by StreamRequestHandler
    disable_nagle_algorithm = True
    server: ClickHouseServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (base signature)
        log.debug("%s %s", self.address_string(), format % args)

    # -- plumbing --

    def _body(self, limit: int) -> bytes:
        """The request body as sent, refused (307) past ``limit`` bytes before it is read."""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunked = b"".join(self._chunks(limit))
            self.body_read = True
            return chunked
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            raise SqlError(chsql.BAD_REQUEST_PARAMETER, "Bad Content-Length") from None
        if length < 0:
            raise SqlError(chsql.BAD_REQUEST_PARAMETER, "Bad Content-Length")
        if length > limit:
            raise too_big(limit)
        body = self.rfile.read(length) if length else b""
        if len(body) < length:
            raise SqlError(chsql.BAD_REQUEST_PARAMETER, "The request body ends early")
        self.body_read = True
        return body

    def _chunks(self, limit: int) -> Iterator[bytes]:
        total = 0
        while True:
            size_line = self.rfile.readline(65537)
            try:
                size = int(size_line.split(b";")[0].strip() or b"0", 16)
            except ValueError:
                raise SqlError(chsql.BAD_REQUEST_PARAMETER, "Bad chunk size") from None
            if size == 0:
                while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return
            total += size
            if size < 0 or total > limit:
                raise too_big(limit)
            yield self.rfile.read(size)
            self.rfile.readline(3)  # CRLF after the chunk

    def _send(self, status: int, body: bytes, headers: dict[str, str], content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self._common_headers(headers)
        if not getattr(self, "body_read", True):
            # the body was never read: the connection cannot carry another request
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _common_headers(self, headers: dict[str, str]) -> None:
        self.send_header("X-ClickHouse-Server-Display-Name", "govstream-embedded")
        self.send_header("X-ClickHouse-Timezone", "UTC")
        for name, value in headers.items():
            if _HEADER_SAFE.match(value):
                self.send_header(name, value)
            else:
                log.warning("header %s dropped: its value is not printable ASCII", name)

    def _error(self, status: int, code: int, text: str, query_id: str) -> None:
        self._send(
            status,
            (text.rstrip() + "\n").encode("utf-8", "replace"),
            {"X-ClickHouse-Exception-Code": str(code), "X-ClickHouse-Query-Id": query_id},
            "text/plain; charset=UTF-8",
        )

    def _user(self, params: dict[str, str]) -> User:
        """The authenticated user of the request, from its headers and URL only (516 if none)."""
        name = self.headers.get("X-ClickHouse-User") or params.get("user")
        password = self.headers.get("X-ClickHouse-Key") or params.get("password") or ""
        auth = self.headers.get("Authorization", "")
        if not name and auth.lower().startswith("basic "):
            try:
                name, _, password = base64.b64decode(auth[6:]).decode("utf-8").partition(":")
            except (ValueError, UnicodeDecodeError):
                name = None
        user = self.server.users.get(name or "default")
        if (
            not name
            or user is None
            or not hmac.compare_digest(user.password.encode(), password.encode())
        ):
            raise SqlError(
                chsql.AUTHENTICATION_FAILED,
                f"{name or 'default'}: Authentication failed: password is incorrect, or there is "
                "no user with such name",
            )
        return user

    # -- verbs --

    def do_HEAD(self) -> None:  # noqa: N802 (http.server naming)
        self.do_GET()

    def do_GET(self) -> None:  # noqa: N802
        path = urlsplit(self.path).path
        if path in ("/ping", "/replicas_status") or (path == "/" and "query=" not in self.path):
            self._send(200, b"Ok.\n", {}, "text/html; charset=UTF-8")
            return
        self._query(readonly_method=True)

    def do_POST(self) -> None:  # noqa: N802
        self._query(readonly_method=False)

    def _query(self, *, readonly_method: bool) -> None:
        self.body_read = False
        url = urlsplit(self.path)
        # bytes that are not UTF-8 survive (surrogateescape), as ClickHouse takes them
        params = dict(parse_qsl(url.query, keep_blank_values=True, errors="surrogateescape"))
        query_id = str(uuid.uuid4())
        try:
            if params.get("query_id"):  # empty: one is made up, as ClickHouse does
                if not _query_id_ok(params["query_id"]):
                    raise SqlError(
                        chsql.BAD_REQUEST_PARAMETER,
                        "query_id must be at most 256 printable ASCII characters",
                    )
                query_id = params["query_id"]
            if url.path != "/":
                raise SqlError(chsql.BAD_ARGUMENTS, f"There is no handle {url.path}")
            user = self._user(params)  # before anything of the body is read
            settings, bind, readonly = _request_settings(params, user, readonly_method)
            limit = MAX_READONLY_BODY_BYTES if readonly else MAX_BODY_BYTES
            body = decompress(self._body(limit), self.headers.get("Content-Encoding", ""), limit)
            if params.get("decompress") == "1":
                raise SqlError(
                    chsql.BAD_ARGUMENTS,
                    "decompress=1 (ClickHouse's own block compression) is "
                    "not supported here; use Content-Encoding",
                )
            query = params.get("query", "").encode("utf-8", "surrogateescape")
            if self.headers.get_content_type() == "multipart/form-data":
                # an HTML form, as ClickHouse reads it: its fields are parameters like the
                # URL's, the query is its ``query`` field (or the URL's), the body nothing more
                form = parse_form(body, self.headers.get("Content-Type", ""))
                if form.files:
                    raise SqlError(
                        chsql.BAD_ARGUMENTS,
                        "External data (files in a multipart/form-data body) is not supported "
                        "by the embedded endpoint",
                    )
                query = form.fields.get("query", query)
                for name, value in form.fields.items():
                    if name not in ("query", *_CREDENTIALS):  # credentials only from the head
                        params[name] = value.decode("utf-8", "surrogateescape")
                settings, bind, readonly = _request_settings(params, user, readonly_method)
                body = b""
            statement = query + b"\n" + body if query and body else query or body
            if not statement.strip():
                raise SqlError(chsql.SYNTAX_ERROR, "Empty query")
            database = params.get("database") or None
            if database is not None and not _IDENT.match(database):
                raise SqlError(chsql.BAD_ARGUMENTS, f"Bad database name {database!r}")
            context = Context(
                database,
                settings,
                bind,
                params.get("default_format") or "TabSeparated",
                _session_request(params, user),
                _protocol_version(params),
            )
            # wait_end_of_query=1 buffers the whole result; without it rows are sent as made
            stream = params.get("wait_end_of_query", "0").lower() in ("", "0", "false")
            answer = self.server.engine.execute(
                statement, context, readonly=readonly, stream=stream and self.command != "HEAD"
            )
        except SqlError as exc:
            self._error(STATUS.get(exc.code, 500), exc.code, exc.text(), query_id)
            log.info("query %s refused: code %s", query_id, exc.code)
            return
        except EngineError as exc:
            self._error(STATUS.get(exc.code, 500), exc.code, exc.text, query_id)
            log.info("query %s failed: code %s", query_id, exc.code)
            return
        except (OSError, ValueError) as exc:
            self._error(400, chsql.BAD_ARGUMENTS, f"Code: 36. DB::Exception: {exc}", query_id)
            return
        except Exception as exc:  # a bug of ours: an HTTP error with its text, never no reply
            log.exception("query %s: unexpected error", query_id)
            text = f"Code: 1002. DB::Exception: {type(exc).__name__}: {exc}. (UNKNOWN_EXCEPTION)"
            self._error(500, 1002, text, query_id)
            return
        headers = {
            "X-ClickHouse-Query-Id": query_id,
            "X-ClickHouse-Summary": json.dumps(answer.summary),
        }
        if answer.format:
            headers["X-ClickHouse-Format"] = answer.format
        content_type = "text/plain; charset=UTF-8"
        if answer.format and answer.format.startswith(("Native", "RowBinary", "Arrow", "Parquet")):
            content_type = "application/octet-stream"
        accept = (
            self.headers.get("Accept-Encoding", "")
            if params.get("enable_http_compression") == "1"
            else ""
        )
        if answer.rest is not None:
            self._stream(answer, headers, content_type, accept, query_id)
            return
        body = answer.body
        if accept and body:
            body, encoding = compress(body, accept)
            if encoding:
                headers["Content-Encoding"] = encoding
        self._send(200, body, headers, content_type)

    def _stream(
        self, answer: Answer, headers: dict[str, str], content_type: str, accept: str, query_id: str
    ) -> None:
        """Send a streamed answer as chunks as they come (HTTP/1.1 chunked encoding).

        The status (200) and headers go out with the first chunk; a query that fails later
        ends the body with ClickHouse's exception text, as a ClickHouse server does (its
        status cannot change any more).
        """
        packer = Packer(accept)
        if packer.encoding:
            headers["Content-Encoding"] = packer.encoding
        chunked = self.request_version != "HTTP/1.0"
        try:
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self._common_headers(headers)
            if chunked:
                self.send_header("Transfer-Encoding", "chunked")
            else:
                self.close_connection = True  # the end of the body is the end of the connection
            self.end_headers()
            write = self._chunk if chunked else self.wfile.write
            write(packer.pack(answer.body))
            assert answer.rest is not None
            try:
                for chunk in answer.rest:
                    write(packer.pack(chunk))
            except EngineError as exc:
                log.info("query %s failed after its first rows: code %s", query_id, exc.code)
                write(packer.pack((exc.text.rstrip() + "\n").encode("utf-8", "replace")))
            write(packer.finish())
            if chunked:
                self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except OSError:
            # the client left: stop the query (closing the answer cancels it) and the connection
            log.info("query %s: the client left before the end of the result", query_id)
            self.close_connection = True
        finally:
            answer.close()

    def _chunk(self, data: bytes) -> None:
        if data:
            self.wfile.write(b"%x\r\n%b\r\n" % (len(data), data))
            self.wfile.flush()


def _protocol_version(params: dict[str, str]) -> int:
    """``client_protocol_version`` (0 when absent or not a number)."""
    value = params.get("client_protocol_version", "0")
    return int(value) if value.isdigit() else 0


def _query_id_ok(query_id: str) -> bool:
    return len(query_id) <= 256 and bool(_HEADER_SAFE.match(query_id))


def _session_request(params: dict[str, str], user: User) -> SessionRequest | None:
    """The HTTP session a request names (``session_id``), None without one.

    As ClickHouse's HTTP interface: ``session_timeout`` in seconds (default 60, at most
    ``max_session_timeout`` = 3600, else INVALID_SESSION_TIMEOUT 374), ``session_check=1``
    to refuse a session that is not open. Sessions are per user.
    """
    session_id = params.get("session_id")
    if not session_id:
        return None
    if not _query_id_ok(session_id):
        raise SqlError(
            chsql.BAD_REQUEST_PARAMETER, "session_id must be at most 256 printable ASCII characters"
        )
    try:
        timeout = float(params.get("session_timeout") or DEFAULT_SESSION_TIMEOUT_S)
    except ValueError:
        raise chsql.SessionError(chsql.INVALID_SESSION_TIMEOUT, "Invalid session timeout") from None
    if not 0 <= timeout <= MAX_SESSION_TIMEOUT_S:
        raise chsql.SessionError(
            chsql.INVALID_SESSION_TIMEOUT,
            f"Session timeout {params['session_timeout']} is larger than max_session_timeout: "
            f"{MAX_SESSION_TIMEOUT_S:.0f}",
        )
    check = params.get("session_check", "0") not in ("", "0")
    return SessionRequest(user.name, session_id, timeout, check, user.readonly)


#: Parameters that authenticate; read from the URL and headers only, before the body.
_CREDENTIALS = ("user", "password", "quota_key")


def _request_settings(
    params: dict[str, str], user: User, readonly_method: bool
) -> tuple[dict[str, str], dict[str, str], bool]:
    """(settings, query parameters, read-only?) of a request.

    Read-only are the analyst, ``GET`` and ``readonly`` ≠ 0 among the parameters; the
    writer's ``readonly`` only picks the read-only session and is not applied as a setting.
    """
    settings, bind = _split_params(params)
    readonly = user.readonly or readonly_method or settings.get("readonly", "0") != "0"
    if not user.readonly:
        settings.pop("readonly", None)  # the writer picks the read-only session with it
    return settings, bind, readonly


def _split_params(params: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """(ClickHouse settings, query parameters) of a request's URL parameters."""
    settings: dict[str, str] = {}
    bind: dict[str, str] = {}
    for name, value in params.items():
        if name.startswith("param_"):
            bind[name[6:]] = _bytes_escaped(value)  # a raw byte that is not UTF-8 as \\xHH
        elif name in HTTP_PARAMS:
            continue
        elif not _IDENT.match(name):
            raise SqlError(chsql.UNKNOWN_SETTING, f"Unknown setting {name!r}")
        else:
            settings[name] = value
    return settings, bind


class ClickHouseServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], engine: Engine, users: dict[str, User]) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.engine = engine
        self.users = users
        super().__init__(address, ClickHouseHandler)

    def server_bind(self) -> None:
        socketserver.TCPServer.server_bind(self)  # skip the FQDN lookup of HTTPServer
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)


def writer_password(settings: Settings) -> str:
    """The writer's password: ``clickhouse_password``, else one generated into the home.

    The generated one is written once to ``settings.clickhouse_password_file`` (mode 0600,
    published atomically, so concurrent starts agree) and read from there afterwards, by this
    service and by every client (``Settings.clickhouse_writer_password``). Raises
    :class:`StackError` when that file exists but is empty.
    """
    if settings.clickhouse_password:
        return settings.clickhouse_password
    path = settings.clickhouse_password_file
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(secrets.token_urlsafe(32) + "\n")
        try:
            os.link(tmp, path)  # fails if another process published one first
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    os.chmod(path, 0o600)
    password = path.read_text(encoding="utf-8").strip()
    if not password:
        raise StackError(f"{path} is empty; delete it and a new password is generated")
    return password


def users_of(settings: Settings) -> dict[str, User]:
    """The writer (password from :func:`writer_password`) and the read-only analyst."""
    writer = User(settings.clickhouse_user, writer_password(settings), readonly=False)
    analyst = User(
        settings.clickhouse_analyst_user, settings.clickhouse_analyst_password, readonly=True
    )
    if analyst.name == writer.name:
        raise StackError("GOVSTREAM_CLICKHOUSE_ANALYST_USER must differ from the writer user")
    return {writer.name: writer, analyst.name: analyst}


def make_server(settings: Settings) -> ClickHouseServer:
    """A server bound to ``settings.clickhouse_address`` over the data directory of the stack."""
    host, port = settings.clickhouse_address
    users = users_of(settings)
    try:
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.close()
    except OSError as exc:
        raise bind_error(exc, "clickhouse", host, port, SETTING) from exc
    engine = Engine(settings.data_dir / "clickhouse")
    return ClickHouseServer((host, port), engine, users)


def main() -> int:
    """Serve in the foreground until SIGTERM/SIGINT; exit 0, 2 when the port is unusable."""
    server = open_server(make_server)
    if server is None:
        return 2
    log.info(
        "clickhouse (chDB) listening on %s:%s, data in %s",
        server.server_name,
        server.server_port,
        server.engine.path,
    )
    try:
        return serve_until_signalled(server, "clickhouse", log)
    finally:
        server.engine.close()


if __name__ == "__main__":
    sys.exit(main())
