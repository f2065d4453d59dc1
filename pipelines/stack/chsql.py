"""The embedded HTTP front end's statement checks (pure functions), on :mod:`pipelines.chsql`.

The front end must tell where one statement ends (chDB would run ``SELECT 1; DROP …`` as
two statements, the ClickHouse server refuses that), where the data of an
``INSERT … FORMAT <fmt>`` begins (the data may be binary), and which statements a
read-only user may run. Read-only itself is the engine's (``readonly = 1``); what it lets
through in chDB is found in ClickHouse's own parse (``EXPLAIN AST``) by
:func:`outside_problem`. The lexer (:mod:`pipelines.chsql`) only has to respect quotes and
comments, and here only serves the writer, who may run anything anyway.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipelines.chsql import (
    ACCESS_DENIED,
    AUTHENTICATION_FAILED,
    BAD_ARGUMENTS,
    BAD_REQUEST_PARAMETER,
    CANNOT_DECOMPRESS,
    INTO_OUTFILE_NOT_ALLOWED,
    READONLY,
    SYNTAX_ERROR,
    TOO_MANY_BYTES,
    UNKNOWN_FORMAT,
    UNKNOWN_SETTING,
    AstNode,
    SqlError,
    ast_nodes,
    tokens,
)

#: The lexer's names the front end (:mod:`pipelines.stack.clickhouse_http`) reaches through
#: this module, besides its own.
__all__ = [
    "ACCESS_DENIED",
    "AUTHENTICATION_FAILED",
    "BAD_ARGUMENTS",
    "BAD_REQUEST_PARAMETER",
    "CANNOT_DECOMPRESS",
    "INTO_OUTFILE_NOT_ALLOWED",
    "OUTSIDE_FUNCTIONS",
    "READONLY",
    "SYNTAX_ERROR",
    "TOO_MANY_BYTES",
    "UNKNOWN_FORMAT",
    "UNKNOWN_SETTING",
    "InsertWithData",
    "SqlError",
    "SessionError",
    "ast_nodes",
    "first_keyword",
    "format_clause",
    "insert_with_data",
    "outside_problem",
    "single_statement",
]

#: Error codes of HTTP sessions, with their names in ClickHouse's ``ErrorCodes.cpp``.
LIMIT_EXCEEDED = 290
SESSION_NOT_FOUND = 372
INVALID_SESSION_TIMEOUT = 374
SESSION_CODE_NAMES = {
    LIMIT_EXCEEDED: "LIMIT_EXCEEDED",
    SESSION_NOT_FOUND: "SESSION_NOT_FOUND",
    INVALID_SESSION_TIMEOUT: "INVALID_SESSION_TIMEOUT",
}


class SessionError(SqlError):
    """A refused ``session_id``/``session_timeout``/``session_check`` (codes above)."""

    def text(self) -> str:
        name = SESSION_CODE_NAMES.get(self.code, "")
        return f"Code: {self.code}. DB::Exception: {self.message}. ({name})"


def single_statement(sql: bytes) -> bytes:
    """The one statement of ``sql`` (a trailing ``;`` dropped); multi-statements refused."""
    toks = tokens(sql)
    semis = [t for t in toks if t.text == b";"]
    if not semis:
        return sql
    first = semis[0]
    if any(t.start > first.start for t in toks):
        raise SqlError(SYNTAX_ERROR, "Multi-statements are not allowed")
    return sql[: first.start]


def first_keyword(sql: bytes) -> str:
    """The statement's first word, upper case ('' for an empty query)."""
    for tok in tokens(sql):
        return tok.text.decode() if tok.kind == "word" else ""
    return ""


@dataclass(frozen=True)
class InsertWithData:
    """``INSERT … FORMAT fmt`` followed by data: the statement rewritten to read a file."""

    head: bytes  # INSERT INTO t (cols) — without SETTINGS and FORMAT
    settings: bytes  # "SETTINGS …" clause of the statement, or b""
    format: str
    data_start: int

    def from_infile(self, path: str) -> str:
        quoted = path.replace("\\", "\\\\").replace("'", "\\'")
        parts = [self.head.decode().rstrip(), f"FROM INFILE '{quoted}'"]
        if self.settings:
            parts.append(self.settings.decode().strip())
        parts.append(f"FORMAT {self.format}")
        return " ".join(parts)


def insert_with_data(sql: bytes) -> InsertWithData | None:
    """Split ``INSERT … FORMAT fmt <data>``; None for any other statement.

    Data begins after the format name, past spaces and tabs and at most one line break, as in
    ClickHouse, so binary data that starts with a space byte survives.
    """
    toks = tokens(sql, stop_after_format=True)
    if not toks or toks[0].text != b"INSERT":
        return None
    if len(toks) < 2 or toks[-2].text != b"FORMAT" or toks[-2].depth != 0:
        return None
    fmt_tok = toks[-1]
    settings_start = next(
        (t.start for t in toks if t.text == b"SETTINGS" and t.depth == 0), toks[-2].start
    )
    i, n = fmt_tok.end, len(sql)
    while i < n and sql[i] in b" \t\f":
        i += 1
    if i < n and sql[i] == 0x0D:
        i += 1
    if i < n and sql[i] == 0x0A:
        i += 1
    return InsertWithData(
        head=sql[:settings_start],
        settings=sql[settings_start : toks[-2].start] if settings_start < toks[-2].start else b"",
        format=sql[fmt_tok.start : fmt_tok.end].decode(),
        data_start=i,
    )


def format_clause(sql: bytes) -> str | None:
    """The output format a query names in its own ``FORMAT`` clause, if any."""
    toks = [t for t in tokens(sql) if t.depth == 0]
    for a, b in zip(toks, toks[1:], strict=False):
        if a.text == b"FORMAT" and b.kind == "word":
            return sql[b.start : b.end].decode()
    return None


# --- read-only users -------------------------------------------------------------------------

#: Functions that read the server's files, which ``readonly = 1`` does not stop in chDB
#: (clickhouse-local lets ``file()`` read any path). Measured on chDB 4.4.
OUTSIDE_FUNCTIONS = frozenset({"file"})
#: AST nodes that carry a query's output clause (``INTO OUTFILE 'path'`` is their Literal child).
_OUTPUT_NODES = ("Explain", "SelectWithUnionQuery", "SelectIntersectExceptQuery")


def outside_problem(ast: str) -> SqlError | None:
    """Why a read-only user may not run a statement that ``readonly = 1`` lets through.

    ``ast`` is ClickHouse's own parse of the statement (``EXPLAIN AST``). chDB runs the
    engine as clickhouse-local, whose client writes ``INTO OUTFILE`` files itself and whose
    ``file()`` function reads any path, whatever ``readonly`` says; a ClickHouse server
    refuses ``INTO OUTFILE`` over HTTP (INTO_OUTFILE_NOT_ALLOWED) and confines ``file()`` to
    its ``user_files_path``. Everything else (writes, DDL, settings, table functions that
    reach outside) the engine itself refuses at ``readonly = 1``.
    """
    nodes = ast_nodes(ast)
    if not nodes:
        return SqlError(SYNTAX_ERROR, "Empty query")
    for node in nodes:
        if node.name == "Function" and len(node.words) > 1 and node.words[1] in OUTSIDE_FUNCTIONS:
            return SqlError(
                ACCESS_DENIED,
                f"Not enough privileges: a read-only user may not call {node.words[1]}()",
            )
        if node.name == "Literal" and _holds_output(nodes, node.parent):
            return SqlError(INTO_OUTFILE_NOT_ALLOWED, "INTO OUTFILE is not allowed")
    return None


def _holds_output(nodes: list[AstNode], index: int | None) -> bool:
    """Whether a Literal under ``nodes[index]`` is an output clause (INTO OUTFILE/COMPRESSION)."""
    if index is None:
        return False
    node = nodes[index]
    if node.parent is None or node.name.startswith(_OUTPUT_NODES):
        return True
    # each statement of ``a PARALLEL WITH b`` is a query of its own
    return nodes[node.parent].name == "ParallelWithQuery"
