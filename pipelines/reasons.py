"""The catalogue of dead-letter reason codes: every ``gov.dead_letters.reason`` and
``dlq.reason`` header value, with the stage that assigns it, the topics it applies to and its
meaning for people — one data file (``pipelines/data/reason_codes.csv``) used by the code (each
module names its codes through :func:`code`, which refuses one not in the catalogue), by
CONTRACT.md (``tests/unit/test_reasons.py`` checks its table) and by ``govstream dead-letters``.

Shapes: :data:`CATALOGUE` maps code → :class:`Reason`. Errors: :func:`code` raises
:class:`~pipelines.errors.ConfigError` for a code the catalogue lacks.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cache
from importlib import resources

from pipelines.errors import ConfigError

STAGES = ("decode", "contract", "validate", "state", "worker", "sink")


@dataclass(frozen=True)
class Reason:
    code: str
    stage: str  # one of STAGES: where in the pipeline it is assigned
    topics: tuple[str, ...]  # the source topics it can apply to
    meaning: str


@cache
def catalogue() -> dict[str, Reason]:
    """code → Reason, in the data file's order."""
    text = resources.files("pipelines").joinpath("data/reason_codes.csv").read_text("utf-8")
    out: dict[str, Reason] = {}
    for n, row in enumerate(csv.DictReader(text.splitlines()), start=2):
        if row["stage"] not in STAGES or not row["meaning"] or row["code"] in out:
            raise ConfigError(f"reason_codes.csv line {n}: bad or repeated row {row['code']!r}")
        out[row["code"]] = Reason(
            row["code"], row["stage"], tuple(row["topics"].split()), row["meaning"]
        )
    return out


def code(name: str) -> str:
    """``name`` when the catalogue has it; ConfigError otherwise (at import of the module
    that names it, so an undocumented code never reaches a table)."""
    if name not in catalogue():
        raise ConfigError(f"reason code {name!r} is not in pipelines/data/reason_codes.csv")
    return name


def meaning(name: str) -> str:
    """The meaning of a code for people ('' for a code the catalogue lacks, e.g. an old row)."""
    found = catalogue().get(name)
    return found.meaning if found else ""
