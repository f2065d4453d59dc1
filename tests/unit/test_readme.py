"""The README's configuration table lists every setting, and nothing else."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pipelines.settings import Settings

pytestmark = pytest.mark.unit

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_configuration_table_lists_every_setting() -> None:
    section = README.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `(GOVSTREAM_[A-Z_0-9]+)`", section, re.M))
    expected = {f"GOVSTREAM_{name.upper()}" for name in Settings.model_fields}
    assert documented == expected


def test_readme_names_the_two_commands() -> None:
    assert "make demo" in README and "make test" in README
