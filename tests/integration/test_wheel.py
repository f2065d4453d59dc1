"""The installed package (issue 16, item 1): the wheel built from pyproject.toml, installed into
a fresh virtualenv outside the checkout without the ``[embedded]`` extra — what deploy/Dockerfile
does — runs the production code path against the session's embedded stack, started separately
and reached at its addresses with ``GOVSTREAM_EMBEDDED=""``: ``govstream db migrate`` applies
every migration, a worker from the install processes reports sent with the installed
``govstream produce``, and ClickHouse holds one row per valid report and one dead letter per
invalid one.

Cost (2-core box, PyPI reachable): building the wheel ~8 s, installing it with its dependencies
from PyPI ~55 s (``--no-compile``; ~90 s with byte-compiling), the run ~20 s.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pipelines import clickhouse, contracts
from pipelines.settings import Settings, settings_env
from pipelines.workerproc import WorkerProcess
from tests.e2e.conftest import positioned_run

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

ROOT = Path(__file__).resolve().parents[2]
#: what deploy/Dockerfile copies into the image before `pip install .`
SOURCES = ("pyproject.toml", "README.md", "pipelines", "agents", "schemas")
INSTALL_TIMEOUT_S = 300


def _run(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=False, **kwargs)


def _clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without anything that could point Python at the checkout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env = {k: v for k, v in env.items() if not k.startswith("GOVSTREAM_")}
    return {**env, "PYTHONUNBUFFERED": "1", **extra}


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtualenv outside the checkout with the wheel of the checkout installed (no extras);
    returns its bin directory (beside it, ``src``: the sources the wheel was built from)."""
    base = tmp_path_factory.mktemp("wheel")
    assert ROOT not in base.parents
    src = base / "src"
    src.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=ignore)
        else:
            shutil.copy2(ROOT / name, src / name)
    built = _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "-q",
            "-w",
            str(base / "dist"),
            str(src),
        ],
        timeout=INSTALL_TIMEOUT_S,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = (base / "dist").glob("govstream-*.whl")
    _check_wheel_holds_the_sources(wheel, src)
    venv = base / "venv"
    made = _run([sys.executable, "-m", "venv", str(venv)], env=_clean_env())
    assert made.returncode == 0, made.stderr
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-compile"]
    done = _run([*pip, str(wheel)], env=_clean_env(), timeout=INSTALL_TIMEOUT_S, cwd=base)
    assert done.returncode == 0, done.stderr[-3000:]
    return venv / "bin"


def _check_wheel_holds_the_sources(wheel: Path, src: Path) -> None:
    """Every module and data file of pipelines/ and agents/, schemas/ as pipelines.schemas."""
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = set()
    for path in src.rglob("*"):
        rel = path.relative_to(src)
        if path.is_dir() or rel.parts[0] not in ("pipelines", "agents", "schemas"):
            continue
        if rel.parts[0] == "schemas":
            rel = Path("pipelines", *rel.parts)
        expected.add(rel.as_posix())
    assert any(n.endswith(".avsc") for n in expected) and any(n.endswith(".sql") for n in expected)
    assert expected - names == set()


def _wait(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def _reports(prefix: str, n: int) -> list[dict[str, Any]]:
    """``n`` valid SUBMITs (the contract's first example, new ids) and one of an unknown region."""
    text = (contracts.SCHEMA_DIR / "examples" / "report.jsonl").read_text("utf-8")
    example = json.loads(text.splitlines()[0])
    at = (datetime.now(UTC) - timedelta(minutes=10)).isoformat()
    events = [
        dict(example, event_id=str(uuid.uuid4()), report_id=f"{prefix}-{i:03d}", occurred_at=at)
        for i in range(n)
    ]
    events.append(dict(events[0], event_id=str(uuid.uuid4()), report_id=f"{prefix}-bad",
                       region_code="439999999999"))  # fmt: skip
    return events


def test_the_installed_wheel_runs_the_production_path(
    installed: Path, stack: Settings, unique: str, tmp_path: Path
) -> None:
    workdir = tmp_path / "outside"  # no checkout on sys.path: cwd is not the repository
    workdir.mkdir()
    python, govstream = str(installed / "python"), str(installed / "govstream")
    where = _run([python, "-c", "import pipelines, sys; print(pipelines.__file__)"], cwd=workdir,
                 env=_clean_env())  # fmt: skip
    assert where.returncode == 0 and str(installed.parent) in where.stdout, where
    engines = _run([python, "-c", "import chdb"], cwd=workdir, env=_clean_env())
    assert engines.returncode != 0  # the production install has no embedded engine

    refused = _run(
        [govstream, "stack", "up"],
        cwd=workdir,
        env=_clean_env(GOVSTREAM_HOME=str(tmp_path / "home"), GOVSTREAM_EMBEDDED="clickhouse"),
    )
    assert refused.returncode == 1
    assert "govstream[embedded]" in refused.stderr + refused.stdout
    assert "Traceback" not in refused.stderr

    run, _ = positioned_run(stack, "wheel", unique, migrate=False)
    # production: nothing embedded, the stack's addresses and the writer's password given
    run = run.model_copy(
        update={
            "embedded": [],
            "home": tmp_path / "home",
            "clickhouse_password": stack.clickhouse_kwargs()["password"],
        }
    )
    env = _clean_env(**settings_env(run))
    assert env["GOVSTREAM_EMBEDDED"] == ""
    client = clickhouse.get_client(stack)
    try:
        migrated = _run([govstream, "db", "migrate", "--json"], cwd=workdir, env=env, timeout=120)
        assert migrated.returncode == 0, migrated.stderr
        applied = json.loads(migrated.stdout)["applied"]
        shipped = installed.parents[1] / "src" / "schemas" / "clickhouse"  # what the wheel holds
        assert applied == [f"{m.version:04d}_{m.name}" for m in clickhouse.load_migrations(shipped)]

        prefix = f"WHL{unique}"
        events = _reports(prefix, 12)
        lines = tmp_path / "reports.jsonl"
        lines.write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in events))
        worker = WorkerProcess(run, tmp_path / "worker.log", program=[govstream], cwd=workdir)
        with worker:
            worker.wait_ready()
            # --no-validate: the unknown region must reach the worker, to be dead-lettered there
            sent = _run([govstream, "produce", "report", "--file", str(lines), "--json",
                         "--no-validate"], cwd=workdir, env=env, timeout=120)  # fmt: skip
            assert sent.returncode == 0, sent.stderr
            assert json.loads(sent.stdout)["delivered"] == len(events)
            db = run.clickhouse_database

            def counts() -> tuple[int, int]:
                rows, letters = client.query(
                    f"SELECT (SELECT count() FROM {db}.reports FINAL"
                    "         WHERE startsWith(report_id, {p:String})),"
                    f"       (SELECT count() FROM {db}.dead_letters FINAL"
                    "         WHERE reason = 'unknown_region')",
                    parameters={"p": prefix},
                ).result_rows[0]
                return int(rows), int(letters)

            _wait(lambda: counts() == (len(events) - 1, 1), 90, "rows + dead letters = sent")
        assert "Traceback" not in worker.log_text()
    finally:
        client.command(f"DROP DATABASE IF EXISTS {run.clickhouse_database}")
