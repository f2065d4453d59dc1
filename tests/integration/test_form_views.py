"""Form statistics and warning views in ClickHouse: rows made by the pipeline's own row
functions, inserted the way the agents insert them (one row per event, retries and replays
included), give exact completion rates, and a cancelled warning no longer counts as active."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client

from pipelines import alerts, contracts, divisions, forms, roster
from pipelines.clickhouse import get_client, migrate, temporary_database
from pipelines.settings import Settings

pytestmark = pytest.mark.integration

SALT = "test-salt"
START = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=6)
FORM_EXAMPLE = Path(contracts.SCHEMA_DIR) / "examples" / "form-submission.jsonl"
ALERT_EXAMPLES = Path(contracts.SCHEMA_DIR) / "examples" / "alert.jsonl"
COMMUNITY_A, COMMUNITY_B = "430602001001", "430602001002"
TOWNSHIP = "430602001000"


@pytest.fixture
def db(stack: Settings, unique: str) -> Iterator[tuple[Client, str]]:
    client = get_client(stack)
    with temporary_database(client, f"test_forms_{unique}") as name:
        migrate(client, name)
        yield client, name


def _insert(client: Client, db: str, table: str, columns: tuple[str, ...], rows: list[Any]) -> None:
    client.insert(f"{db}.{table}", rows, column_names=list(columns))


class Campaign:
    """Submissions of the health form, folded and inserted exactly as the form agent does."""

    def __init__(self, client: Client, db: str) -> None:
        self.client, self.db = client, db
        self.states: dict[str, dict[str, Any]] = {}
        self.template = contracts.from_json(
            contracts.FORM_SUBMISSION, json.loads(FORM_EXAMPLE.read_text().splitlines()[1])
        )
        self.offset = 0

    def submit(self, community: str, person: str, sid: str, minutes: int, **answers: str) -> None:
        record = {
            **self.template,
            "submission_id": sid,
            "region_code": community,
            "respondent": {"id": person, "name": "张三", "phone": "13812345678"},
            "answers": {**self.template["answers"], **answers},
            "submitted_at": START + timedelta(minutes=minutes),
        }
        checked = forms.validate(record, datetime.now(UTC))
        self.offset += 1
        entry = forms.submission(
            record, checked, salt=SALT, partition=0, offset=self.offset,
            received_at=datetime.now(UTC),
        )  # fmt: skip
        key = contracts.key_for(contracts.FORM_SUBMISSION, record)
        state, _ = forms.merge(self.states.get(key), entry)
        self.states[key] = state
        # one insert per event, so the parts are not merged: the views must be exact anyway
        _insert(
            self.client, self.db, "form_submissions", forms.FORM_COLUMNS, [forms.form_row(state)]
        )


def _view(
    client: Client, db: str, view: str, where: str, order: str = "code"
) -> list[dict[str, Any]]:
    result = client.query(f"SELECT * FROM {db}.{view} WHERE {where} ORDER BY {order}")
    return [dict(zip(result.column_names, row, strict=True)) for row in result.result_rows]


def test_completion_rates_are_exact_under_resubmissions(db: tuple[Client, str]) -> None:
    client, name = db
    assert roster.load_roster(client, name) == len(list(divisions.all_divisions()))
    assert roster.load_roster(client, name) == 0  # already loaded: a second worker adds nothing
    campaign = Campaign(client, name)
    # community A: three people; p1 resubmits twice (fever, then normal), p2's older answer
    # arrives after the newer one, p3 once; a producer retry of p3's submission
    campaign.submit(COMMUNITY_A, "p1", "s1", 0, temperature="38.4")
    campaign.submit(COMMUNITY_A, "p1", "s2", 60, symptoms='["cough"]')
    campaign.submit(COMMUNITY_A, "p1", "s3", 120)
    campaign.submit(COMMUNITY_A, "p2", "s4", 90, symptoms='["fatigue"]')
    campaign.submit(COMMUNITY_A, "p2", "s5", 30)
    campaign.submit(COMMUNITY_A, "p3", "s6", 10)
    campaign.submit(COMMUNITY_A, "p3", "s6", 10)
    # community B: two people, one abnormal, one resubmitting
    campaign.submit(COMMUNITY_B, "p4", "s7", 5, temperature="37.5")
    campaign.submit(COMMUNITY_B, "p5", "s8", 5)
    campaign.submit(COMMUNITY_B, "p5", "s9", 50)

    pop_a = divisions.get(COMMUNITY_A).population
    pop_b = divisions.get(COMMUNITY_B).population
    rows = _view(client, name, "form_completion_by_community", "form_id = 'epi-fever-check'")
    got = [
        (r["code"], r["submissions"], r["respondents"], r["registered"],
         r["completion_rate"], r["abnormal"], r["abnormal_submissions"])
        for r in rows
    ]  # fmt: skip
    assert got == [
        (COMMUNITY_A, 6, 3, pop_a, 3 / pop_a, 1, 3),
        (COMMUNITY_B, 3, 2, pop_b, 2 / pop_b, 1, 1),
    ]
    assert rows[0]["name"] == divisions.get(COMMUNITY_A).name
    assert rows[0]["township"] == "岳阳楼街道"

    township = _view(client, name, "form_completion_by_township", "form_id = 'epi-fever-check'")
    pop_t = divisions.get(TOWNSHIP).population
    assert [(r["code"], r["submissions"], r["respondents"], r["registered"],
             r["completion_rate"], r["abnormal"]) for r in township] == [
        (TOWNSHIP, 9, 5, pop_t, 5 / pop_t, 2)
    ]  # fmt: skip
    for view, code in (("form_completion_by_county", "430602000000"),
                       ("form_completion_by_city", "430600000000")):  # fmt: skip
        (row,) = _view(client, name, view, "form_id = 'epi-fever-check'")
        population = divisions.get(code).population
        assert (row["code"], row["respondents"], row["registered"], row["completion_rate"]) == (
            code,
            5,
            population,
            5 / population,
        )
    (totals,) = _view(client, name, "form_totals", "form_id = 'epi-fever-check'", "form_id")
    assert (totals["submissions"], totals["respondents"], totals["communities"]) == (9, 5, 2)


def _alerts() -> list[dict[str, Any]]:
    lines = ALERT_EXAMPLES.read_text(encoding="utf-8").splitlines()
    return [contracts.from_json(contracts.ALERT, json.loads(line)) for line in lines]


def _apply(
    client: Client, db: str, state: dict[str, Any] | None, record: dict[str, Any]
) -> dict[str, Any]:
    new, change = alerts.apply(state, record, received_at=datetime.now(UTC))
    _insert(client, db, "alerts", alerts.ALERT_COLUMNS, [alerts.alert_row(new)])
    _insert(client, db, "alert_targets", alerts.TARGET_COLUMNS,
            alerts.target_rows(new, change.lifted))  # fmt: skip
    return new


def test_a_cancelled_warning_no_longer_counts_as_active(db: tuple[Client, str]) -> None:
    client, name = db
    alert, update, cancel, forest, _sla, _hotspot = _alerts()
    state = _apply(client, name, None, alert)
    state = _apply(client, name, state, update)
    _apply(client, name, None, forest)  # expired on 2024-08-04: never active now

    by_level = client.query(
        f"SELECT source, level, severity, warnings, villages, population "
        f"FROM {name}.alerts_active_by_level"
    ).result_rows
    villages, population = alerts.reach(["430602", "430603"])
    assert by_level == [("weather", "orange", "Severe", 1, villages, population)]
    reached = client.query(
        f"SELECT count(), sum(population), max(active_warnings), any(highest_level) "
        f"FROM {name}.alert_villages_reached"
    ).result_rows
    assert reached == [(villages, population, 1, "orange")]
    lifted = client.query(
        f"SELECT count() FROM {name}.alert_targets FINAL WHERE status = 'lifted'"
    ).result_rows
    assert lifted == [(len(divisions.villages_under("430611")),)]

    _apply(client, name, state, cancel)
    assert client.query(f"SELECT count() FROM {name}.alerts_active").result_rows == [(0,)]
    assert client.query(f"SELECT count() FROM {name}.alerts_active_by_level").result_rows == [(0,)]
    assert client.query(f"SELECT count() FROM {name}.alert_villages_reached").result_rows == [(0,)]
    (row,) = client.query(
        f"SELECT status, msg_type, length(messages), villages FROM {name}.alerts FINAL "
        f"WHERE root_id = '{alert['alert_id']}'"
    ).result_rows
    assert row == ("cancelled", "Cancel", 3, villages)
