"""The reason-code catalogue is the one list: every code the modules name is in it, CONTRACT.md
shows it as it is, and a code outside it is refused."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pipelines import (
    alerts,
    codec,
    contracts,
    errors,
    forms,
    producer,
    reasons,
    reports,
    workorders,
)

pytestmark = pytest.mark.unit

CONTRACT = Path(__file__).resolve().parents[2] / "schemas" / "avro" / "CONTRACT.md"


def _named_codes() -> set[str]:
    """Every module-level string constant of the pipeline modules that is a reason code."""
    found = {errors.PROCESSING_ERROR}
    for module in (alerts, codec, contracts, forms, producer, reports, workorders):
        for name, value in vars(module).items():
            if name.isupper() and isinstance(value, str) and value in reasons.catalogue():
                found.add(value)
    return found


def test_every_code_the_modules_name_is_in_the_catalogue() -> None:
    named = _named_codes()
    assert {"unknown_region", "bad_key", "processing_error", "event_too_large"} <= named
    assert named <= set(reasons.catalogue())


def test_a_code_outside_the_catalogue_is_refused() -> None:
    with pytest.raises(errors.ConfigError):
        reasons.code("made_up_reason")
    assert reasons.meaning("made_up_reason") == ""
    assert "division" in reasons.meaning("unknown_region")


def test_contract_md_lists_the_catalogue_as_it_is() -> None:
    text = CONTRACT.read_text(encoding="utf-8")
    rows = re.findall(r"^\| `([a-z_]+)` \| (\w+) \| ([^|]*) \| (.*) \|$", text, re.M)
    listed = {code: (stage, topics.strip(), meaning) for code, stage, topics, meaning in rows}
    for r in reasons.catalogue().values():
        assert listed.get(r.code) == (r.stage, ", ".join(r.topics), r.meaning), r.code
