"""Just enough ClickHouse SQL lexing (pure functions): statements, tokens and AST lines.

Production code splits migration scripts into statements (:func:`split_statements`) and reads
ClickHouse's own parse of a statement (``EXPLAIN AST``, :func:`ast_nodes`) to decide what an
analyst may read (:mod:`pipelines.access`); the embedded HTTP front end
(:mod:`pipelines.stack.chsql`) builds on the same lexer. The lexer only has to respect quotes
and comments. :class:`SqlError` carries the ClickHouse error code of a refused statement.
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
