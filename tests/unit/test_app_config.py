"""The Faust app as the worker runs it: table settings from the one settings object, what it
builds before joining, and scans that leave the event loop to the agents."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def _stdout(probe: str, home: Path, **env: str) -> str:
    """What ``probe`` printed, run in a fresh interpreter with only these GOVSTREAM_ settings."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("GOVSTREAM_")}
    environ.update(GOVSTREAM_HOME=str(home), **env)
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, env=environ
    )
    return done.stdout


def _run(probe: str, home: Path, **env: str) -> list[str]:
    """``probe``'s printed words (see :func:`_stdout`)."""
    return _stdout(probe, home, **env).split()


@pytest.mark.parametrize(("env", "expected"), [(None, "0"), ("1", "1")])
def test_standby_replicas_follow_the_setting(
    tmp_path: Path, env: str | None, expected: str
) -> None:
    """0 unless set: a standby re-consumes every changelog record of the other workers
    (Settings.table_standby_replicas has the measurement)."""
    setting = {} if env is None else {"GOVSTREAM_TABLE_STANDBY_REPLICAS": env}
    probe = "from agents.app import app; print(app.conf.table_standby_replicas)"
    assert _run(probe, tmp_path, **setting) == [expected]


def test_the_report_path_is_built_before_the_worker_joins(tmp_path: Path) -> None:
    """The worker's first start (before any consumer starts) runs the registered warm-ups:
    the report path's classifier is built then, not at the first report."""
    probe = (
        "import asyncio\n"
        "from agents.worker import app\n"
        "from pipelines import classify, reports\n"
        "print(app.warm_ups == [reports.warm_up], classify._SEGMENTER is None)\n"
        "asyncio.run(app.on_first_start())\n"
        "print(classify._SEGMENTER is None)\n"
    )
    assert _run(probe, tmp_path) == ["True", "True", "False"]


def test_what_the_worker_built_before_joining_is_left_out_of_full_collections(
    tmp_path: Path,
) -> None:
    """After the warm-ups, the objects built so far are frozen (gc.freeze): a full collection
    no longer scans the classifier it built (agents.app.freeze_startup_objects)."""
    probe = (
        "import asyncio, gc\n"
        "from agents.worker import app\n"
        "from pipelines import classify\n"
        "print(gc.get_freeze_count())\n"
        "asyncio.run(app.on_first_start())\n"
        "segmenter = classify._SEGMENTER\n"
        "print(gc.is_tracked(segmenter), any(o is segmenter for o in gc.get_objects()))\n"
        "print(gc.get_freeze_count() > 100_000)\n"
    )
    assert _run(probe, tmp_path) == ["0", "True", "False", "True"]


def test_the_sla_scan_yields_to_the_agents_between_chunks(tmp_path: Path) -> None:
    """The SLA scan picks this worker's due orders in chunks of SCAN_CHUNK, letting other
    tasks run in between (a whole table in one piece stopped the agents at every scan)."""
    probe = (
        "import asyncio\n"
        "from agents.worker import app\n"
        "from agents import reports as agent\n"
        "agent.SCAN_CHUNK = 2\n"
        "agent.workorders.needs_attention = lambda state, now_ms, rules: state['due']\n"
        "agent.work_orders = {\n"
        "    b'1': {'partition': 0, 'due': True}, b'2': {'partition': 0, 'due': False},\n"
        "    b'3': {'partition': 1, 'due': True}, b'4': None,\n"
        "    b'5': {'partition': 0, 'due': True}, b'6': {'partition': 0, 'due': False},\n"
        "}\n"
        "ticks = []\n"
        "async def other_task():\n"
        "    while True:\n"
        "        ticks.append(len(ticks))\n"
        "        await asyncio.sleep(0)\n"
        "async def main():\n"
        "    task = asyncio.create_task(other_task())\n"
        "    await asyncio.sleep(0)\n"
        "    due = await agent._due_orders(0, {0})\n"
        "    task.cancel()\n"
        "    print(b','.join(due).decode(), len(ticks))\n"
        "asyncio.run(main())\n"
    )
    due, ticks = _run(probe, tmp_path)
    assert due == "1,5"  # partition 1 is another worker's, '4' a deleted order
    assert int(ticks) >= 4  # the other task ran before the scan and after each of 3 chunks


def test_the_sla_scan_escalates_under_the_lock_only_what_is_still_due(tmp_path: Path) -> None:
    """The scan runs without the state lock, so an order may change before the lock is taken:
    each order is checked again under it. Order 2 got a step while the scan ran (no longer
    due): only order 1 is escalated, written to ClickHouse before the table, then flushed."""
    probe = (
        "import asyncio, inspect\n"
        "from types import SimpleNamespace\n"
        "from agents.worker import app\n"
        "from agents import reports as agent\n"
        "def order(due, revision):\n"
        "    return {'partition': 0, 'due': due, 'revision': revision, 'report_id': 'r',"
        " 'breach': 0}\n"
        "agent.work_orders = {b'1': order(True, 1), b'2': order(True, 1)}\n"
        "async def due_orders(now_ms, mine):\n"
        "    agent.work_orders[b'2'] = order(False, 2)  # a step applied meanwhile\n"
        "    return [b'1', b'2']\n"
        "async def nothing(*args):\n"
        "    return None\n"
        "agent._due_orders, agent._restore_open_orders = due_orders, nothing\n"
        "agent._report_partitions = lambda: {0}\n"
        "w = agent.workorders\n"
        "w.needs_attention = lambda state, now_ms, rules: state['due']\n"
        "w.expire = lambda state, now, tolerance_ms: (dict(state), [])\n"
        "w.escalate = lambda state, now, rules: (\n"
        "    {**state, 'revision': state['revision'] + 1, 'due': False}, None, [], [])\n"
        "w.order_row = lambda state: ['row of revision', state['revision']]\n"
        "seen = []\n"
        "async def write(name, sink, batch):\n"
        "    table = agent.work_orders[b'1']['revision']\n"
        "    seen.append(('write', batch.rows['work_orders'], table))\n"
        "    return []\n"
        "async def flush():\n"
        "    seen.append(('flush', agent._state_lock.locked()))\n"
        "agent.write = write\n"
        "app._producer = SimpleNamespace(flush=flush)\n"
        "app.tables.recovery.completed.set()\n"
        "asyncio.run(inspect.unwrap(agent.supervise_sla)())  # the timer's body, once\n"
        "print(repr(seen))\n"
        "print(agent.work_orders[b'1']['revision'], agent.work_orders[b'2']['revision'])\n"
    )
    seen, revisions = _stdout(probe, tmp_path).splitlines()
    # order 1's row is written while the table still holds revision 1; the flush waits
    # after the lock is released
    assert seen == "[('write', [['row of revision', 2]], 1), ('flush', False)]"
    assert revisions == "2 2"  # order 1 escalated; order 2 as the step left it
