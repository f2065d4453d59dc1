"""Fault-injection runs of the whole pipeline, reconciled against the simulator's manifest.

Each run has its own consumer group (positioned at the current end of every topic, so events
of earlier tests are not its business) and its own ClickHouse database.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from pipelines import clickhouse, contracts, kafka_admin, reconcile, simulator
from pipelines.probes import probe
from pipelines.producer import EventProducer
from pipelines.settings import Settings, settings_env
from pipelines.topics import ensure_topics
from pipelines.workerproc import WorkerProcess
from tests.conftest import free_port, wait_for

ROUTED = "report-routed"


@dataclass
class Run:
    settings: Settings
    tmp: Path
    workers: list[WorkerProcess] = field(default_factory=list)

    def worker(self) -> WorkerProcess:
        settings = self.settings.model_copy(update={"worker_web_port": free_port()})
        worker = WorkerProcess(settings, self.tmp / f"worker-{len(self.workers)}.log")
        self.workers.append(worker)
        return worker

    def simulate(
        self, seed: int, reports: int, forms: int = 0, warnings: int = 0
    ) -> tuple[list[Any], dict[str, Any]]:
        config = simulator.SimConfig(seed=seed, reports=reports, forms=forms, warnings=warnings)
        now = datetime.now(UTC)
        events = simulator.generate(config, now=now)
        return events, simulator.manifest(events, config, now=now)

    def send(self, events: list[Any]) -> None:
        with EventProducer(self.settings) as producer:
            simulator.send(events, producer)

    def observe(self) -> reconcile.Counts:
        return reconcile.observe(
            clickhouse.get_client(self.settings), self.settings.clickhouse_database
        )

    def reconcile(self, manifest: dict[str, Any], timeout: float) -> list[str]:
        _, problems = reconcile.wait_reconciled(
            clickhouse.get_client(self.settings),
            self.settings.clickhouse_database,
            reconcile.Counts(),
            reconcile.expected_from(manifest),
            timeout=timeout,
        )
        return problems

    def views_agree(self, manifest: dict[str, Any], events: list[Any], timeout: float) -> None:
        """Forms, weather warnings and on-time rates in the views equal the manifest."""
        problems = reconcile.wait_views(
            clickhouse.get_client(self.settings), self.settings.clickhouse_database, manifest,
            events, timeout,
        )  # fmt: skip
        assert problems == [], problems

    def exactly_once(self) -> None:
        """Every row once: count() FINAL equals the distinct keys of every table."""
        client = clickhouse.get_client(self.settings)
        db = self.settings.clickhouse_database
        for table, key in (
            ("reports", "report_id"),
            ("work_order_events", "event_id"),
            ("dead_letters", "(source_topic, source_partition, source_offset)"),
        ):
            total, distinct = client.query(
                f"SELECT count(), uniqExact({key}) FROM {db}.{table} FINAL"
            ).result_rows[0]
            assert total == distinct, f"{db}.{table}: {total} rows for {distinct} keys"

    def kill_mid_stream(self, worker: WorkerProcess, first: list[Any], more: list[Any]) -> None:
        """Send ``first``, SIGKILL ``worker`` once some of its rows are in (mid-stream), then
        send ``more``: records that wait for a consumer that is gone."""
        self.send(first)
        wait_for(lambda: self.observe().events > 0, 120, "the first rows", every=0.2)
        worker.kill()
        self.send(more)

    def worker_logs(self) -> str:
        return "\n".join(w.log_text() for w in self.workers)


class OwnClickHouse:
    """A ClickHouse of a run's own (the embedded HTTP front end, in its own home) that a test
    stops and starts; ``settings`` are the run's pointed at it (plus ``updates``)."""

    def __init__(self, run: Run, **updates: Any) -> None:
        self.settings = run.settings.model_copy(
            update={
                "clickhouse_url": f"http://127.0.0.1:{free_port()}",
                "home": run.tmp / "own-clickhouse",
                **updates,
            }
        )
        self.log = run.tmp / "clickhouse.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "pipelines.stack.clickhouse_http"],
                env={**os.environ, **settings_env(self.settings)},
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        wait_for(lambda: probe("clickhouse", self.settings)[0], 30, "ClickHouse to answer")

    def stop(self) -> None:
        """SIGTERM (finishes the request in flight), SIGKILL if that takes over a minute."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def run(stack: Settings, unique: str, tmp_path: Path) -> Iterator[Run]:
    settings = stack.model_copy(
        update={"app_id": f"govstream-rel-{unique}", "clickhouse_database": f"rel_{unique}"}
    )
    ensure_topics(settings, extra=[ROUTED])
    partitions = kafka_admin.partitions_of(settings, [*contracts.TOPICS, ROUTED])
    kafka_admin.alter_offsets(
        settings, settings.app_id, kafka_admin.log_end_offsets(settings, partitions)
    )
    clickhouse.migrate(clickhouse.get_client(settings), settings.clickhouse_database)
    this = Run(settings, tmp_path)
    try:
        yield this
    finally:
        for worker in this.workers:
            worker.stop()
        clickhouse.get_client(stack).command(
            f"DROP DATABASE IF EXISTS {settings.clickhouse_database}"
        )
