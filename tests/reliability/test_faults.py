"""No loss, no duplicates: worker crashes, a ClickHouse outage, a second worker joining and
leaving. Counts are reconciled against the simulator's manifest."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time

import pytest

from pipelines import clickhouse, reconcile, simulator
from pipelines.probes import probe
from pipelines.producer import EventProducer
from pipelines.settings import settings_env
from tests.conftest import free_port, wait_for
from tests.reliability.conftest import Run

pytestmark = [pytest.mark.reliability, pytest.mark.integration]


def _rows(run: Run) -> int:
    return run.observe().events


def test_sigkill_at_random_points_loses_and_duplicates_nothing(run: Run) -> None:
    events, manifest = run.simulate(seed=11, reports=1500, forms=600, warnings=6)
    expected = reconcile.expected_from(manifest)
    rng = random.Random(11)
    worker = run.worker()
    worker.start().wait_ready()
    run.send(events)
    kills = 0
    for _ in range(3):  # kill whenever the rows have moved on since the last start
        before = _rows(run)
        if before >= expected.events:
            break
        wait_for(lambda b=before: _rows(run) > b, 120, "progress before a crash")
        time.sleep(rng.uniform(0.0, 1.5))
        worker.kill()
        kills += 1
        worker.start().wait_ready()
    problems = run.reconcile(manifest, timeout=180)
    assert problems == [], problems
    run.views_agree(manifest, events, timeout=60)  # forms and warnings too
    assert kills >= 1
    run.exactly_once()


def _stop(server: subprocess.Popen[bytes]) -> None:
    """SIGTERM (finishes the request in flight), SIGKILL if that takes over a minute."""
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(60)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait(10)


def test_clickhouse_outage_stalls_then_drains_without_loss(run: Run) -> None:
    # the worker writes to a ClickHouse of its own that the test stops and starts
    port = free_port()
    own = run.settings.model_copy(
        update={
            "clickhouse_url": f"http://127.0.0.1:{port}",
            "home": run.tmp / "own-clickhouse",
        }
    )
    env = {**os.environ, **settings_env(own)}

    def start_clickhouse() -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pipelines.stack.clickhouse_http"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=(run.tmp / "clickhouse.log").open("ab"),
        )
        wait_for(lambda: probe("clickhouse", own)[0], 30, "ClickHouse to answer")
        return proc

    server = start_clickhouse()
    try:
        clickhouse.migrate(clickhouse.get_client(own), own.clickhouse_database)
        run.settings = own
        events, manifest = run.simulate(seed=12, reports=800)
        half = len(events) // 2
        worker = run.worker()
        worker.start().wait_ready()
        run.send(events[:half])
        wait_for(lambda: _rows(run) > 0, 60, "the first rows")
        _stop(server)
        run.send(events[half:])
        time.sleep(30)  # ClickHouse is down for 30 s while events keep arriving
        assert worker.running, "the worker must ride out an outage, not crash"
        server = start_clickhouse()
        problems = run.reconcile(manifest, timeout=180)
        assert problems == [], problems
        run.exactly_once()
        log = worker.log_text()
        assert "retrying in" in log  # it did see the outage and retried
    finally:
        _stop(server)


def test_a_second_worker_joins_and_leaves_midstream(run: Run) -> None:
    events, manifest = run.simulate(seed=13, reports=1500)
    third = len(events) // 3
    first, second = run.worker(), run.worker()
    first.start().wait_ready()
    with EventProducer(run.settings) as producer:
        sender = threading.Thread(
            target=simulator.send, args=(events[:third], producer), kwargs={"rate": 150}
        )
        sender.start()
        second.start().wait_ready()  # joins while the first third is still flowing
        sender.join()
        simulator.send(events[third : 2 * third], producer)
        producer.flush()
        progress = _rows(run)
        wait_for(lambda: _rows(run) > progress, 60, "progress with two workers")
        assert second.stop() == 0  # leaves cleanly: a second rebalance
        simulator.send(events[2 * third :], producer)
    problems = run.reconcile(manifest, timeout=180)
    assert problems == [], problems
    run.exactly_once()
