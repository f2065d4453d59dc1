"""Consumer lag and replay on the embedded stack (a stopped and a live consumer)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from pipelines import kafka_admin, lag
from pipelines.settings import Settings
from tests.integration.test_stack import run_cli

pytestmark = pytest.mark.integration

PARTITIONS = 3
BATCHES = 4  # record batches per partition
PER_BATCH = 250  # records per batch
N = BATCHES * PER_BATCH  # records per partition
CONSUMED = {0: 0, 1: 400, 2: N}  # committed offset per partition


def cli_json(settings: Settings, *args: str) -> dict[str, Any]:
    done = run_cli(settings, *args, "--json")
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def produce_batches(settings: Settings, topic: str, partitions: int) -> None:
    """N records per partition, in BATCHES record batches each (flush between batches)."""
    admin = AdminClient(settings.kafka_config())
    for future in admin.create_topics([NewTopic(topic, partitions, 1)]).values():
        future.result(timeout=10)
    producer = Producer(settings.kafka_config(**{"linger.ms": 50, "batch.size": 1_000_000}))
    for b in range(BATCHES):
        for p in range(partitions):
            for i in range(PER_BATCH):
                producer.produce(topic, value=f"{b}-{i}".encode(), partition=p)
        assert producer.flush(30) == 0


def commit(settings: Settings, group: str, offsets: dict[tuple[str, int], int]) -> None:
    consumer = Consumer(settings.kafka_config(**{"group.id": group, "enable.auto.commit": False}))
    try:
        consumer.commit(
            offsets=[TopicPartition(t, p, o) for (t, p), o in offsets.items()],
            asynchronous=False,
        )
    finally:
        consumer.close()


@pytest.fixture
def stopped_group(stack: Settings, unique: str) -> Iterator[tuple[str, str]]:
    """A topic with N records per partition and a group that committed CONSUMED, then left."""
    topic, group = f"lag-{unique}", f"lag-g-{unique}"
    produce_batches(stack, topic, PARTITIONS)
    commit(stack, group, {(topic, p): o for p, o in CONSUMED.items() if o})
    yield topic, group


def test_log_end_is_right_when_the_last_batch_holds_many_records(
    stack: Settings, unique: str
) -> None:
    topic = f"logend-{unique}"
    produce_batches(stack, topic, 2)
    parts = [(topic, 0), (topic, 1)]
    assert kafka_admin.log_end_offsets(stack, parts) == {(topic, 0): N, (topic, 1): N}
    # what the broker's ListOffsets says may be lower (Tansu: last batch base + 1), never higher
    raw = kafka_admin.list_offsets(stack, parts, latest=True)
    assert all(0 < raw[tp] <= N for tp in raw)


def test_log_end_of_an_empty_partition_is_zero(stack: Settings, unique: str) -> None:
    topic = f"empty-{unique}"
    admin = AdminClient(stack.kafka_config())
    for future in admin.create_topics([NewTopic(topic, 1, 1)]).values():
        future.result(timeout=10)
    assert kafka_admin.log_end_offsets(stack, [(topic, 0)]) == {(topic, 0): 0}


def test_lag_is_produced_minus_consumed_on_every_partition(
    stack: Settings, stopped_group: tuple[str, str]
) -> None:
    topic, group = stopped_group
    observed, members = kafka_admin.observe_groups(stack, [group])
    assert members == {group: 0}
    got = {p: obs.lag for (t, p), obs in observed[group].items() if t == topic}
    assert got == {p: N - CONSUMED[p] for p in range(PARTITIONS)}


def test_lag_cli_reports_a_stopped_consumer(
    stack: Settings, stopped_group: tuple[str, str]
) -> None:
    topic, group = stopped_group
    data = cli_json(stack, "lag", "--group", group, "--window", "2", "--interval", "0.2")
    [report] = data["groups"]
    assert report["group"] == group and report["members"] == 0
    rows = {r["partition"]: r for r in report["partitions"]}
    assert {p: r["lag"] for p, r in rows.items()} == {p: N - c for p, c in CONSUMED.items()}
    assert {p: r["log_end"] for p, r in rows.items()} == dict.fromkeys(range(PARTITIONS), N)
    assert rows[0]["committed"] == 0  # no commit: read from the partition's start
    assert rows[1]["status"] == "STOP" and rows[2]["status"] == "OK"
    assert report["status"] == data["status"] == "STOP"
    assert report["lag"] == sum(N - c for c in CONSUMED.values())

    fail = run_cli(stack, "lag", "--group", group, "--window", "1", "--fail-on", "STALL")
    assert fail.returncode == 1
    assert "STOP" in fail.stdout
    ok = run_cli(stack, "lag", "--group", group, "--window", "1", "--fail-on", "ERR")
    assert ok.returncode == 0, ok.stderr


def test_lag_cli_unknown_group_exits_2(stack: Settings, unique: str) -> None:
    done = run_cli(stack, "lag", "--group", f"nobody-{unique}")
    assert done.returncode == 2
    assert done.stderr.startswith("govstream: error: unknown consumer group")
    assert len(done.stderr.strip().splitlines()) == 1


def test_replay_to_earliest_makes_lag_n(stack: Settings, stopped_group: tuple[str, str]) -> None:
    topic, group = stopped_group
    done = run_cli(stack, "replay", "--group", group, "--topic", topic, "--to-earliest", "--yes")
    assert done.returncode == 0, done.stderr
    assert "400" in done.stdout  # the plan shows the old offsets
    observed, _ = kafka_admin.observe_groups(stack, [group])
    assert {p: obs.lag for (_, p), obs in observed[group].items()} == dict.fromkeys(
        range(PARTITIONS), N
    )
    assert {p: obs.committed for (_, p), obs in observed[group].items()} == dict.fromkeys(
        range(PARTITIONS), 0
    )


def test_replay_to_offset_and_shift(stack: Settings, stopped_group: tuple[str, str]) -> None:
    topic, group = stopped_group
    args = ["replay", "--group", group, "--topic", topic, "--yes"]
    assert run_cli(stack, *args, "--to-offset", "1:123").returncode == 0
    assert kafka_admin.committed_offsets(stack, group)[(topic, 1)] == 123
    assert run_cli(stack, *args, "--shift", "-100").returncode == 0
    committed = kafka_admin.committed_offsets(stack, group)
    assert committed[(topic, 1)] == 23 and committed[(topic, 2)] == N - 100
    bad = run_cli(stack, *args, "--to-offset", f"1:{N + 1}")
    assert bad.returncode == 2 and "outside the log" in bad.stderr


def test_replay_refused_and_stall_while_a_consumer_is_live(
    stack: Settings, stopped_group: tuple[str, str]
) -> None:
    topic, group = stopped_group
    consumer = Consumer(
        stack.kafka_config(
            **{
                "group.id": group,
                "enable.auto.commit": False,
                "session.timeout.ms": 6000,
                "auto.offset.reset": "earliest",
            }
        )
    )
    consumer.subscribe([topic])
    try:
        deadline = time.monotonic() + 30
        while not consumer.assignment() and time.monotonic() < deadline:
            consumer.poll(0.2)
        assert consumer.assignment(), "the consumer never joined the group"
        # the live consumer never commits: its offsets stand still with lag > 0
        data = cli_json(stack, "lag", "--group", group, "--window", "2", "--interval", "0.2")
        [report] = data["groups"]
        assert report["members"] == 1
        assert report["status"] == "STALL"

        done = run_cli(stack, "replay", "--group", group, "--topic", topic, "--to-earliest", "-y")
        assert done.returncode == 1
        assert "live member" in done.stderr
        assert kafka_admin.committed_offsets(stack, group)[(topic, 1)] == CONSUMED[1]
    finally:
        consumer.close()


def test_a_partition_without_commit_counts_its_full_lag(stack: Settings, unique: str) -> None:
    """A topic the group reads but never committed on (issue 17, item 1): log end - log start."""
    topic, group = f"nocommit-{unique}", f"nocommit-g-{unique}"
    produce_batches(stack, topic, 2)
    observed, _ = kafka_admin.observe_groups(stack, [group])
    assert observed[group] == {}  # nothing says this group reads the topic
    observed, _ = kafka_admin.observe_groups(stack, [group], topics={group: [topic]})
    assert {tp: obs.lag for tp, obs in observed[group].items()} == {(topic, 0): N, (topic, 1): N}
    tracker = lag.LagTracker(2)
    tracker.observe(group, observed[group], 0)
    report = tracker.report(group)
    assert report.lag == 2 * N and report.status == lag.Status.STOP


def test_the_pipeline_group_shows_its_inputs_before_any_commit(
    stack: Settings, unique: str
) -> None:
    settings = stack.model_copy(update={"app_id": f"fresh-{unique}"})
    from pipelines.topics import ensure_topics

    ensure_topics(settings, extra=["report-routed"])
    data = cli_json(settings, "lag", "--window", "1")
    [report] = [g for g in data["groups"] if g["group"] == settings.app_id]
    topics = {p["topic"] for p in report["partitions"]}
    assert topics == set(kafka_admin.PIPELINE_INPUTS)
    for p in report["partitions"]:
        assert p["lag"] == p["log_end"] - p["committed"]  # committed: the log start


def test_lag_watch_json_prints_one_line_per_interval(
    stack: Settings, stopped_group: tuple[str, str]
) -> None:
    import subprocess
    import sys

    from pipelines.settings import settings_env

    _, group = stopped_group
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipelines", "lag", "--group", group, "--watch", "--json",
         "--interval", "0.2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={"PATH": "/usr/bin:/bin", **settings_env(stack)},
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(2)]  # blocks: each line comes flushed
    finally:
        proc.terminate()
        proc.wait(10)
    docs = [json.loads(line) for line in lines]
    assert [d["groups"][0]["group"] for d in docs] == [group, group]
    assert docs[1]["at"] > docs[0]["at"] and docs[1]["status"] == "STOP"
