"""`govstream produce`: line-numbered refusals, the rest sent, exit codes 0 / 1 / 2."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import fastavro
import pytest
from rich.console import Console

from pipelines import contracts
from pipelines.cli import main
from pipelines.cli import produce as produce_cli
from pipelines.producer import (
    DeliveryStats,
    EventProducer,
    ProducerError,
    RuleError,
    parse_event,
    rule_problems,
)
from pipelines.settings import Settings

pytestmark = pytest.mark.unit

EXAMPLES = contracts.SCHEMA_DIR / "examples"


class FakeProducer(EventProducer):
    """EventProducer's validation and counting, with Kafka and the registry replaced.

    ``serialize`` gives the real Confluent-framed Avro bytes (schema id 1), so the size check
    sees what Kafka would; ``sent`` lists what reached ``produce_raw``.
    """

    def __init__(self, settings: Settings, *, fail_delivery: int = 0) -> None:
        self.settings = settings
        self.stats = DeliveryStats()
        self.sent: list[tuple[str, str, dict[str, Any]]] = []
        self._serialized: tuple[str, str, dict[str, Any]] | None = None
        self._closed = False
        self._fail_delivery = fail_delivery

    def serialize(self, topic: str, record: Mapping[str, Any]) -> bytes:
        self._serialized = (topic, contracts.key_for(topic, record), dict(record))
        body = io.BytesIO()
        fastavro.schemaless_writer(body, contracts.parsed_schema(topic), dict(record))
        return b"\x00\x00\x00\x00\x01" + body.getvalue()

    def produce_raw(self, topic: str, value: bytes | None, **kwargs: Any) -> None:
        assert self._serialized is not None
        self.sent.append(self._serialized)
        self.stats.produced += 1

    def flush(self, timeout: float = 30.0, *, raise_on_failure: bool = True) -> DeliveryStats:
        failed = min(self._fail_delivery, self.stats.pending)
        self.stats.failed += failed
        if failed:
            self.stats.failure_reasons["_MSG_TIMED_OUT"] += failed
            self.stats.errors.append("report key 'x': Local: Message timed out")
        self.stats.delivered += self.stats.pending
        return self.stats


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[FakeProducer]]:
    made: list[FakeProducer] = []

    def open_producer(settings: Settings) -> EventProducer:
        producer = FakeProducer(settings)
        made.append(producer)
        return producer

    monkeypatch.setattr(produce_cli, "open_producer", open_producer)
    yield made


def example_lines(topic: str) -> list[str]:
    return (EXAMPLES / f"{topic}.jsonl").read_text(encoding="utf-8").splitlines()


@pytest.mark.parametrize("topic", contracts.AVRO_TOPICS)
def test_every_example_is_sent_exit_0(
    topic: str, tmp_path: Path, fake: list[FakeProducer], capsys: pytest.CaptureFixture[str]
) -> None:
    lines = example_lines(topic)
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert main(["produce", topic, "--file", str(path), "--json"]) == 0
    out = capsys.readouterr()
    summary = json.loads(out.out)
    assert summary["sent"] == summary["delivered"] == len(lines)
    assert summary["refused"] == 0 and out.err == ""
    assert [s[0] for s in fake[0].sent] == [topic] * len(lines)
    expected_keys = [contracts.key_for(topic, json.loads(line)) for line in lines]
    assert [s[1] for s in fake[0].sent] == expected_keys


def test_invalid_lines_reported_with_numbers_rest_sent_exit_1(
    tmp_path: Path, fake: list[FakeProducer], capsys: pytest.CaptureFixture[str]
) -> None:
    good = example_lines("report")
    bad_time = json.loads(good[1])
    bad_time["occurred_at"] = "2024-06-12 08:50:03"  # no zone
    typo = json.loads(good[2])
    typo["descripton"] = typo.pop("note")
    lines = [
        good[0],
        "{not json",
        json.dumps(bad_time, ensure_ascii=False),
        "",  # blank lines are skipped but still counted for numbering
        json.dumps(typo, ensure_ascii=False),
        "[1, 2]",
        good[3],
    ]
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert main(["produce", "report", "--file", str(path), "--json"]) == 1
    out = capsys.readouterr()
    errors = out.err.strip().splitlines()
    assert errors[0].startswith("line 2: (record): invalid_json: not JSON")
    assert errors[1].startswith("line 3: occurred_at: bad_timestamp: ")
    assert "no time zone" in errors[1]
    assert errors[2].startswith("line 5: descripton: unknown_field: ")
    assert "did you mean 'description'?" in errors[2]
    assert errors[3].startswith("line 6: (record): not_a_json_object: ")
    assert len(errors) == 4
    summary = json.loads(out.out)
    assert summary["lines"] == 6
    assert (summary["sent"], summary["refused"]) == (2, 4)
    assert summary["reasons"] == {
        "invalid_json": 1,
        "bad_timestamp": 1,
        "unknown_field": 1,
        "not_a_json_object": 1,
    }
    sent_events = [s[2]["event_id"] for s in fake[0].sent]
    assert sent_events == [json.loads(good[0])["event_id"], json.loads(good[3])["event_id"]]


def test_reads_stdin_without_file(
    monkeypatch: pytest.MonkeyPatch, fake: list[FakeProducer], capsys: pytest.CaptureFixture[str]
) -> None:
    lines = example_lines("alert")
    monkeypatch.setattr("sys.stdin", io.StringIO("\n".join(lines) + "\n"))
    assert main(["produce", "alert", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["sent"] == len(lines)


def test_table_summary_for_people(
    tmp_path: Path, fake: list[FakeProducer], capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "a.jsonl"
    path.write_text("\n".join(example_lines("alert")), encoding="utf-8")
    assert main(["produce", "alert", "--file", str(path)]) == 0
    out = capsys.readouterr().out
    assert "govstream produce" in out and "events_per_s" in out


@pytest.mark.parametrize("topic", ["reports", "dead-letter", ""])
def test_unknown_topic_is_one_line_exit_2(
    topic: str, fake: list[FakeProducer], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["produce", topic, "--file", "/nonexistent.jsonl"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("govstream: error: ") and "unknown topic" in err[0]
    assert "Traceback" not in err[0]
    assert fake == []  # nothing was opened


def test_missing_file_is_exit_2(
    tmp_path: Path, fake: list[FakeProducer], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["produce", "report", "--file", str(tmp_path / "nope.jsonl")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot read" in err[0]


def test_undelivered_events_exit_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(
        produce_cli, "open_producer", lambda settings: FakeProducer(settings, fail_delivery=1)
    )
    path = tmp_path / "a.jsonl"
    path.write_text("\n".join(example_lines("alert")), encoding="utf-8")
    assert main(["produce", "alert", "--file", str(path), "--json"]) == 1
    out = capsys.readouterr()
    summary = json.loads(out.out)
    assert summary["failed"] == 1 and summary["refused"] == 0
    assert "not delivered: " in out.err


def test_producer_refuses_without_sending() -> None:
    producer = FakeProducer(Settings())
    event = json.loads(example_lines("report")[0])
    del event["report_id"]
    with pytest.raises(contracts.FieldError) as info:
        producer.send("report", event)
    assert (info.value.reason, info.value.field) == ("missing_field", "report_id")
    assert producer.sent == [] and producer.stats.produced == 0 and producer.stats.refused == 1
    with pytest.raises(contracts.UnknownTopicError):
        producer.send("nope", event)


def test_parse_event_invalid_json_reason() -> None:
    with pytest.raises(contracts.FieldError) as info:
        parse_event("{")
    assert info.value.reason == "invalid_json"


# --- size limit (issue 13, item 7) ------------------------------------------------------------

BIG = "路" * 400_000  # 1,200,000 UTF-8 bytes: over the contract's 900,000-byte limit


def test_oversized_line_is_refused_with_its_number_rest_sent_exit_1(
    tmp_path: Path, fake: list[FakeProducer], capsys: pytest.CaptureFixture[str]
) -> None:
    good = example_lines("report")
    big = json.loads(good[1])
    big["event_id"] = "big-1"
    big["action"], big["note"] = "RESOLVE", BIG
    lines = [good[0], json.dumps(big, ensure_ascii=False), good[2]]
    path = tmp_path / "big.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert main(["produce", "report", "--file", str(path), "--json"]) == 1
    out = capsys.readouterr()
    errors = out.err.strip().splitlines()
    assert len(errors) == 1, out.err
    assert errors[0].startswith("line 2: note: event_too_large: encoded event too large (")
    assert "bytes > 900,000 bytes); note alone is 1,200,000 bytes" in errors[0]
    summary = json.loads(out.out)
    assert (summary["lines"], summary["sent"], summary["refused"]) == (3, 2, 1)
    assert summary["reasons"] == {"event_too_large": 1}
    assert summary["delivered"] == 2 and "stopped_at_line" not in summary
    sent_events = [s[2]["event_id"] for s in fake[0].sent]
    assert sent_events == [json.loads(good[0])["event_id"], json.loads(good[2])["event_id"]]
    assert fake[0].stats.refused == 1


def test_size_limit_counts_key_and_value_bytes() -> None:
    limit = contracts.MAX_EVENT_BYTES
    assert limit == 900_000
    assert contracts.check_event_size(b"x" * (limit - 3), "abc") == limit
    assert contracts.check_event_size(None, None) == 0
    with pytest.raises(contracts.FieldError) as info:
        contracts.check_event_size(b"x" * (limit - 2), "路")  # 3 UTF-8 bytes: one over
    error = info.value
    assert (error.reason, error.field) == ("event_too_large", "")
    assert error.message == "(record): encoded event too large (900,001 bytes > 900,000 bytes)"


def test_largest_field_names_nested_texts() -> None:
    record = {"a": "xy", "reporter": {"name": "李" * 5}, "images": ["", "https://x/" + "y" * 9]}
    assert contracts.largest_field(record) == ("images[1]", 19)
    assert contracts.largest_field({"reporter": {"name": "李" * 9}}) == ("reporter.name", 27)
    assert contracts.largest_field({"n": 1}) == ("", 0)


def test_an_event_just_under_the_limit_is_sent() -> None:
    producer = FakeProducer(Settings())
    event = json.loads(example_lines("report")[0])
    base = len(producer.serialize("report", contracts.from_json("report", event)))
    key = len(event["report_id"].encode())
    room = contracts.MAX_EVENT_BYTES - base - key
    event["description"] += "x" * (room - 1)  # its length varint grows from 2 to 3 bytes
    producer.send("report", event)
    assert producer.stats.produced == 1
    value = producer.serialize("report", contracts.from_json("report", event))
    assert len(value) + key == contracts.MAX_EVENT_BYTES  # exactly at the limit
    event["description"] += "x"
    with pytest.raises(contracts.FieldError):
        producer.send("report", event)
    assert producer.stats.produced == 1 and producer.stats.refused == 1


def test_a_producer_error_stops_at_its_line_and_still_prints_the_summary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    class Broken(FakeProducer):
        def produce_raw(self, topic: str, value: bytes | None, **kwargs: Any) -> None:
            if self.stats.produced == 1:
                raise ProducerError("cannot produce to 'alert': KafkaError{code=_STATE}")
            super().produce_raw(topic, value, **kwargs)

    monkeypatch.setattr(produce_cli, "open_producer", lambda settings: Broken(settings))
    path = tmp_path / "a.jsonl"
    path.write_text("\n".join(example_lines("alert")), encoding="utf-8")
    assert main(["produce", "alert", "--file", str(path), "--json"]) == 1
    out = capsys.readouterr()
    assert out.err.strip().splitlines() == [
        "line 2: not sent, stopping: cannot produce to 'alert': KafkaError{code=_STATE}"
    ]
    summary = json.loads(out.out)
    assert (summary["sent"], summary["stopped_at_line"], summary["delivered"]) == (1, 2, 1)


def _dead_letter_cases() -> list[str]:
    """The lines of issue 17: contract-valid, each one dead-lettered by the worker."""
    good = [json.loads(line) for line in example_lines("report")]
    empty = {**good[0], "description": "  "}
    no_note = {k: v for k, v in good[3].items() if k != "note"}  # RESOLVE
    lat_only = {k: v for k, v in good[0].items() if k != "lon"}
    nowhere = {**good[7], "region_code": "439999999999"}
    several = {**good[0], "description": "", "region_code": "439999999999", "lon": None}
    return [json.dumps(e, ensure_ascii=False) for e in (empty, no_note, lat_only, nowhere, several)]


def test_lines_the_worker_would_dead_letter_are_refused_with_every_problem(
    tmp_path: Path, fake: list[FakeProducer], capsys: pytest.CaptureFixture[str]
) -> None:
    good = example_lines("report")
    path = tmp_path / "rules.jsonl"
    path.write_text("\n".join([good[0], *_dead_letter_cases(), good[1]]) + "\n", encoding="utf-8")
    assert main(["produce", "report", "--file", str(path), "--json"]) == 1
    out = capsys.readouterr()
    assert out.err.strip().splitlines() == [
        "line 2: (record): empty_description: a SUBMIT needs a non-empty description",
        "line 3: (record): incomplete_for_action: RESOLVE needs a note",
        "line 4: (record): incomplete_for_action: lat and lon must be sent together",
        "line 5: (record): unknown_region: region_code '439999999999' is not a known division",
        "line 6: (record): unknown_region: region_code '439999999999' is not a known division",
        "line 6: (record): empty_description: a SUBMIT needs a non-empty description",
        "line 6: (record): incomplete_for_action: lat and lon must be sent together",
    ]
    summary = json.loads(out.out)
    assert (summary["lines"], summary["sent"], summary["refused"]) == (7, 2, 5)
    assert summary["reasons"] == {
        "empty_description": 2,
        "incomplete_for_action": 3,
        "unknown_region": 2,
    }
    assert summary["validated"] is True
    sent = [s[2]["event_id"] for s in fake[0].sent]
    assert sent == [json.loads(good[0])["event_id"], json.loads(good[1])["event_id"]]


def test_no_validate_sends_what_only_the_worker_would_refuse(
    tmp_path: Path, fake: list[FakeProducer], capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "rules.jsonl"
    path.write_text("\n".join(_dead_letter_cases()) + "\n", encoding="utf-8")
    assert main(["produce", "report", "--file", str(path), "--json", "--no-validate"]) == 0
    out = capsys.readouterr()
    summary = json.loads(out.out)
    assert (summary["sent"], summary["refused"], summary["validated"]) == (5, 0, False)
    assert out.err == ""


def test_producer_send_validate_raises_rule_error_and_sends_nothing() -> None:
    producer = FakeProducer(Settings())
    event = json.loads(_dead_letter_cases()[-1])
    producer.send("report", event)  # the API's default: the contract only
    with pytest.raises(RuleError) as info:
        producer.send("report", event, validate=True)
    assert info.value.reason == "unknown_region"
    assert [p.reason for p in info.value.problems] == [
        "unknown_region",
        "empty_description",
        "incomplete_for_action",
    ]
    assert producer.stats.produced == 1 and producer.stats.refused == 1
    with pytest.raises(contracts.UnknownTopicError):
        rule_problems("dead-letter", {})


def test_every_example_meets_the_worker_rules() -> None:
    for topic in contracts.AVRO_TOPICS:
        for line in example_lines(topic):
            record = contracts.from_json(topic, json.loads(line))
            assert rule_problems(topic, record) == [], (topic, line)


def test_a_long_file_shows_a_progress_bar_on_a_terminal(
    tmp_path: Path,
    fake: list[FakeProducer],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    drawn = io.StringIO()
    monkeypatch.setattr(produce_cli, "PROGRESS_MIN_LINES", 10)
    monkeypatch.setattr(
        produce_cli, "progress_console", lambda: Console(file=drawn, force_terminal=True)
    )
    lines = example_lines("report")  # 13 lines: long enough here
    path = tmp_path / "long.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert main(["produce", "report", "--file", str(path), "--json"]) == 0
    assert "13/13" in drawn.getvalue()
    assert json.loads(capsys.readouterr().out)["sent"] == 13
    short = tmp_path / "short.jsonl"
    short.write_text("\n".join(lines[:5]) + "\n", encoding="utf-8")
    drawn.truncate(0)
    assert main(["produce", "report", "--file", str(short), "--json"]) == 0
    assert drawn.getvalue() == ""  # a short file: no bar
