"""The SQL lexer (pipelines.chsql) and the embedded ClickHouse front end's checks (pure)."""

from __future__ import annotations

import pytest

from pipelines import chsql as lexer
from pipelines.chsql import SqlError
from pipelines.stack import chsql
from pipelines.stack.clickhouse_http import compress, decompress

pytestmark = pytest.mark.unit


def test_single_statement_keeps_one_and_drops_a_trailing_semicolon() -> None:
    assert chsql.single_statement(b"SELECT 1;  \n") == b"SELECT 1"
    assert (
        chsql.single_statement(b"SELECT ';' AS s -- ; comment") == b"SELECT ';' AS s -- ; comment"
    )


@pytest.mark.parametrize(
    "sql", [b"SELECT 1; DROP TABLE t", b"SELECT 1;SELECT 2;", b"SELECT 'a'; /* x */ INSERT"]
)
def test_multi_statements_are_refused(sql: bytes) -> None:
    with pytest.raises(SqlError) as err:
        chsql.single_statement(sql)
    assert err.value.code == chsql.SYNTAX_ERROR


def test_unterminated_quote_is_a_syntax_error() -> None:
    with pytest.raises(SqlError, match="unterminated"):
        lexer.tokens(b"SELECT 'abc")


def test_insert_data_starts_after_one_line_break_even_when_binary() -> None:
    data = b" \x20\x01binary;'\x00"
    sql = b"INSERT INTO db.t (a, `b`) FORMAT Native\n" + data
    ins = chsql.insert_with_data(sql)
    assert ins is not None
    assert ins.format == "Native"
    assert sql[ins.data_start :] == data
    assert ins.from_infile("/tmp/x'y") == (
        "INSERT INTO db.t (a, `b`) FROM INFILE '/tmp/x\\'y' FORMAT Native"
    )


def test_insert_settings_go_after_from_infile() -> None:
    sql = b"insert into t SETTINGS insert_deduplication_token = 'k' format JSONEachRow {\"a\": 1}"
    ins = chsql.insert_with_data(sql)
    assert ins is not None
    assert sql[ins.data_start :] == b'{"a": 1}'
    assert ins.from_infile("/f") == (
        "insert into t FROM INFILE '/f' "
        "SETTINGS insert_deduplication_token = 'k' FORMAT JSONEachRow"
    )


@pytest.mark.parametrize(
    "sql",
    [
        b"INSERT INTO t VALUES (1)",
        b"INSERT INTO t SELECT * FROM s FORMAT JSON",
        b"SELECT 1 FORMAT CSV",
    ],
)
def test_statements_without_trailing_data_are_not_split(sql: bytes) -> None:
    ins = chsql.insert_with_data(sql)
    assert ins is None or sql[ins.data_start :] == b""


def test_format_clause_at_depth_zero_only() -> None:
    assert chsql.format_clause(b"SELECT 1 FORMAT JSONEachRow") == "JSONEachRow"
    assert chsql.format_clause(b"SELECT formatRow('CSV', 1) FROM (SELECT 1)") is None
    assert chsql.first_keyword(b"  -- c\n /* d */ select 1") == "SELECT"


AST_SELECT = """SelectWithUnionQuery (children 1)
 ExpressionList (children 1)
  SelectQuery (children 3)
   ExpressionList (children 1)
    Function count (children 1)
   TablesInSelectQuery (children 1)
    TablesInSelectQueryElement (children 1)
     TableExpression (children 1)
      Function numbers (children 1)
       ExpressionList (children 1)
        Literal UInt64_10
   Literal UInt64_5
"""


def test_reads_and_their_literals_pass() -> None:
    assert chsql.outside_problem(AST_SELECT) is None  # LIMIT 5 is a literal, not an outfile
    assert chsql.outside_problem("ShowTables (children 1)\n Identifier d\n") is None


@pytest.mark.parametrize(
    "ast",
    [
        AST_SELECT + " Literal '/tmp/x.pth'\n",  # SELECT … INTO OUTFILE
        "ExistsTableQuery d t (children 3)\n Identifier d\n Identifier t\n Literal 'z'\n",
        "Explain EXPLAIN (children 2)\n" + AST_SELECT.replace("\n", "\n ").rstrip() + "\n"
        " Literal 'x'\n",
        "ParallelWithQuery 2 SelectWithUnionQuery (children 2)\n"
        " SelectWithUnionQuery (children 2)\n  ExpressionList (children 1)\n  Literal 'p'\n"
        " SelectWithUnionQuery (children 1)\n  ExpressionList (children 1)\n",
    ],
)
def test_into_outfile_is_found_in_the_engines_parse(ast: str) -> None:
    problem = chsql.outside_problem(ast)
    assert problem is not None and problem.code == chsql.INTO_OUTFILE_NOT_ALLOWED


def test_the_file_function_is_refused_wherever_it_is() -> None:
    scalar = AST_SELECT.replace("Function count", "Function file (alias p)")
    table = AST_SELECT.replace("Function numbers", "Function file")
    for ast in (scalar, table):
        problem = chsql.outside_problem(ast)
        assert problem is not None and problem.code == chsql.ACCESS_DENIED
        assert "file()" in problem.text()


def test_ast_nodes_know_their_parents() -> None:
    nodes = lexer.ast_nodes(AST_SELECT)
    assert nodes[0].parent is None and nodes[0].name == "SelectWithUnionQuery"
    literal = nodes[-1]
    assert literal.name == "Literal" and nodes[literal.parent or 0].name == "SelectQuery"


@pytest.mark.parametrize("encoding", ["lz4", "zstd", "gzip", "deflate"])
def test_compression_round_trip_and_concatenated_frames(encoding: str) -> None:
    body = "工单".encode() * 5000
    packed, used = compress(body, f"{encoding};q=0.9, identity;q=0.1")
    assert used == encoding and packed != body
    assert decompress(packed, encoding) == body
    if encoding != "deflate":  # streams of frames/members, as clickhouse-connect sends them
        assert decompress(packed + packed, encoding) == body + body


@pytest.mark.parametrize("encoding", ["lz4", "zstd", "gzip", "deflate", "identity"])
def test_decompression_stops_at_the_limit(encoding: str) -> None:
    bomb, _ = compress(bytes(8 << 20), encoding)  # 8 MiB of zeros
    with pytest.raises(SqlError) as err:
        decompress(bomb, encoding, limit=1 << 20)
    assert err.value.code == chsql.TOO_MANY_BYTES
    assert decompress(bomb, encoding, limit=8 << 20) == bytes(8 << 20)


@pytest.mark.parametrize("encoding", ["lz4", "zstd", "gzip", "deflate"])
def test_a_damaged_body_is_cannot_decompress(encoding: str) -> None:
    packed, _ = compress(b"SELECT 1" * 100, encoding)
    with pytest.raises(SqlError) as err:
        decompress(packed[: len(packed) // 2], encoding)
    assert err.value.code == chsql.CANNOT_DECOMPRESS


def test_unknown_content_encoding_is_a_clear_error() -> None:
    with pytest.raises(SqlError, match="Unknown Content-Encoding"):
        decompress(b"x", "snappy")


def test_split_statements_respects_literals_and_comments() -> None:
    script = (
        b"-- header; with a semicolon\n"
        b"CREATE TABLE a (x String COMMENT 'on time; null until resolved');\n"
        b"/* ; */ CREATE VIEW v AS SELECT ';' AS s;\n  -- trailing comment only\n"
    )
    parts = lexer.split_statements(script)
    assert len(parts) == 2
    assert parts[0].endswith(b"'on time; null until resolved')")
    assert parts[1].endswith(b"SELECT ';' AS s")
