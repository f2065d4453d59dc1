"""No loss, no duplicates: worker crashes, a ClickHouse outage, a second worker joining and
leaving. Counts are reconciled against the simulator's manifest."""

from __future__ import annotations

import random
import threading
import time
from functools import partial

import pytest

from pipelines import clickhouse, reconcile, simulator
from pipelines.producer import EventProducer
from tests.conftest import wait_for
from tests.reliability.conftest import OwnClickHouse, Run

pytestmark = [pytest.mark.reliability, pytest.mark.integration]


def _rows(run: Run) -> int:
    return run.observe().events


def _moved_past(run: Run, rows: int) -> bool:
    return _rows(run) > rows


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
        wait_for(partial(_moved_past, run, before), 120, "progress before a crash")
        time.sleep(rng.uniform(0.0, 1.5))
        worker.kill()
        kills += 1
        worker.start().wait_ready()
    problems = run.reconcile(manifest, timeout=180)
    assert problems == [], problems
    run.views_agree(manifest, events, timeout=60)  # forms and warnings too
    assert kills >= 1
    run.exactly_once()


def test_clickhouse_outage_stalls_then_drains_without_loss(run: Run) -> None:
    # the worker writes to a ClickHouse of its own that the test stops and starts
    server = OwnClickHouse(run)
    server.start()
    try:
        clickhouse.migrate(
            clickhouse.get_client(server.settings), server.settings.clickhouse_database
        )
        run.settings = server.settings
        events, manifest = run.simulate(seed=12, reports=800)
        half = len(events) // 2
        worker = run.worker()
        worker.start().wait_ready()
        run.send(events[:half])
        wait_for(lambda: _rows(run) > 0, 60, "the first rows")
        server.stop()
        run.send(events[half:])
        time.sleep(30)  # ClickHouse is down for 30 s while events keep arriving
        assert worker.running, "the worker must ride out an outage, not crash"
        server.start()
        problems = run.reconcile(manifest, timeout=180)
        assert problems == [], problems
        run.exactly_once()
        log = worker.log_text()
        assert "retrying in" in log  # it did see the outage and retried
    finally:
        server.stop()


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
