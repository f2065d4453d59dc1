"""The dispatchers' corrections as labelled texts (issue 14, item 3): what
``govstream classify train --from-clickhouse`` learns from.

A DISPATCH may carry ``corrected_category`` (schemas/avro/CONTRACT.md); the work order keeps it
next to the classifier's answer (:func:`pipelines.workorders.correct`) and the view
``gov.classification_corrections`` (migration 0015) lists every corrected order with the report
text as gov.reports stores it (scrubbed of names, phones and ID numbers). :func:`examples`
reads that view as the analyst user: the corrected code is the label, the scrubbed description
the text, the request type the one on the order (the classifier's; an order without one gets
the taxonomy's default, ``complaint``). A correction that equals the classifier's code (the
dispatcher confirmed it) is a label too.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from pipelines import taxonomy
from pipelines.classify_eval import Example
from pipelines.errors import GovstreamError

VIEW = "classification_corrections"

_QUERY = (
    "SELECT corrected_code, request_type, description "
    "FROM {db:Identifier}.classification_corrections "
    "WHERE description != '' AND toDate(corrected_at) >= {since:Date} "
    "ORDER BY corrected_at, report_id"
)


def examples(client: Any, database: str, since: date | None = None) -> list[Example]:
    """The corrected orders of ``database`` as labelled examples (split ``corrections``), the
    oldest correction first; only those corrected on or after ``since`` (a date in
    Asia/Shanghai) when given. Rows whose code the taxonomy no longer has are left out.
    Raises :class:`~pipelines.errors.GovstreamError` when ClickHouse cannot answer."""
    params = {"db": database, "since": since or date(1970, 1, 1)}
    try:
        rows = client.query(_QUERY, params).result_rows
    except Exception as exc:  # clickhouse-connect: server error, connection refused, …
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise GovstreamError(f"cannot read {database}.{VIEW}: {first}") from exc
    out = []
    for code, kind, text in rows:
        if not taxonomy.is_valid(code):
            continue
        kind = kind if taxonomy.is_request_type(kind) else taxonomy.DEFAULT_REQUEST_TYPE
        out.append(Example(str(text), str(code), "corrections", str(kind)))
    return out
