"""What each ClickHouse role may read (issue 15, item 6).

* the writer (``GOVSTREAM_CLICKHOUSE_USER``): everything of the pipeline's database;
* analysts (``GOVSTREAM_CLICKHOUSE_ANALYST_USER`` and the city analysts of
  :mod:`pipelines.rowpolicy`): every table and view except :data:`WRITER_ONLY_TABLES`, which
  hold the original bytes of bad events (``gov.dead_letter_payloads``, see
  :mod:`pipelines.deadletter`). City analysts additionally see only their city's rows.

Production ClickHouse enforces this with grants: ``GRANT SELECT ON gov.*`` and a partial
``REVOKE SELECT ON gov.<table>`` for every writer-only table (:func:`analyst_grants`, in
``deploy/clickhouse/users.d``). The embedded endpoint (``pipelines/stack/clickhouse_http.py``)
has one chDB user for everybody, so it refuses, from the engine's own parse of a read-only
statement (``EXPLAIN AST``, parameters substituted and escapes decoded), every statement that
names a writer-only table in any database, and every ``merge()`` table function, which reaches
tables by a regular expression instead of by name (:func:`analyst_problem`).
"""

from __future__ import annotations

from pipelines.chsql import ACCESS_DENIED, SqlError, ast_nodes
from pipelines.deadletter import PAYLOAD_TABLE

#: Tables only the writer reads.
WRITER_ONLY_TABLES = frozenset({PAYLOAD_TABLE})
#: Table functions that reach tables without naming them.
PATTERN_TABLE_FUNCTIONS = frozenset({"merge"})


def analyst_grants(database: str) -> list[str]:
    """The grant statements of an analyst in production (users.d ``<grants>``)."""
    return [f"GRANT SELECT ON {database}.*"] + [
        f"REVOKE SELECT ON {database}.{table}" for table in sorted(WRITER_ONLY_TABLES)
    ]


def _names(word: str) -> list[str]:
    return word.strip("'`\"(),").split(".")


def analyst_problem(ast: str) -> SqlError | None:
    """Why a read-only request may not run a statement, given the engine's ``EXPLAIN AST`` of
    it: ACCESS_DENIED (497) when any node names a writer-only table (as a table, an identifier
    or a string: ``mergeTreeIndex('gov', 'dead_letter_payloads')``) or calls a table function
    of :data:`PATTERN_TABLE_FUNCTIONS`; None when it may run."""
    for node in ast_nodes(ast):
        words = node.words
        if (
            node.name == "Function"
            and len(words) > 1
            and words[1].lower() in PATTERN_TABLE_FUNCTIONS
        ):
            return SqlError(
                ACCESS_DENIED, f"Not enough privileges: a read-only user may not call {words[1]}()"
            )
        for word in words[1:]:
            hidden = WRITER_ONLY_TABLES.intersection(_names(word))
            if hidden:
                return SqlError(
                    ACCESS_DENIED,
                    f"Not enough privileges: {min(hidden)} is readable by the writer only",
                )
    return None
