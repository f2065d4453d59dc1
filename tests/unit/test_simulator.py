"""The province simulator: deterministic, its manifest matches its events, bad events fail
the way the manifest says, texts classify to the category they were written for."""

from __future__ import annotations

import io
import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastavro import parse_schema, schemaless_writer

from pipelines import codec, contracts, divisions, reports, simulator, taxonomy
from pipelines.classify import classify
from pipelines.cli import main
from pipelines.errors import DecodeError, ValidationError
from pipelines.pii import id_number_problem

pytestmark = pytest.mark.unit

START = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
CONFIG = simulator.SimConfig(
    seed=7, reports=1500, forms=1200, warnings=12, start=START, bad_fraction=0.08
)
RECEIVED = START + timedelta(minutes=CONFIG.minutes, seconds=30)


@pytest.fixture(scope="module")
def events() -> list[simulator.SimEvent]:
    return simulator.generate(CONFIG)


@pytest.fixture(scope="module")
def manifest(events: list[simulator.SimEvent]) -> dict:
    return simulator.manifest(events, CONFIG)


def test_same_seed_same_events_other_seed_other_events(events: list[simulator.SimEvent]) -> None:
    again = simulator.generate(CONFIG)
    assert [e.json_line() for e in again] == [e.json_line() for e in events]
    assert [e.key for e in again] == [e.key for e in events]
    other = simulator.generate(simulator.SimConfig(**{**CONFIG.__dict__, "seed": 8}))
    assert [e.json_line() for e in other] != [e.json_line() for e in events]


def test_count_caps_the_events_exactly() -> None:
    config = simulator.SimConfig.for_count(3000, seed=1, start=START, minutes=10)
    events = simulator.generate(config)
    assert len(events) == 3000
    assert simulator.manifest(events, config)["events"] == 3000
    assert {e.topic for e in events} == set(contracts.AVRO_TOPICS)


def test_manifest_topic_and_dead_letter_counts(
    events: list[simulator.SimEvent], manifest: dict
) -> None:
    assert manifest["events"] == len(events) == sum(manifest["topics"].values())
    assert manifest["topics"] == dict(Counter(e.topic for e in events))
    expected = Counter(e.expected for e in events if e.expected != "ok")
    flat = Counter({r: n for per in manifest["dead_letters"].values() for r, n in per.items()})
    assert flat == expected
    assert manifest["dead_letters_total"] == sum(expected.values())
    # every bad kind occurs, each with its own reason
    assert set(manifest["reports"]["bad"]) == set(simulator.BAD_KINDS)
    assert set(flat) == set(simulator.BAD_KINDS.values())


def test_manifest_work_orders_categories_departments(
    events: list[simulator.SimEvent], manifest: dict
) -> None:
    submits = [
        e
        for e in events
        if e.topic == "report" and e.expected == "ok" and e.value and e.value["action"] == "SUBMIT"
    ]
    rep = manifest["reports"]
    assert rep["work_orders"] == len({e.key for e in submits}) == len(submits)
    assert sum(rep["by_category"].values()) == rep["work_orders"]
    assert sum(rep["by_department"].values()) == rep["work_orders"]
    assert set(rep["by_category"]) == {c.code for c in taxonomy.all()}  # every category
    by_category = Counter(
        classify(e.value["description"], e.value.get("category_hint")).code for e in submits
    )
    assert dict(by_category) == rep["by_category"]
    departments = Counter(taxonomy.get(c).department for c in by_category.elements())
    assert dict(departments) == rep["by_department"]
    steps = Counter(
        e.value["action"]
        for e in events
        if e.topic == "report" and e.expected == "ok" and e.value and e.value["action"] != "SUBMIT"
    )
    assert steps == Counter({a: n for a, n in rep["steps"].items() if n})
    assert rep["late_steps"] > 0


def test_duplicates_are_the_deliberate_ones(
    events: list[simulator.SimEvent], manifest: dict
) -> None:
    intended = {e.key: e.meta["duplicate_of"] for e in events if e.meta.get("duplicate_of")}
    assert len(intended) > 20
    assert manifest["reports"]["duplicate_of"] == intended
    assert manifest["reports"]["duplicates"] == len(intended)
    by_id = {e.key: e.value for e in events if e.meta.get("kind") == "submit"}
    for dup, first in intended.items():
        a, b = by_id[dup], by_id[first]
        assert a["region_code"] == b["region_code"] and a["address"] == b["address"]
        gap = contracts.parse_timestamp(a["occurred_at"]) - contracts.parse_timestamp(
            b["occurred_at"]
        )
        assert timedelta(0) < gap <= timedelta(hours=1)
        if a.get("lat") is not None and b.get("lat") is not None:
            assert reports.distance_m(a["lat"], a["lon"], b["lat"], b["lon"]) <= 150.5


def test_duplicates_do_not_depend_on_processing_order(events: list[simulator.SimEvent]) -> None:
    """The pipeline may see reports of different partitions in another order: same count."""
    reversed_events = list(reversed(events))
    result = simulator.manifest(reversed_events, CONFIG)["reports"]["duplicates"]
    assert result == sum(1 for e in events if e.meta.get("duplicate_of"))


def test_valid_events_pass_the_contract_and_validation(events: list[simulator.SimEvent]) -> None:
    for e in events:
        if e.expected != "ok":
            continue
        record = contracts.from_json(e.topic, e.value)
        assert contracts.key_for(e.topic, record) == e.key
        if e.topic == "report":
            reports.validate(record, RECEIVED)
            assert divisions.is_known(record["region_code"])
            reporter = record.get("reporter")
            if reporter and reporter.get("id_number"):
                assert id_number_problem(reporter["id_number"]) is None


def _decoder() -> codec.AvroDecoder:
    ids = {1: contracts.load_schema("report"), 2: contracts.load_schema("form-submission")}

    def fetch(schema_id: int) -> str:
        if schema_id not in ids:
            raise DecodeError(codec.UNKNOWN_SCHEMA, f"schema id {schema_id} is not registered")
        return ids[schema_id]

    return codec.AvroDecoder(contracts.load_schema("report"), fetch)


def test_bad_events_fail_with_the_stated_reason(events: list[simulator.SimEvent]) -> None:
    decoder = _decoder()
    form_schema = parse_schema(json.loads(contracts.load_schema("form-submission")))
    seen: Counter[str] = Counter()
    for e in events:
        if e.expected == "ok":
            continue
        seen[e.expected] += 1
        if e.raw is not None:
            with pytest.raises(DecodeError) as info:
                decoder.decode(e.raw)
        elif e.frame_as is not None:
            body = io.BytesIO()
            schemaless_writer(body, form_schema, contracts.from_json(e.frame_as, e.value))
            with pytest.raises(DecodeError) as info:
                decoder.decode(codec.frame(2, body.getvalue()))
        else:
            record = contracts.from_json(e.topic, e.value)  # the contract itself is fine
            with pytest.raises(ValidationError) as info:
                reports.validate(record, RECEIVED)
        assert info.value.reason == e.expected, (e.meta, info.value)
    assert sum(seen.values()) >= 50


def test_texts_classify_to_their_category_and_are_not_the_names(
    events: list[simulator.SimEvent],
) -> None:
    names = {c.minor for c in taxonomy.all()} | {c.major for c in taxonomy.all()}
    texts = set()
    for e in events:
        if e.meta.get("kind") != "submit":
            continue
        text = e.value["description"]
        assert classify(text).code == e.meta["category"], text
        assert text.strip() not in names
        texts.add(text)
    assert len(texts) > 0.8 * sum(1 for e in events if e.meta.get("kind") == "submit")


def test_every_core_phrase_classifies_alone() -> None:
    assert set(simulator.CORES) == {c.code for c in taxonomy.all()}
    for code, cores in simulator.CORES.items():
        for core in cores:
            assert classify(core).code == code, core


def test_forms_manifest(events: list[simulator.SimEvent], manifest: dict) -> None:
    form = manifest["forms"][simulator.FORM_ID]
    subs = [e for e in events if e.topic == "form-submission" and e.expected == "ok"]
    assert form["submissions"] == len(subs)
    people = {(e.value["region_code"], e.value["respondent"]["id"]) for e in subs}
    assert form["respondents"] == len(people) < len(subs)  # some resubmitted
    latest: dict[tuple[str, str], tuple[str, bool]] = {}
    for e in subs:
        who = (e.value["region_code"], e.value["respondent"]["id"])
        stamp = contracts.parse_timestamp(e.value["submitted_at"]).isoformat()
        abnormal = simulator.is_abnormal(e.value["answers"])
        if who not in latest or latest[who][0] <= stamp:
            latest[who] = (stamp, abnormal)
    assert form["abnormal_respondents"] == sum(a for _s, a in latest.values()) > 0
    for code, row in form["communities"].items():
        assert 2000 <= row["residents"] <= 3000
        assert row["residents"] == divisions.get(code).population
        assert row["respondents"] <= row["submissions"]
        here = [e for e in subs if e.value["region_code"] == code]
        assert row["submissions"] == len(here)
        assert row["abnormal_submissions"] == sum(
            simulator.is_abnormal(e.value["answers"]) for e in here
        )


def test_resubmission_keeps_the_person_and_the_key(events: list[simulator.SimEvent]) -> None:
    by_key: dict[str, list[dict]] = {}
    for e in events:
        if e.topic == "form-submission":
            by_key.setdefault(e.key, []).append(e.value)
    again = [v for v in by_key.values() if len(v) > 1]
    assert again
    for values in again:
        assert len({json.dumps(v["respondent"], sort_keys=True) for v in values}) == 1
        assert len({v["submission_id"] for v in values}) == len(values)


def test_alerts_valid_pairs_chains_and_active_levels(
    events: list[simulator.SimEvent], manifest: dict
) -> None:
    levels = {h: lv for h, _cn, lv in simulator.load_warning_types()}
    state: dict[str, tuple[str, str]] = {}
    for e in (e for e in events if e.topic == "alert"):
        v = e.value
        assert v["level"] in levels[v["hazard"]]
        assert all(divisions.is_known(code) for code in v["region_codes"])
        if v["msg_type"] == "Alert":
            assert v["references"] == [] and e.key == v["alert_id"]
        else:
            assert v["references"] and e.key == v["references"][0] in state
        state[e.key] = (v["msg_type"], v["level"])
    active = Counter(level for kind, level in state.values() if kind != "Cancel")
    alerts = manifest["alerts"]
    assert alerts["active_by_level"] == {lv: active.get(lv, 0) for lv in simulator.LEVEL_CN}
    assert alerts["warnings"] == len(state) == CONFIG.n_warnings
    assert alerts["messages"]["Cancel"] == alerts["cancelled"] > 0
    assert alerts["messages"]["Update"] > 0


def test_region_filter_and_unknown_region() -> None:
    config = simulator.SimConfig(seed=3, reports=200, forms=50, start=START, region="4306")
    for e in simulator.generate(config):
        if e.topic != "alert" and e.expected == "ok":
            assert e.value["region_code"].startswith("4306")
    with pytest.raises(simulator.ConfigError):
        simulator.generate(simulator.SimConfig(region="99"))


def test_cli_dry_run_writes_jsonl_and_manifest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [
        "simulate",
        "--seed",
        "5",
        "--count",
        "800",
        "--minutes",
        "30",
        "--dry-run",
        "--start",
        "2026-03-02T09:00:00+08:00",
        "--json",
    ]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    first = json.loads(capsys.readouterr().out)
    assert main([*args, "--out", str(tmp_path / "b")]) == 0
    capsys.readouterr()
    for name in ("report", "form-submission", "alert", "raw"):
        a = (tmp_path / "a" / f"{name}.jsonl").read_text(encoding="utf-8")
        assert a == (tmp_path / "b" / f"{name}.jsonl").read_text(encoding="utf-8")
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text(encoding="utf-8"))
    lines = {
        t: len((tmp_path / "a" / f"{t}.jsonl").read_text(encoding="utf-8").splitlines())
        for t in ("report", "form-submission", "alert", "raw")
    }
    assert sum(lines.values()) == manifest["events"] == 800 == first["events"]
    assert lines["alert"] == manifest["topics"]["alert"]
    assert lines["report"] + lines["raw"] == manifest["topics"]["report"]
    for line in (tmp_path / "a" / "report.jsonl").read_text(encoding="utf-8").splitlines():
        contracts.from_json("report", json.loads(line))


def test_cli_closed_loop_simulates_the_loop_and_its_manifest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--closed-loop: the config of SimConfig.closed_loop (history, a seeded hotspot, 回访)
    and its expected figures in the manifest; without it the loop stays off."""
    args = ["simulate", "--seed", "4", "--reports", "80", "--dry-run", "--json"]
    start = ["--start", "2026-03-02T09:00:00+08:00"]
    assert main([*args, *start, "--closed-loop", "--out", str(tmp_path / "loop")]) == 0
    capsys.readouterr()
    manifest = json.loads((tmp_path / "loop" / "manifest.json").read_text(encoding="utf-8"))
    for name, value in simulator.CLOSED_LOOP.items():
        assert manifest["config"][name] == value
    loop = manifest["closed_loop"]
    assert len(loop["seeded_hotspots"]) == 1
    assert [(h["grid_id"], h["category_code"]) for h in loop["hotspots"]] == [
        tuple(s) for s in loop["seeded_hotspots"]
    ]
    assert loop["settings"]["hotspot_min_reports"] == 5  # this process's settings
    assert main([*args, *start, "--out", str(tmp_path / "plain")]) == 0
    capsys.readouterr()
    plain = json.loads((tmp_path / "plain" / "manifest.json").read_text(encoding="utf-8"))
    assert plain["config"]["history_days"] == 0 and plain["closed_loop"]["hotspots"] == []


@pytest.mark.parametrize(
    "args",
    [
        ["--closed-loop", "yes"],
        ["--closed-loop=1"],
        ["--rate", "fast"],
        ["--dry-run"],
        ["--start", "2026-03-02T09:00:00"],
        ["--region", "99", "--dry-run", "--out", "/tmp/x"],
        ["--count", "5", "--reports", "3"],
        ["--bad-fraction", "2"],
    ],
)
def test_cli_bad_arguments_exit_2(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("govstream: error: ")


@pytest.mark.parametrize(("text", "minutes"), [("90s", 1.5), ("60m", 60.0), ("24h", 1440.0)])
def test_duration_option_sets_the_simulated_span(text: str, minutes: float) -> None:
    from pipelines.cli.simulate import _duration_minutes

    assert _duration_minutes(text) == minutes
