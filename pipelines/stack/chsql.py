"""Just enough ClickHouse SQL lexing for the embedded HTTP front end (pure functions).

The front end must tell where one statement ends (chDB would run ``SELECT 1; DROP …`` as
two statements, the ClickHouse server refuses that), where the data of an
``INSERT … FORMAT <fmt>`` begins (the data may be binary), and which statements a
read-only user may run. Read-only itself is the engine's (``readonly = 1``); what it lets
through in chDB is found in ClickHouse's own parse (``EXPLAIN AST``) by
:func:`outside_problem`. The lexer here only has to respect quotes and comments, and only
serves the writer, who may run anything anyway.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# ClickHouse error codes the front end raises itself (names as ClickHouse prints them)
SYNTAX_ERROR = 62
UNKNOWN_SETTING = 115
READONLY = 164
ACCESS_DENIED = 497
AUTHENTICATION_FAILED = 516
UNKNOWN_FORMAT = 73
BAD_ARGUMENTS = 36
CANNOT_DECOMPRESS = 271
TOO_MANY_BYTES = 307
INTO_OUTFILE_NOT_ALLOWED = 358
BAD_REQUEST_PARAMETER = 408

CODE_NAMES = {
    SYNTAX_ERROR: "SYNTAX_ERROR",
    UNKNOWN_SETTING: "UNKNOWN_SETTING",
    READONLY: "READONLY",
    ACCESS_DENIED: "ACCESS_DENIED",
    AUTHENTICATION_FAILED: "AUTHENTICATION_FAILED",
    UNKNOWN_FORMAT: "UNKNOWN_FORMAT",
    BAD_ARGUMENTS: "BAD_ARGUMENTS",
    CANNOT_DECOMPRESS: "CANNOT_DECOMPRESS",
    TOO_MANY_BYTES: "TOO_MANY_BYTES",
    INTO_OUTFILE_NOT_ALLOWED: "INTO_OUTFILE_NOT_ALLOWED",
    BAD_REQUEST_PARAMETER: "BAD_REQUEST_PARAMETER",
}

_WORD = re.compile(rb"[A-Za-z_][A-Za-z0-9_]*")
_SPACE = b" \t\r\n\f\v"


class SqlError(Exception):
    """A request the front end refuses before chDB sees it, with a ClickHouse error code."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def text(self) -> str:
        return (
            f"Code: {self.code}. DB::Exception: {self.message}. ({CODE_NAMES.get(self.code, '')})"
        )


def _skip_quoted(sql: bytes, i: int) -> int:
    """Index after the quoted literal/identifier that starts at ``sql[i]``."""
    quote = sql[i]
    i += 1
    n = len(sql)
    while i < n:
        c = sql[i]
        if c == 0x5C:  # backslash escape
            i += 2
            continue
        if c == quote:
            if i + 1 < n and sql[i + 1] == quote:  # doubled quote
                i += 2
                continue
            return i + 1
        i += 1
    raise SqlError(SYNTAX_ERROR, "unterminated quoted string or identifier")


def _skip_comment(sql: bytes, i: int) -> int | None:
    """Index after the comment starting at ``sql[i]``, or None when none starts there."""
    if sql.startswith(b"--", i) or sql.startswith(b"#", i):
        end = sql.find(b"\n", i)
        return len(sql) if end < 0 else end + 1
    if sql.startswith(b"/*", i):
        end = sql.find(b"*/", i + 2)
        if end < 0:
            raise SqlError(SYNTAX_ERROR, "unterminated comment")
        return end + 2
    return None


@dataclass(frozen=True)
class Token:
    kind: str  # "word", "punct"
    text: bytes
    start: int
    end: int
    depth: int  # parenthesis depth at the token


def tokens(sql: bytes, start: int = 0, stop_after_format: bool = False) -> list[Token]:
    """Words and punctuation of ``sql`` outside literals and comments.

    With ``stop_after_format`` the scan ends after ``FORMAT <name>`` at depth 0, because what
    follows an INSERT's format name is data, not SQL.
    """
    out: list[Token] = []
    i, n, depth = start, len(sql), 0
    while i < n:
        c = sql[i]
        if c in _SPACE:
            i += 1
            continue
        after_comment = _skip_comment(sql, i)
        if after_comment is not None:
            i = after_comment
            continue
        if c in b"'\"`":
            i = _skip_quoted(sql, i)
            continue
        m = _WORD.match(sql, i)
        if m:
            out.append(Token("word", m.group().upper(), i, m.end(), depth))
            i = m.end()
            if (
                stop_after_format
                and depth == 0
                and len(out) >= 2
                and out[-2].kind == "word"
                and out[-2].text == b"FORMAT"
            ):
                return out
            continue
        if c == 0x28:  # (
            depth += 1
        elif c == 0x29:  # )
            depth = max(0, depth - 1)
        out.append(Token("punct", bytes([c]), i, i + 1, depth))
        i += 1
    return out


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


def split_statements(sql: bytes) -> list[bytes]:
    """The statements of a script, split at ``;`` outside literals and comments."""
    cuts = [t.start for t in tokens(sql) if t.text == b";"]
    parts, start = [], 0
    for cut in [*cuts, len(sql)]:
        part = sql[start:cut]
        if any(tok for tok in tokens(part)):  # something besides whitespace and comments
            parts.append(part.strip())
        start = cut + 1
    return parts


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


@dataclass(frozen=True)
class AstNode:
    """One line of ``EXPLAIN AST``: the node's name, its words, and its parent's index."""

    name: str
    words: tuple[str, ...]
    depth: int
    parent: int | None


def ast_nodes(ast: str) -> list[AstNode]:
    """The nodes of an ``EXPLAIN AST`` text (one per line, depth = leading spaces)."""
    nodes: list[AstNode] = []
    stack: list[int] = []  # index of the last node seen at each depth
    for line in ast.splitlines():
        if not line.strip():
            continue
        depth = len(line) - len(line.lstrip(" "))
        words = tuple(line.split())
        del stack[depth:]
        parent = stack[-1] if stack else None
        nodes.append(AstNode(words[0], words, depth, parent))
        stack.append(len(nodes) - 1)
    return nodes


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
