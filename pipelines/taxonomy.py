"""The report classification taxonomy (public contract), loaded once from project data.

``pipelines/data/taxonomy.csv`` is the project's copy of the product reference table: one row
per category with its priority, SLA, responsible department and default handling level. The
codes are a public contract (analysts and the work-order system filter on them).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pipelines.errors import GovstreamError

TAXONOMY_PATH = Path(__file__).parent / "data" / "taxonomy.csv"
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

Kind = Literal["part", "event", "other"]
Level = Literal["community", "street", "county"]
_KINDS = ("part", "event", "other")
_LEVELS = ("community", "street", "county")


class TaxonomyError(GovstreamError):
    """The taxonomy data file is missing, malformed, or a code is unknown."""


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


def load(path: Path = TAXONOMY_PATH) -> dict[str, Category]:
    """Read a taxonomy CSV into ``{code: Category}`` in file order."""
    try:
        with path.open(encoding="utf-8", newline="") as fh:
            reader = csv.DictReader(fh)
            if tuple(reader.fieldnames or ()) != COLUMNS:
                raise TaxonomyError(f"{path}: columns {reader.fieldnames} != {list(COLUMNS)}")
            categories = [_parse_row(row, n) for n, row in enumerate(reader, start=2)]
    except OSError as exc:
        raise TaxonomyError(f"cannot read taxonomy {path}: {exc}") from exc
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
