"""The report classification taxonomy (public contract), loaded once from project data.

``pipelines/data/taxonomy.csv`` is the project's copy of the product reference table
(``../shared/reference/taxonomy.csv``, v2.1, 61 codes): one row per category with its priority,
SLA, responsible department and default handling level. Kinds: ``part`` (部件, P…) and ``event``
(事件, E…) after GB/T 30428.2 / CJ/T 214, ``request`` (诉求, S…: the 12345 hotline's request
categories, new in v2) and ``other`` (``X9999``, 人工分拨). v2.1 keeps every v1 code and its
meaning. The codes are a public contract (analysts and the work-order system filter on them).

``pipelines/data/request_types.csv`` is the copy of ``../shared/reference/request_types.csv``:
the kind of request (诉求类型) recorded next to the category -- consult 咨询, help 求助,
complaint 投诉, report 举报, suggestion 建议, praise 表扬.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pipelines.errors import GovstreamError

TAXONOMY_PATH = Path(__file__).parent / "data" / "taxonomy.csv"
REQUEST_TYPES_PATH = Path(__file__).parent / "data" / "request_types.csv"
# the version of the reference table the project copy is (../shared/reference/README.md);
# stored next to every classified row (gov.reports.taxonomy_version)
VERSION = "2.1"
REQUEST_TYPE_COLUMNS = ("code", "name", "meaning", "examples")
DEFAULT_REQUEST_TYPE = "complaint"  # 投诉: a problem someone should fix (the usual report)
COLUMNS = (
    "code",
    "kind",
    "major",
    "minor",
    "priority",
    "sla_hours",
    "department",
    "level",
    "examples",
)
UNKNOWN_CODE = "X9999"

Kind = Literal["part", "event", "request", "other"]
Level = Literal["community", "street", "county"]
_KINDS = ("part", "event", "request", "other")
_LEVELS = ("community", "street", "county")


class TaxonomyError(GovstreamError):
    """The taxonomy data file is missing, malformed, or a code is unknown."""


@dataclass(frozen=True, slots=True)
class RequestType:
    """One request type (a row of ``request_types.csv``): ``code`` is the stored value."""

    code: str
    name: str
    meaning: str
    examples: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Category:
    """One taxonomy category (a row of ``taxonomy.csv``)."""

    code: str
    kind: Kind
    major: str
    minor: str
    priority: str
    sla_hours: float
    department: str
    level: Level
    examples: tuple[str, ...]


def _split_examples(raw: str) -> tuple[str, ...]:
    for sep in ("；", "、", "，", "/", ";", ","):
        raw = raw.replace(sep, "\n")
    return tuple(part.strip() for part in raw.splitlines() if part.strip())


def _parse_row(row: dict[str, str], line: int) -> Category:
    kind, level = row["kind"].strip(), row["level"].strip()
    if kind not in _KINDS or level not in _LEVELS:
        raise TaxonomyError(f"taxonomy.csv line {line}: bad kind {kind!r} or level {level!r}")
    try:
        sla = float(row["sla_hours"])
    except ValueError as exc:
        raise TaxonomyError(
            f"taxonomy.csv line {line}: bad sla_hours {row['sla_hours']!r}"
        ) from exc
    return Category(
        code=row["code"].strip(),
        kind=kind,  # type: ignore[arg-type]
        major=row["major"].strip(),
        minor=row["minor"].strip(),
        priority=row["priority"].strip(),
        sla_hours=sla,
        department=row["department"].strip(),
        level=level,  # type: ignore[arg-type]
        examples=_split_examples(row["examples"]),
    )


def _read_rows(path: Path, columns: tuple[str, ...], what: str) -> list[dict[str, str]]:
    """The rows of a reference CSV whose header is exactly ``columns``."""
    try:
        with path.open(encoding="utf-8", newline="") as fh:
            reader = csv.DictReader(fh)
            if tuple(reader.fieldnames or ()) != columns:
                raise TaxonomyError(f"{path}: columns {reader.fieldnames} != {list(columns)}")
            return list(reader)
    except OSError as exc:
        raise TaxonomyError(f"cannot read {what} {path}: {exc}") from exc


def load(path: Path = TAXONOMY_PATH) -> dict[str, Category]:
    """Read a taxonomy CSV into ``{code: Category}`` in file order.

    Raises :class:`TaxonomyError` when the file is unreadable, its columns differ from
    ``COLUMNS``, a row has a bad kind, level or SLA, a code repeats or ``X9999`` is missing.
    """
    rows = _read_rows(path, COLUMNS, "taxonomy")
    categories = [_parse_row(row, n) for n, row in enumerate(rows, start=2)]
    by_code = {c.code: c for c in categories}
    if len(by_code) != len(categories):
        raise TaxonomyError(f"{path}: duplicate codes")
    if UNKNOWN_CODE not in by_code:
        raise TaxonomyError(f"{path}: missing the fallback code {UNKNOWN_CODE}")
    return by_code


@lru_cache(maxsize=1)
def _table() -> dict[str, Category]:
    return load()


def all() -> tuple[Category, ...]:  # noqa: A001 - the module's public API name
    """Every category, in file order (``X9999`` included)."""
    return tuple(_table().values())


def is_valid(code: object) -> bool:
    """Whether ``code`` is a taxonomy code (``X9999`` included)."""
    return isinstance(code, str) and code in _table()


def get(code: str) -> Category:
    """The category of ``code``; raises :class:`TaxonomyError` for an unknown code."""
    try:
        return _table()[code]
    except KeyError:
        raise TaxonomyError(f"unknown taxonomy code {code!r}") from None


def unknown() -> Category:
    """The "cannot tell" category (``X9999``)."""
    return get(UNKNOWN_CODE)


def load_request_types(path: Path = REQUEST_TYPES_PATH) -> dict[str, RequestType]:
    """Read a request-types CSV into ``{code: RequestType}`` in file order.

    Raises :class:`TaxonomyError` when the file is unreadable, its columns differ from
    ``REQUEST_TYPE_COLUMNS``, a code repeats or ``DEFAULT_REQUEST_TYPE`` is missing.
    """
    types = [
        RequestType(
            code=row["code"].strip(),
            name=row["name"].strip(),
            meaning=row["meaning"].strip(),
            examples=_split_examples(row["examples"]),
        )
        for row in _read_rows(path, REQUEST_TYPE_COLUMNS, "request types")
    ]
    by_code = {t.code: t for t in types}
    if len(by_code) != len(types):
        raise TaxonomyError(f"{path}: duplicate request types")
    if DEFAULT_REQUEST_TYPE not in by_code:
        raise TaxonomyError(f"{path}: missing the default request type {DEFAULT_REQUEST_TYPE}")
    return by_code


@lru_cache(maxsize=1)
def _request_types() -> dict[str, RequestType]:
    return load_request_types()


def request_types() -> tuple[RequestType, ...]:
    """Every request type, in file order."""
    return tuple(_request_types().values())


def is_request_type(code: object) -> bool:
    """Whether ``code`` is a request type code (``consult``, ``complaint``, …)."""
    return isinstance(code, str) and code in _request_types()


def request_type(code: str) -> RequestType:
    """The request type ``code``; raises :class:`TaxonomyError` for an unknown one."""
    try:
        return _request_types()[code]
    except KeyError:
        raise TaxonomyError(f"unknown request type {code!r}") from None
