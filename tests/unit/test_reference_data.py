"""The project's copies of the product reference data match ../shared/reference when it is there."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "reference"


@pytest.mark.parametrize("name", ["taxonomy.csv", "request_types.csv", "weather_warnings.csv"])
def test_project_copy_matches_the_reference(name: str) -> None:
    ours = ROOT / "pipelines" / "data" / name
    assert ours.is_file()
    reference = SHARED / name
    assert reference.is_file(), f"{reference}: run the tests with shared/ beside the checkout"
    assert ours.read_text(encoding="utf-8") == reference.read_text(encoding="utf-8")
