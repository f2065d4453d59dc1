"""EventProducer and `govstream produce` against the embedded broker and registry.

The event topics are shared by the session, so every test notes the end offsets first, sends
events carrying its own unique ids, and reads back from those offsets only.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import (
    MessageField,
    SerializationContext,
    SerializationError,
)

from pipelines import contracts, simulator, topics
from pipelines.producer import EventProducer, RegistryError
from pipelines.settings import Settings, settings_env

pytestmark = pytest.mark.integration

EXAMPLES = contracts.SCHEMA_DIR / "examples"


@pytest.fixture(scope="module")
def ready(stack: Settings) -> Settings:
    topics.ensure_topics(stack)
    return stack


def end_offsets(settings: Settings, topic: str) -> list[TopicPartition]:
    consumer = Consumer(settings.kafka_config(**{"group.id": "offsets-probe"}))
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        out = []
        for p in sorted(partitions):
            _low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            out.append(TopicPartition(topic, p, high))
        return out
    finally:
        consumer.close()


Row = tuple[str, int, str, dict[str, Any] | None]


def ident(value: dict[str, Any]) -> str:
    return str(value.get("event_id") or value.get("submission_id") or value["alert_id"])


def read_back(
    settings: Settings, starts: Iterable[TopicPartition], want: set[str], timeout: float = 60.0
) -> list[Row]:
    """(topic, partition, key, decoded value) of messages after ``starts``, until ``want`` seen.

    Other tests may write to the same topics (also bytes that are not Avro: the simulator's
    dead-letter cases), and Tansu's high watermark can lag behind the last batch, so reading
    starts at or before the first message of the test: undecodable values are skipped and
    reading stops once every id of ``want`` (event, submission or alert id) arrived.
    """
    starts = list(starts)
    registry = SchemaRegistryClient(settings.registry_config())
    deserializers = {
        t: AvroDeserializer(registry, contracts.load_schema(t)) for t in {s.topic for s in starts}
    }
    consumer = Consumer(
        settings.kafka_config(**{"group.id": "read-back", "enable.auto.commit": False})
    )
    consumer.assign(starts)
    out: list[Row] = []
    missing = set(want)
    deadline = time.monotonic() + timeout
    try:
        while missing and time.monotonic() < deadline:
            for msg in consumer.consume(5000, timeout=0.5):
                assert msg.error() is None, msg.error()
                topic = msg.topic()
                key = msg.key().decode()
                try:
                    value = deserializers[topic](
                        msg.value(), SerializationContext(topic, MessageField.VALUE)
                    )
                except (SerializationError, SchemaRegistryError):
                    value = None  # not Avro, unknown schema id
                except Exception as exc:  # another record's schema: fastavro's resolution
                    if type(exc).__name__ != "SchemaResolutionError":
                        raise
                    value = None
                out.append((topic, msg.partition(), key, value))
                missing.discard(ident(value) if value is not None else f"undecodable:{key}")
    finally:
        consumer.close()
    return out


def run_produce(settings: Settings, topic: str, path: Path) -> subprocess.CompletedProcess[str]:
    """``govstream produce TOPIC --file PATH --json`` in a process of its own."""
    return subprocess.run(
        [sys.executable, "-m", "pipelines", "produce", topic, "--file", str(path), "--json"],
        capture_output=True,
        text=True,
        env={**settings_env(settings), "PATH": ""},
        timeout=120,
    )


def test_ensure_topics_is_idempotent(ready: Settings, unique: str) -> None:
    assert topics.ensure_topics(ready) == []  # the fixture created them already
    internal = f"repartition-{unique}"
    assert topics.ensure_topics(ready, extra=[internal], partitions=2) == [internal]
    assert topics.ensure_topics(ready, extra=[internal], partitions=2) == []
    described = topics.describe_topics(ready, [*contracts.TOPICS, internal, "absent-" + unique])
    assert set(described) == {*contracts.TOPICS, internal}
    assert described[internal].partitions == 2
    assert described["report"].partitions == ready.topic_partitions


def test_examples_round_trip_through_registry_and_broker(ready: Settings, unique: str) -> None:
    sent: dict[str, dict[str, Any]] = {}
    starts: list[TopicPartition] = []
    delivered: list[str] = []
    with EventProducer(ready) as producer:
        for topic in contracts.AVRO_TOPICS:
            starts += end_offsets(ready, topic)
            for line in (EXAMPLES / f"{topic}.jsonl").read_text(encoding="utf-8").splitlines():
                event = json.loads(line)
                id_field = {"report": "event_id", "form-submission": "submission_id"}.get(
                    topic, "alert_id"
                )
                event[id_field] = f"{event[id_field]}-{unique}"
                producer.send(topic, event, on_delivery=lambda err, msg: delivered.append(err))
                sent[event[id_field]] = {
                    "topic": topic,
                    "key": contracts.key_for(topic, event),
                    "record": contracts.from_json(topic, event),
                }
    assert producer.stats.delivered == len(sent) and producer.stats.failed == 0
    assert delivered == [None] * len(sent)
    got = read_back(ready, starts, set(sent))
    mine = {ident(v): (t, k, v) for t, _p, k, v in got if v is not None and ident(v) in sent}
    assert set(mine) == set(sent)
    for name, want in sent.items():
        topic, key, value = mine[name]
        assert (topic, key) == (want["topic"], want["key"])
        assert value == want["record"]
    # every step of the example report landed on one partition (key = report_id)
    report_partitions = {p for t, p, k, v in got if v and t == "report" and ident(v) in sent}
    assert len(report_partitions) == 1


def test_registry_subjects_follow_topic_name_strategy(ready: Settings) -> None:
    with EventProducer(ready) as producer:
        for topic in contracts.AVRO_TOPICS:
            line = (EXAMPLES / f"{topic}.jsonl").read_text(encoding="utf-8").splitlines()[0]
            producer.serialize(topic, contracts.from_json(topic, json.loads(line)))
    subjects = SchemaRegistryClient(ready.registry_config()).get_subjects()
    assert {contracts.subject_for(t) for t in contracts.AVRO_TOPICS} <= set(subjects)


def test_without_auto_register_an_unknown_subject_is_a_clear_error(ready: Settings) -> None:
    producer = EventProducer(ready, auto_register=False)
    # a lookup (no registration) under a subject nobody registered
    producer._serializers["report"] = AvroSerializer(
        producer._registry,
        contracts.load_schema("report"),
        conf={
            "auto.register.schemas": False,
            "subject.name.strategy": lambda ctx, name: "never-registered-value",
        },
    )
    record = contracts.from_json(
        "report", json.loads((EXAMPLES / "report.jsonl").read_text().splitlines()[0])
    )
    with pytest.raises(RegistryError, match="never-registered-value|report-value"):
        producer.serialize("report", record)
    producer.close(raise_on_failure=False)


def test_cli_refused_line_does_not_stop_the_rest(
    ready: Settings, unique: str, tmp_path: Path
) -> None:
    lines = (EXAMPLES / "report.jsonl").read_text(encoding="utf-8").splitlines()
    events = [json.loads(line) for line in lines]
    for event in events:
        event["event_id"] = f"{event['event_id']}-{unique}"
    broken = dict(events[1])
    broken["region_code"] = 430602001001  # a number, not a string
    text = [json.dumps(e, ensure_ascii=False) for e in events]
    text.insert(1, json.dumps(broken, ensure_ascii=False))
    path = tmp_path / "reports.jsonl"
    path.write_text("\n".join(text) + "\n", encoding="utf-8")
    starts = end_offsets(ready, "report")
    result = run_produce(ready, "report", path)
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip().splitlines() == [
        "line 2: region_code: wrong_type: expected string, got int 430602001001"
    ]
    summary = json.loads(result.stdout)
    assert (summary["sent"], summary["refused"]) == (len(events), 1)
    assert summary["delivered"] == len(events)
    wanted = {e["event_id"] for e in events}
    got = read_back(ready, starts, wanted)
    assert wanted <= {ident(value) for _t, _p, _k, value in got if value is not None}


def test_cli_refuses_what_the_worker_would_dead_letter_and_sends_the_rest(
    ready: Settings, unique: str, tmp_path: Path
) -> None:
    """Issue 17, item 5: contract-valid lines the worker dead-letters are refused before Kafka,
    every problem listed; the other lines reach the broker."""
    events = [json.loads(line) for line in (EXAMPLES / "report.jsonl").read_text().splitlines()]
    for event in events:
        event["event_id"] = f"{event['event_id']}-{unique}"
    good = [events[0], events[1]]
    empty = {**events[0], "event_id": f"empty-{unique}", "description": " "}
    no_note = {k: v for k, v in events[3].items() if k != "note"}  # RESOLVE
    lat_only = {k: v for k, v in events[7].items() if k != "lon"}
    several = {**events[0], "event_id": f"several-{unique}", "region_code": "439999999999"}
    several["description"] = ""
    bad = [empty, no_note, lat_only, several]
    path = tmp_path / "rules.jsonl"
    lines = [good[0], *bad, good[1]]
    path.write_text("\n".join(json.dumps(e, ensure_ascii=False) for e in lines) + "\n")
    starts = end_offsets(ready, "report")
    result = run_produce(ready, "report", path)
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip().splitlines() == [
        "line 2: (record): empty_description: a SUBMIT needs a non-empty description",
        "line 3: (record): incomplete_for_action: RESOLVE needs a note",
        "line 4: (record): incomplete_for_action: lat and lon must be sent together",
        "line 5: (record): unknown_region: region_code '439999999999' is not a known division",
        "line 5: (record): empty_description: a SUBMIT needs a non-empty description",
    ]
    summary = json.loads(result.stdout)
    assert (summary["sent"], summary["refused"], summary["delivered"]) == (2, 4, 2)
    wanted = {e["event_id"] for e in good}
    got = {ident(value) for _t, _p, _k, value in read_back(ready, starts, wanted) if value}
    assert wanted <= got
    assert not {e["event_id"] for e in bad} & got


def test_simulated_events_arrive_as_the_manifest_says(ready: Settings, unique: str) -> None:
    config = simulator.SimConfig.for_count(10_000, seed=int(unique, 16) % 1_000_000, minutes=30)
    events = simulator.generate(config)
    manifest = simulator.manifest(events, config)
    assert manifest["events"] == len(events) == 10_000
    starts = [tp for topic in contracts.AVRO_TOPICS for tp in end_offsets(ready, topic)]
    with EventProducer(ready) as producer:
        started = time.perf_counter()
        simulator.send(events, producer)
        producer.flush(60)
        rate = len(events) / (time.perf_counter() - started)
    print(f"simulator → producer: {rate:,.0f} events/s")
    assert producer.stats.delivered == 10_000 and producer.stats.failed == 0
    assert dict(producer.stats.by_topic) == {t: n for t, n in manifest["topics"].items() if n}

    def want_of(e: simulator.SimEvent) -> str:
        if e.raw is not None or e.frame_as is not None:
            return f"undecodable:{e.key}"
        assert e.value is not None
        return ident(e.value)

    wanted = {want_of(e) for e in events}
    got = read_back(ready, starts, wanted, timeout=120)
    by_id: dict[str, Row] = {}
    for row in got:
        name = ident(row[3]) if row[3] is not None else f"undecodable:{row[2]}"
        if name in wanted:
            by_id[name] = row
    assert set(by_id) == wanted
    arrived = Counter(row[0] for row in by_id.values())
    assert dict(arrived) == {t: n for t, n in manifest["topics"].items() if n}
    undecodable = sum(1 for name in by_id if name.startswith("undecodable:"))
    raw_reasons = {"not_avro_framed", "unknown_schema_id", "wrong_schema_for_topic"}
    assert undecodable == sum(
        n for r, n in manifest["dead_letters"].get("report", {}).items() if r in raw_reasons
    )
    for e in events:
        topic, _partition, key, value = by_id[want_of(e)]
        assert (topic, key) == (e.topic, e.key)
        if value is not None:
            assert value == contracts.from_json(e.topic, e.value)
    # every step of a report is on the partition of its SUBMIT, in sending order
    partitions: dict[str, set[int]] = {}
    for topic, partition, key, value in by_id.values():
        if topic == "report" and value is not None:
            partitions.setdefault(key, set()).add(partition)
    assert all(len(p) == 1 for p in partitions.values())


def test_cli_oversized_line_is_refused_by_number_and_the_rest_sent(
    ready: Settings, unique: str, tmp_path: Path
) -> None:
    """Issue 13 item 7: a 400,000-character description on line 2 used to abort the run with
    one ``MSG_SIZE_TOO_LARGE`` line; now it is refused before Kafka and line 3 is sent."""
    lines = (EXAMPLES / "report.jsonl").read_text(encoding="utf-8").splitlines()
    first, third = json.loads(lines[0]), json.loads(lines[1])
    big = dict(first, description="井盖缺失" * 100_000)  # 400,000 characters, 1.2 MB
    for number, event in enumerate((first, big, third), start=1):
        event["event_id"] = f"{event['event_id']}-{unique}-{number}"
    path = tmp_path / "big.jsonl"
    path.write_text(
        "\n".join(json.dumps(e, ensure_ascii=False) for e in (first, big, third)) + "\n",
        encoding="utf-8",
    )
    starts = end_offsets(ready, "report")
    result = run_produce(ready, "report", path)
    assert result.returncode == 1, result.stderr
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 1, result.stderr
    assert errors[0].startswith(
        "line 2: description: event_too_large: encoded event too large ("
    ), errors[0]
    assert "bytes > 900,000 bytes)" in errors[0]
    summary = json.loads(result.stdout)
    assert (summary["lines"], summary["sent"], summary["refused"]) == (3, 2, 1)
    assert summary["delivered"] == 2 and summary["failed"] == 0
    wanted = {first["event_id"], third["event_id"]}
    got = read_back(ready, starts, wanted)
    arrived = {ident(value) for _t, _p, _k, value in got if value is not None}
    assert wanted <= arrived and big["event_id"] not in arrived


def test_an_event_at_the_size_limit_is_taken_by_the_broker(ready: Settings, unique: str) -> None:
    """The contract's limit is one the client and the broker accept with default settings."""
    event = json.loads((EXAMPLES / "report.jsonl").read_text(encoding="utf-8").splitlines()[0])
    event["event_id"] = f"{event['event_id']}-{unique}-limit"
    with EventProducer(ready) as producer:
        key, record = producer.prepare("report", event)
        base = len(producer.serialize("report", record)) + len(key.encode())
        # one byte more for the description's length varint (2 -> 3 bytes)
        event["description"] += "x" * (contracts.MAX_EVENT_BYTES - base - 1)
        _key, record = producer.prepare("report", event)
        size = len(producer.serialize("report", record)) + len(key.encode())
        assert size == contracts.MAX_EVENT_BYTES
        starts = end_offsets(ready, "report")
        producer.send("report", event)
    assert producer.stats.delivered == 1 and producer.stats.failed == 0
    got = read_back(ready, starts, {event["event_id"]})
    assert event["event_id"] in {ident(v) for _t, _p, _k, v in got if v is not None}


def test_the_contracts_producer_snippet_works_as_written(ready: Settings, unique: str) -> None:
    """CONTRACT.md's confluent-kafka producer, run as it is (addresses and ids changed)."""
    text = (Path(contracts.SCHEMA_DIR) / "CONTRACT.md").read_text(encoding="utf-8")
    section = text.split("### A producer without this project's code", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    event_id = f"0b6f1c52-3d0e-4f7a-9a51-{unique[:10]}ab"
    code = (
        code.replace("http://127.0.0.1:8081", ready.schema_registry_url)
        .replace("127.0.0.1:9092", ready.kafka_bootstrap)
        .replace('Path("schemas/avro/report.avsc")', f'Path(r"{contracts.SCHEMA_DIR}/report.avsc")')
        .replace("0b6f1c52-3d0e-4f7a-9a51-2f1c8e0d7a01", event_id)
    )
    starts = end_offsets(ready, contracts.REPORT)
    exec(compile(code, "CONTRACT.md", "exec"), {})  # noqa: S102 - the documented snippet
    rows = read_back(ready, starts, {event_id})
    found = [r for r in rows if r[3] is not None and r[3]["event_id"] == event_id]
    assert len(found) == 1
    _topic, _partition, key, value = found[0]
    assert key == "YY-20240612-000123"
    assert value is not None and value["occurred_at"].isoformat() == "2024-06-12T00:41:27+00:00"
