"""The form stream's pure steps: definitions, validation, masking, latest per respondent, rows,
derived alerts, roster."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pipelines import alerts, contracts, divisions, forms, simulator
from pipelines.errors import ValidationError

pytestmark = pytest.mark.unit

EXAMPLES = Path(contracts.SCHEMA_DIR) / "examples" / "form-submission.jsonl"
NOW = datetime(2024, 6, 15, tzinfo=UTC)
SALT = "test-salt"
RAW = ("13907301234", "430602198503124024", "李秀兰", "13509171234", "王桂芳")


def _examples() -> list[dict[str, Any]]:
    lines = EXAMPLES.read_text(encoding="utf-8").splitlines()
    return [contracts.from_json(contracts.FORM_SUBMISSION, json.loads(line)) for line in lines]


def _health(**answers: Any) -> dict[str, Any]:
    record = dict(_examples()[1])  # epi-fever-check v3, normal answers
    record["answers"] = {**record["answers"], **answers}
    return record


def _entry(record: dict[str, Any], offset: int = 0) -> dict[str, Any]:
    checked = forms.validate(record, NOW)
    return forms.submission(record, checked, salt=SALT, partition=0, offset=offset, received_at=NOW)


def test_definitions_are_data_and_cover_the_simulator_form() -> None:
    known = forms.definitions()
    assert (simulator.FORM_ID, simulator.FORM_VERSION) in known
    assert ("village-household-survey", 1) in known
    health = known[(simulator.FORM_ID, simulator.FORM_VERSION)]
    assert list(health.fields)[:4] == ["temperature", "symptoms", "travelled_14d", "household_size"]
    assert health.fields["symptoms"].options == simulator.SYMPTOMS
    assert health.fields["temperature"].abnormal == {"gte": simulator.FEVER_C}
    for definition in known.values():
        assert definition.alert_level in alerts.SEVERITY


def test_every_example_is_valid() -> None:
    flags = [forms.validate(r, NOW).flags for r in _examples()]
    assert flags == [["temperature", "symptoms"], [], ["needs_help"], ["lives_alone"]]


def test_simulated_submissions_validate_and_agree_on_abnormal() -> None:
    events = simulator.generate(simulator.SimConfig(seed=7, reports=20, forms=300), now=NOW)
    checked = 0
    for event in events:
        if event.topic == contracts.FORM_SUBMISSION and event.expected == "ok":
            assert event.value is not None
            record = contracts.from_json(contracts.FORM_SUBMISSION, event.value)
            assert forms.validate(record, NOW).abnormal == event.meta["abnormal"]
            checked += 1
    assert checked > 200


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"form_id": "no-such-form"}, forms.UNKNOWN_FORM),
        ({"form_version": 9}, forms.UNKNOWN_FORM_VERSION),
        ({"region_code": "439999999999"}, forms.UNKNOWN_REGION),
        ({"region_code": "430602001000"}, forms.UNKNOWN_REGION),  # a township, not a community
        ({"submitted_at": NOW + timedelta(hours=1)}, forms.BAD_TIMESTAMP),
        ({"submitted_at": NOW - timedelta(days=4 * 365)}, forms.BAD_TIMESTAMP),
        (
            {
                "respondent": {
                    "id": "x",
                    "name": "李四",
                    "phone": "",
                    "id_number": "430602198503124025",
                }
            },
            forms.BAD_ID_NUMBER,
        ),
    ],
)
def test_invalid_submissions_have_reasons(changes: dict[str, Any], reason: str) -> None:
    record = {**_health(), **changes}
    with pytest.raises(ValidationError) as caught:
        forms.validate(record, NOW)
    assert caught.value.reason == reason


@pytest.mark.parametrize(
    ("answers", "reason"),
    [
        ({"temperature": "hot"}, forms.BAD_ANSWER),
        ({"temperature": "47.0"}, forms.BAD_ANSWER),
        ({"temperature": "nan"}, forms.BAD_ANSWER),
        ({"symptoms": '["fever","headache"]'}, forms.BAD_ANSWER),
        ({"symptoms": '["fever","fever"]'}, forms.BAD_ANSWER),
        ({"symptoms": "fever"}, forms.BAD_ANSWER),
        ({"travelled_14d": "yes"}, forms.BAD_ANSWER),
        ({"household_size": "2.5"}, forms.BAD_ANSWER),
        ({"household_size": "0"}, forms.BAD_ANSWER),
        ({"vaccination": "twice"}, forms.BAD_ANSWER),
        ({"remark": "长" * 501}, forms.BAD_ANSWER),
        ({"favourite_colour": "red"}, forms.UNKNOWN_QUESTION),
        ({"temperature": " "}, forms.MISSING_ANSWER),
    ],
)
def test_invalid_answers_have_reasons(answers: dict[str, str], reason: str) -> None:
    with pytest.raises(ValidationError) as caught:
        forms.validate(_health(**answers), NOW)
    assert caught.value.reason == reason
    assert forms.problems(_health(**answers), NOW)[0].reason == reason  # the same first


def test_problems_lists_every_broken_rule_and_answer_validate_raises_the_first() -> None:
    record = {**_health(temperature="hot", travelled_14d="yes"), "region_code": "430602"}
    found = forms.problems(record, NOW)
    assert [p.reason for p in found] == [
        forms.UNKNOWN_REGION,
        forms.BAD_ANSWER,
        forms.BAD_ANSWER,
    ]
    assert "temperature" in found[1].message and "travelled_14d" in found[2].message
    with pytest.raises(ValidationError) as caught:
        forms.validate(record, NOW)
    assert caught.value.reason == forms.UNKNOWN_REGION
    unknown = {**record, "form_id": "no-such-form"}  # no definition: answers not checked
    assert [p.reason for p in forms.problems(unknown, NOW)] == [
        forms.UNKNOWN_FORM,
        forms.UNKNOWN_REGION,
    ]
    assert all(forms.problems(r, NOW) == [] for r in _examples())


def test_a_missing_required_answer_is_refused_and_an_optional_one_is_not() -> None:
    record = _health()
    del record["answers"]["household_size"]
    with pytest.raises(ValidationError) as caught:
        forms.validate(record, NOW)
    assert (caught.value.reason, "household_size" in caught.value.message) == (
        forms.MISSING_ANSWER,
        True,
    )
    assert "remark" not in _health()["answers"]
    forms.validate(_health(), NOW)


def test_survey_dates_and_phones() -> None:
    survey = dict(_examples()[2])
    with pytest.raises(ValidationError):
        forms.validate(
            {**survey, "answers": {**survey["answers"], "visit_date": "2024-02-30"}}, NOW
        )
    checked = forms.validate(
        {**survey, "answers": {**survey["answers"], "contact_phone": "13509171234"}}, NOW
    )
    assert checked.answers["contact_phone"] == "135****1234"


@pytest.mark.parametrize(
    ("answers", "flags"),
    [
        ({"temperature": "37.3"}, ["temperature"]),
        ({"temperature": "37.2"}, []),
        ({"symptoms": '["cough"]'}, ["symptoms"]),
        ({"travelled_14d": "true"}, []),
        ({"temperature": "38.5", "symptoms": '["fever"]'}, ["temperature", "symptoms"]),
    ],
)
def test_abnormal_flags(answers: dict[str, str], flags: list[str]) -> None:
    assert forms.validate(_health(**answers), NOW).flags == flags


def test_entries_rows_and_dead_letters_hold_no_raw_personal_data() -> None:
    record = _health(remark="联系我13907301234，身份证430602198503124024")
    entry = _entry(record)
    state, _ = forms.merge(None, entry)
    texts = json.dumps([entry, forms.form_row(state), forms.masked_record(record, SALT)],
                       ensure_ascii=False, default=str)  # fmt: skip
    for raw in RAW[:3]:
        assert raw not in texts
    assert entry["respondent"]["name"] == "李**"
    assert entry["respondent_key"] == forms.respondent_key(record, SALT) != ""
    assert entry["answers"]["remark"].startswith("联系我139****1234")


def test_anonymous_respondents_are_keyed_by_submission() -> None:
    anonymous = _examples()[3]
    assert forms.respondent_key(anonymous, SALT) == f"anon-{anonymous['submission_id']}"


def _sub(sid: str, minutes: int, **answers: Any) -> dict[str, Any]:
    record = _health(**answers)
    record["submission_id"] = sid
    record["submitted_at"] = NOW - timedelta(days=1) + timedelta(minutes=minutes)
    return _entry(record)


def test_a_resubmission_replaces_and_counts() -> None:
    state, outcome = forms.merge(None, _sub("a", 0, temperature="38.0"))
    assert (outcome, state["submissions"], state["abnormal_submissions"]) == ("first", 1, 1)
    state, outcome = forms.merge(state, _sub("b", 30))
    assert outcome == "replaces"
    assert (state["latest"]["submission_id"], state["latest"]["abnormal"]) == ("b", False)
    assert (state["submissions"], state["abnormal_submissions"], state["revision"]) == (2, 1, 2)
    row = dict(zip(forms.FORM_COLUMNS, forms.form_row(state), strict=True))
    assert (row["submission_id"], row["submissions"], row["abnormal"], row["version"]) == (
        "b",
        2,
        False,
        2,
    )


def test_a_late_older_submission_is_counted_but_does_not_replace() -> None:
    state, _ = forms.merge(None, _sub("new", 60))
    state, outcome = forms.merge(state, _sub("old", 0, symptoms='["cough"]'))
    assert outcome == "late"
    assert state["latest"]["submission_id"] == "new"
    assert (state["submissions"], state["abnormal_submissions"]) == (2, 1)


def test_a_retried_or_replayed_submission_changes_nothing() -> None:
    first = _sub("a", 0)
    state, _ = forms.merge(None, first)
    state, _ = forms.merge(state, _sub("b", 10))
    again, outcome = forms.merge(state, first)
    assert outcome == "duplicate"
    assert again == state
    assert forms.form_row(again) == forms.form_row(state)  # same version: the insert collapses


def _status(rows: list[list[Any]], columns: tuple[str, ...]) -> list[str]:
    return [r[columns.index("status")] for r in rows]


def test_derived_alert_is_raised_then_cancelled() -> None:
    state, _ = forms.merge(None, _sub("a", 0, temperature="38.2"))
    record = forms.derived_alert(state)
    assert record is not None
    assert (record["msg_type"], record["source"], record["hazard"]) == ("Alert", "form", "other")
    assert record["region_codes"] == ["430602001001"] and "体温" in record["headline"]
    alerts.validate(record, NOW)  # a derived alert obeys the alert contract's rules
    state, alert_rows, targets = forms.follow_up(state, received_at=NOW, partition=0, offset=1)
    assert _status(alert_rows, alerts.ALERT_COLUMNS) == [alerts.ACTIVE]
    assert _status(targets, alerts.TARGET_COLUMNS) == [alerts.ACTIVE]
    assert alert_rows[0][alerts.ALERT_COLUMNS.index("source")] == "form"

    state, _ = forms.merge(state, _sub("b", 5, temperature="38.6"))
    assert forms.derived_alert(state) is None  # still abnormal: nothing new
    again, same_rows, _ = forms.follow_up(state, received_at=NOW, partition=0, offset=2)
    assert same_rows == alert_rows and again["alert"] == state["alert"]

    state, _ = forms.merge(state, _sub("c", 20))
    cancel = forms.derived_alert(state)
    assert cancel is not None
    assert (cancel["msg_type"], cancel["references"]) == ("Cancel", [record["alert_id"]])
    alerts.validate(cancel, NOW)
    state, alert_rows, targets = forms.follow_up(state, received_at=NOW, partition=0, offset=3)
    assert _status(alert_rows, alerts.ALERT_COLUMNS) == [alerts.CANCELLED]
    assert _status(targets, alerts.TARGET_COLUMNS) == [alerts.CANCELLED]
    assert alert_rows[0][0] == record["alert_id"]  # the same warning, now cancelled
    assert "李" not in json.dumps(state["alert"], ensure_ascii=False)

    state, _ = forms.merge(state, _sub("d", 40, symptoms='["cough"]'))  # abnormal again
    state, alert_rows, _ = forms.follow_up(state, received_at=NOW, partition=0, offset=4)
    assert alert_rows[0][0] != record["alert_id"]  # a new warning
    assert _status(alert_rows, alerts.ALERT_COLUMNS) == [alerts.ACTIVE]


def test_roster_rows_cover_every_division_with_its_population() -> None:
    rows = {r[0]: dict(zip(forms.ROSTER_COLUMNS, r, strict=True)) for r in forms.roster_rows()}
    assert len(rows) == len(list(divisions.all_divisions()))
    village = rows["430602001001"]
    assert village["township_code"] == "430602001000"
    assert (village["city"], village["county"], village["township"]) == (
        "岳阳市",
        "岳阳楼区",
        "岳阳楼街道",
    )
    assert village["population"] == divisions.get("430602001001").population
    township = rows["430602001000"]
    assert township["population"] == sum(
        v.population for v in divisions.villages_under("430602001")
    )
    assert township["township_code"] == "430602001000" and township["county_code"] == "430602000000"


@pytest.mark.parametrize(
    ("answers", "stored"),
    [
        ({"household_size": "５"}, {"household_size": "5"}),
        ({"household_size": " １２ "}, {"household_size": "12"}),
    ],
)
def test_number_answers_typed_full_width_are_stored_normalised(
    answers: dict[str, str], stored: dict[str, str]
) -> None:
    record = _health(**answers)
    checked = forms.validate(record, NOW)
    for key, value in stored.items():
        assert checked.answers[key] == value


def test_a_full_width_temperature_is_read_as_its_number() -> None:
    checked = forms.validate(_health(temperature="３７．５"), NOW)
    assert checked.answers["temperature"] == "37.5" and checked.flags == ["temperature"]


def test_text_answers_lose_names_and_numbers_in_every_writing() -> None:
    remark = (
        "我叫王桂芳，电话１３５　０９１７　１２３４，身份证４３０６０２１９８５０３１２４０２４"
    )
    record = _health(remark=remark)
    entry = _entry(record)
    state, _ = forms.merge(None, entry)
    texts = json.dumps([entry, forms.form_row(state), forms.masked_record(record, SALT)],
                       ensure_ascii=False, default=str)  # fmt: skip
    for raw in ("桂芳", "１３５", "０９１７", "４３０６０２１９８５"):
        assert raw not in texts
    assert entry["answers"]["remark"] == "我叫王**，电话135****1234，身份证430602********4024"


def test_a_state_rebuilt_from_its_rows_goes_on_as_the_lost_one_would() -> None:
    lost, _ = forms.merge(None, _sub("a", 0, temperature="38.2"))
    lost, _, _ = forms.follow_up(lost, received_at=NOW, partition=0, offset=1)  # alert raised
    row = dict(zip(forms.FORM_COLUMNS, forms.form_row(lost), strict=True))
    alert_row = dict(zip(alerts.ALERT_COLUMNS, alerts.alert_row(lost["alert"]), strict=True))
    rebuilt = forms.state_from_row(row, alerts.state_from_row(alert_row))
    assert forms.form_row(rebuilt) == forms.form_row(lost)
    # the next submission counts on, replaces the row (higher version) and cancels the alert
    for state in (lost, rebuilt):
        nxt, outcome = forms.merge(state, _sub("b", 30))
        assert (outcome, nxt["submissions"], nxt["revision"]) == ("replaces", 2, 2)
        nxt, alert_rows, _ = forms.follow_up(nxt, received_at=NOW, partition=0, offset=2)
        assert _status(alert_rows, alerts.ALERT_COLUMNS) == [alerts.CANCELLED]
    # a replay of the latest submission is still a duplicate
    assert forms.merge(rebuilt, _sub("a", 0, temperature="38.2"))[1] == "duplicate"
