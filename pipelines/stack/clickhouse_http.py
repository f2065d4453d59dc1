"""The embedded ClickHouse: the ClickHouse HTTP interface over one chDB session.

chDB runs the real ClickHouse engine in-process, but only one process may open a data
directory. This service owns ``Settings().data_dir / "clickhouse"`` and serves everyone else
(the worker, clickhouse-connect, curl) over the ClickHouse HTTP protocol:

* ``GET``/``POST`` ``/`` with the query in the ``query`` parameter, the body, or both (the
  parameter first, then a line break, then the body, as ClickHouse does);
* ``INSERT … FORMAT <fmt>`` followed by data in any input format chDB reads (Native,
  RowBinary, JSONEachRow, CSV, TSV, …): the data goes to a temporary file that the statement
  reads with ``FROM INFILE``, so binary data is never parsed as SQL;
* ``database``, ``default_format``, ``query_id``, ``param_<name>`` and any ClickHouse setting
  as URL parameters (applied for the one query, then reset);
* request bodies compressed with ``Content-Encoding`` lz4, zstd, gzip or deflate, and response
  compression by ``Accept-Encoding`` when ``enable_http_compression=1`` (what
  clickhouse-connect negotiates by default);
* users over basic auth, ``X-ClickHouse-User``/``X-ClickHouse-Key`` or ``user``/``password``
  parameters: the writer (``GOVSTREAM_CLICKHOUSE_USER``) and the read-only analyst
  (``GOVSTREAM_CLICKHOUSE_ANALYST_USER``). Read-only (the analyst, and every ``GET``, as in
  ClickHouse) is enforced here: the statement kind comes from ClickHouse's own parser
  (``EXPLAIN AST``), settings may not be changed, table functions that reach outside the
  database are refused;
* errors as non-200 answers with ClickHouse's error text and ``X-ClickHouse-Exception-Code``;
  ``/ping`` answers ``Ok.``.

One lock serialises the chDB session, so concurrent clients are safe (and wait for each
other). ``python -m pipelines.stack.clickhouse_http`` serves in the foreground.
"""

from __future__ import annotations

import base64
import gzip
import json
import logging
import re
import socket
import socketserver
import sys
import threading
import time
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

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

#: Settings a read-only user may not pass: the ones that would lift the read-only guard or
#: reach outside the database. Others (formats, limits, the compatibility settings
#: clickhouse-connect sends) only shape a read, as with ClickHouse's ``readonly=2``.
GUARD_SETTINGS = re.compile(r"^(readonly|allow_\w+|\w*_path|\w*user\w*|\w*password\w*)$")

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
    chsql.AUTHENTICATION_FAILED: 401,
}


# --- compression -----------------------------------------------------------------------------


def decompress(body: bytes, encoding: str) -> bytes:
    """The request body without its Content-Encoding (concatenated frames/members included)."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "deflate":
        try:
            return zlib.decompress(body)
        except zlib.error:
            return zlib.decompress(body, -zlib.MAX_WBITS)
    if encoding == "lz4":
        import lz4.frame

        out, rest = [], body
        while rest:
            dec = lz4.frame.LZ4FrameDecompressor()
            out.append(dec.decompress(rest))
            rest = dec.unused_data if dec.eof else b""
        return b"".join(out)
    if encoding == "zstd":
        import zstandard

        zout, zrest = [], body
        while zrest:
            zdec = zstandard.ZstdDecompressor().decompressobj()
            zout.append(zdec.decompress(zrest))
            zrest = zdec.unused_data
        return b"".join(zout)
    if encoding == "br":
        try:
            import brotli
        except ImportError as exc:
            raise SqlError(chsql.BAD_ARGUMENTS, "Content-Encoding br is not supported") from exc
        return bytes(brotli.decompress(body))
    raise SqlError(chsql.BAD_ARGUMENTS, f"Unknown Content-Encoding {encoding!r}")


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


# --- the engine --------------------------------------------------------------------------------


@dataclass(frozen=True)
class User:
    name: str
    password: str
    readonly: bool


@dataclass
class Answer:
    body: bytes
    format: str | None
    summary: dict[str, str]


class Engine:
    """One chDB session and the lock that serialises it."""

    def __init__(self, path: Path) -> None:
        from chdb import session

        path.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.tmp = path / "http-tmp"
        self.tmp.mkdir(exist_ok=True)
        for stale in self.tmp.iterdir():
            stale.unlink(missing_ok=True)
        self.session = session.Session(str(path))
        self.lock = threading.Lock()
        self.database = "default"

    def close(self) -> None:
        with self.lock:
            self.session.close()

    def _run(self, sql: str, fmt: str = "TabSeparated", params: dict[str, str] | None = None):
        try:
            return self.session.query(sql, fmt, params=params or None)
        except Exception as exc:  # chdb raises ChdbError (a RuntimeError) with ClickHouse's text
            raise EngineError(str(exc)) from exc

    def execute(
        self,
        statement: bytes,
        *,
        database: str,
        settings: dict[str, str],
        params: dict[str, str],
        default_format: str,
        readonly: bool,
    ) -> Answer:
        insert = chsql.insert_with_data(statement)  # what follows its FORMAT is data, not SQL
        if insert is None:
            statement = chsql.single_statement(statement)
        else:
            chsql.single_statement(statement[: insert.data_start])
        keyword = chsql.first_keyword(statement if insert is None else insert.head)
        if keyword in ("SET", "USE"):
            # without an HTTP session these change nothing beyond the one query (as in
            # ClickHouse); the shared chDB session must not keep them
            return Answer(b"", None, {})
        fmt = chsql.format_clause(statement) if insert is None else None
        with self.lock:
            if self.database != database:
                self._run(f"USE `{database}`")
                self.database = database
            if readonly:
                sql = statement if insert is None else statement[: insert.data_start]
                ast = self._run(f"EXPLAIN AST {sql.decode('utf-8', 'replace')}", "TSVRaw", params)
                problem = chsql.readonly_problem(ast.bytes().decode("utf-8", "replace"))
                if problem:
                    raise problem
            applied: list[str] = []
            try:
                for name, value in settings.items():
                    self._run(f"SET {name} = {_literal(value)}")
                    applied.append(name)
                started = time.perf_counter()
                if insert is not None:
                    result = self._insert(statement, insert, params)
                else:
                    result = self._run(statement.decode("utf-8"), fmt or default_format, params)
                elapsed = time.perf_counter() - started
            finally:
                for name in applied:
                    self._run(f"SET {name} = DEFAULT")
        summary = {
            "read_rows": str(result.rows_read()),
            "read_bytes": str(result.bytes_read()),
            "written_rows": str(getattr(result, "rows_written", lambda: 0)()),
            "written_bytes": str(getattr(result, "bytes_written", lambda: 0)()),
            "total_rows_to_read": "0",
            "result_rows": "0",
            "result_bytes": "0",
            "elapsed_ns": str(int(elapsed * 1e9)),
        }
        if insert is not None:
            return Answer(b"", None, summary)
        return Answer(result.bytes(), fmt or default_format, summary)

    def _insert(self, statement: bytes, insert: chsql.InsertWithData, params: dict[str, str]):
        data = memoryview(statement)[insert.data_start :]
        path = self.tmp / f"insert-{uuid.uuid4().hex}.data"
        try:
            with path.open("wb") as fh:
                fh.write(data)
            return self._run(insert.from_infile(str(path)), "TabSeparated", params)
        finally:
            path.unlink(missing_ok=True)


class EngineError(Exception):
    """A ClickHouse exception raised by chDB; ``code`` parsed from its text."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        match = _CODE.search(text)
        self.code = int(match.group(1)) if match else 1002  # UNKNOWN_EXCEPTION
        self.text = text.strip()


def _literal(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


# --- HTTP --------------------------------------------------------------------------------------


class ClickHouseHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: ClickHouseServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (base signature)
        log.debug("%s %s", self.address_string(), format % args)

    # -- plumbing --

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return b"".join(self._chunks())
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _chunks(self) -> Iterator[bytes]:
        while True:
            size_line = self.rfile.readline(65537)
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return
            yield self.rfile.read(size)
            self.rfile.readline(3)  # CRLF after the chunk

    def _send(self, status: int, body: bytes, headers: dict[str, str], content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-ClickHouse-Server-Display-Name", "govstream-embedded")
        self.send_header("X-ClickHouse-Timezone", "UTC")
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _error(self, status: int, code: int, text: str, query_id: str) -> None:
        self._send(
            status,
            (text.rstrip() + "\n").encode("utf-8", "replace"),
            {"X-ClickHouse-Exception-Code": str(code), "X-ClickHouse-Query-Id": query_id},
            "text/plain; charset=UTF-8",
        )

    def _user(self, params: dict[str, str]) -> User:
        name = self.headers.get("X-ClickHouse-User") or params.get("user")
        password = self.headers.get("X-ClickHouse-Key") or params.get("password") or ""
        auth = self.headers.get("Authorization", "")
        if not name and auth.lower().startswith("basic "):
            try:
                name, _, password = base64.b64decode(auth[6:]).decode("utf-8").partition(":")
            except (ValueError, UnicodeDecodeError):
                name = None
        name = name or "default"
        user = self.server.users.get(name)
        if user is None or user.password != password:
            raise SqlError(
                chsql.AUTHENTICATION_FAILED,
                f"{name}: Authentication failed: password is incorrect, or there is no user "
                "with such name",
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
        url = urlsplit(self.path)
        params = dict(parse_qsl(url.query, keep_blank_values=True))
        query_id = params.get("query_id") or str(uuid.uuid4())
        try:
            if url.path != "/":
                raise SqlError(chsql.BAD_ARGUMENTS, f"There is no handle {url.path}")
            body = decompress(self._body(), self.headers.get("Content-Encoding", ""))
            if params.get("decompress") == "1":
                raise SqlError(
                    chsql.BAD_ARGUMENTS,
                    "decompress=1 (ClickHouse's own block compression) is "
                    "not supported here; use Content-Encoding",
                )
            user = self._user(params)
            readonly = user.readonly or readonly_method or params.get("readonly", "0") != "0"
            query = params.get("query", "").encode("utf-8")
            statement = query + b"\n" + body if query and body else query or body
            if not statement.strip():
                raise SqlError(chsql.SYNTAX_ERROR, "Empty query")
            settings, bind = _split_params(params, readonly)
            database = params.get("database") or "default"
            if not _IDENT.match(database):
                raise SqlError(chsql.BAD_ARGUMENTS, f"Bad database name {database!r}")
            answer = self.server.engine.execute(
                statement,
                database=database,
                settings=settings,
                params=bind,
                default_format=params.get("default_format") or "TabSeparated",
                readonly=readonly,
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
        headers = {
            "X-ClickHouse-Query-Id": query_id,
            "X-ClickHouse-Summary": json.dumps(answer.summary),
        }
        body = answer.body
        if answer.format:
            headers["X-ClickHouse-Format"] = answer.format
        if params.get("enable_http_compression") == "1" and body:
            body, encoding = compress(body, self.headers.get("Accept-Encoding", ""))
            if encoding:
                headers["Content-Encoding"] = encoding
        content_type = "text/plain; charset=UTF-8"
        if answer.format and answer.format.startswith(("Native", "RowBinary", "Arrow", "Parquet")):
            content_type = "application/octet-stream"
        self._send(200, body, headers, content_type)


def _split_params(params: dict[str, str], readonly: bool) -> tuple[dict[str, str], dict[str, str]]:
    """(ClickHouse settings, query parameters) of a request's URL parameters."""
    settings: dict[str, str] = {}
    bind: dict[str, str] = {}
    for name, value in params.items():
        if name.startswith("param_"):
            bind[name[6:]] = value
        elif name in HTTP_PARAMS:
            continue
        elif not _IDENT.match(name):
            raise SqlError(chsql.UNKNOWN_SETTING, f"Unknown setting {name!r}")
        elif readonly and GUARD_SETTINGS.match(name) and not (name == "readonly" and value != "0"):
            raise SqlError(chsql.READONLY, f"Cannot modify '{name}' setting in readonly mode")
        elif name != "readonly":
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


def users_of(settings: Settings) -> dict[str, User]:
    """The writer and the read-only analyst of the settings."""
    writer = User(settings.clickhouse_user, settings.clickhouse_password, readonly=False)
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
