"""Restarts and poison input on the whole pipeline (issue 13): every stream's tables survive a
worker restart, a bad event never stops a stream, a keyless event never folds into another
report, and offsets that start again after a stack restart lose no rows."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from pipelines import clickhouse, contracts
from pipelines.producer import EventProducer
from pipelines.stack import control
from tests.conftest import stack_settings, wait_for
from tests.reliability.conftest import Run

pytestmark = [pytest.mark.reliability, pytest.mark.integration]

EXAMPLES = Path(__file__).resolve().parents[2] / "schemas" / "avro" / "examples"


def example(topic: str, line: int = 0) -> dict[str, Any]:
    text = (EXAMPLES / f"{topic}.jsonl").read_text(encoding="utf-8").splitlines()[line]
    return dict(json.loads(text))


def fresh_form(respondent: str | None = None, **answers: Any) -> dict[str, Any]:
    form = example(contracts.FORM_SUBMISSION)
    form["submission_id"] = str(uuid.uuid4())
    form["respondent"] = {**form["respondent"], "id": respondent or f"wx-{uuid.uuid4().hex[:8]}"}
    form["answers"] = {**form["answers"], **answers}
    return form


def fresh_alert(root: str | None = None) -> dict[str, Any]:
    alert = example(contracts.ALERT)
    alert["alert_id"] = root or f"43060041600000_{uuid.uuid4().hex[:12]}"
    return alert


def fresh_update(root: str) -> dict[str, Any]:
    update = example(contracts.ALERT, 1)
    update["alert_id"] = f"{root}_u"
    update["references"] = [root]
    return update


def fresh_submit(report_id: str | None = None) -> dict[str, Any]:
    submit = example(contracts.REPORT)
    submit["event_id"] = str(uuid.uuid4())
    submit["report_id"] = report_id or f"T-{uuid.uuid4().hex[:10]}"
    return submit


def count(run: Run, sql: str) -> int:
    client = clickhouse.get_client(run.settings)
    return int(client.query(sql.format(db=run.settings.clickhouse_database)).result_rows[0][0])


def send(run: Run, *events: tuple[str, dict[str, Any]]) -> None:
    with EventProducer(run.settings) as producer:
        for topic, event in events:
            producer.send(topic, event)


def test_a_restarted_worker_recovers_every_table_and_goes_on(run: Run) -> None:
    worker = run.worker()
    worker.start().wait_ready()
    respondent, root = f"wx-{uuid.uuid4().hex[:8]}", f"43060041600000_{uuid.uuid4().hex[:12]}"
    first = fresh_submit()
    send(
        run,
        (contracts.FORM_SUBMISSION, fresh_form(respondent, household_size=3)),
        (contracts.ALERT, fresh_alert(root)),
        (contracts.REPORT, first),
    )
    wait_for(lambda: count(run, "SELECT count() FROM {db}.form_submissions FINAL") == 1, 60,
             "the first form")  # fmt: skip
    weather = "SELECT count() FROM {db}.alerts FINAL WHERE source = 'weather'"
    wait_for(lambda: count(run, weather) == 1, 60, "the alert")
    wait_for(lambda: count(run, "SELECT count() FROM {db}.reports FINAL") == 1, 60, "the report")
    assert worker.stop() == 0
    worker.start().wait_ready()
    accept = example(contracts.REPORT, 1)
    accept.update(event_id=str(uuid.uuid4()), report_id=first["report_id"])
    send(
        run,
        (contracts.FORM_SUBMISSION, fresh_form(respondent, household_size=4)),  # resubmission
        (contracts.ALERT, fresh_update(root)),
        (contracts.REPORT, accept),
        (contracts.REPORT, fresh_submit()),
    )
    wait_for(lambda: count(run, "SELECT count() FROM {db}.reports FINAL") == 2, 90,
             "a report after the restart")  # fmt: skip
    wait_for(lambda: count(run, "SELECT count() FROM {db}.work_order_events FINAL") == 1, 60,
             "the step of the report submitted before the restart")  # fmt: skip
    # the tables survived: the resubmission replaces, the Update supersedes
    wait_for(lambda: count(run, "SELECT max(submissions) FROM {db}.form_submissions FINAL") == 2,
             60, "the resubmission counted as the respondent's second")  # fmt: skip
    wait_for(lambda: count(run, "SELECT countIf(msg_type = 'Update') FROM {db}.alerts FINAL") == 1,
             60, "the Update applied to the warning of before the restart")  # fmt: skip
    assert count(run, "SELECT count() FROM {db}.form_submissions FINAL") == 1
    assert count(run, weather) == 1
    assert count(run, "SELECT count() FROM {db}.dead_letters FINAL") == 0
    assert "Error in recovery" not in worker.log_text()


def test_poison_answers_are_dead_lettered_and_the_forms_behind_them_go_through(run: Run) -> None:
    worker = run.worker()
    worker.start().wait_ready()
    deep = "[" * 100_000 + '"fever"' + "]" * 100_000  # a multi-choice answer as JSON text
    poison = [
        fresh_form(household_size="9" * 4401),  # int() refuses over 4,300 digits: ValueError
        fresh_form(symptoms=deep),  # nesting past the recursion limit
        fresh_form(remark="a" * 950_000),  # over the contract's 900,000 bytes, under the broker's
    ]
    with EventProducer(run.settings) as producer:
        for form in poison:  # as an app that skips the contract check would send them
            record = contracts.from_json(contracts.FORM_SUBMISSION, form)
            producer.produce_raw(
                contracts.FORM_SUBMISSION,
                producer.serialize(contracts.FORM_SUBMISSION, record),
                key=contracts.key_for(contracts.FORM_SUBMISSION, record),
            )
        for _ in range(2):
            producer.send(contracts.FORM_SUBMISSION, fresh_form())
    wait_for(lambda: count(run, "SELECT count() FROM {db}.form_submissions FINAL") == 2, 90,
             "the two valid forms behind the poison ones")  # fmt: skip
    wait_for(lambda: count(run, "SELECT count() FROM {db}.dead_letters FINAL") == 3, 30,
             "the three poison forms dead-lettered")  # fmt: skip
    listed = "arrayStringConcat(arraySort(groupArray(reason)), ',')"
    reasons = f"SELECT {listed} FROM {{db}}.dead_letters FINAL"
    found = clickhouse.get_client(run.settings).query(
        reasons.format(db=run.settings.clickhouse_database)).result_rows[0][0]  # fmt: skip
    assert "event_too_large" in found, found
    assert worker.running
    assert "Agent crashed" not in worker.log_text()
    assert worker.stop() == 0  # SIGTERM ends it


def test_keyless_reports_never_fold_into_one_another(run: Run) -> None:
    worker = run.worker()
    worker.start().wait_ready()
    k1, k2 = fresh_submit(), fresh_submit()
    accept = example(contracts.REPORT, 1)
    accept.update(event_id=str(uuid.uuid4()), report_id=k2["report_id"])
    with EventProducer(run.settings) as producer:
        for event in (k1, k2, accept):
            record = contracts.from_json(contracts.REPORT, event)
            producer.produce_raw(contracts.REPORT, producer.serialize(contracts.REPORT, record))
        producer.send(contracts.REPORT, fresh_submit())  # keyed as the contract says
    wait_for(lambda: count(run, "SELECT count() FROM {db}.dead_letters FINAL") == 3, 90,
             "the three keyless events dead-lettered")  # fmt: skip
    wait_for(lambda: count(run, "SELECT count() FROM {db}.reports FINAL") == 1, 30,
             "the keyed report")  # fmt: skip
    reasons = count(run, "SELECT uniqExact(reason) FROM {db}.dead_letters FINAL "
                         "WHERE reason = 'bad_key'")  # fmt: skip
    assert reasons == 1
    assert count(run, "SELECT count() FROM {db}.work_orders FINAL") == 1


def test_a_stack_restart_loses_no_rows_and_no_work_order_state(tmp_path: Path, unique: str) -> None:
    """`stack down` + `stack up`: the embedded broker starts every partition at 0 again and
    every changelog is empty; ClickHouse keeps its data. One partition, so the events after
    the restart reuse the offsets of the events before it exactly."""
    settings = stack_settings(
        tmp_path / "home", topic_partitions=1, app_id=f"govstream-restart-{unique}",
        clickhouse_database=f"restart_{unique}", sla_check_interval_s=2.0,
    )  # fmt: skip
    own = Run(settings, tmp_path)
    control.up(settings)
    try:
        clickhouse.migrate(clickhouse.get_client(settings), settings.clickhouse_database)
        worker = own.worker()
        worker.start().wait_ready()
        # the same person and 井盖 problem at the same moment: b repeats a (重复诉求; equal times,
        # the smaller report id is the earlier), and so does c after the restart
        a, b = fresh_submit(f"T-{unique}-a"), fresh_submit(f"T-{unique}-b")
        steps = [example(contracts.REPORT, n) for n in range(1, 6)]  # ACCEPT … CLOSE
        for step in steps:
            step.update(event_id=str(uuid.uuid4()), report_id=b["report_id"])
        unknown = fresh_submit()
        unknown["region_code"] = "439999999999"
        respondent, root = f"wx-{uuid.uuid4().hex[:8]}", f"43060041600000_{uuid.uuid4().hex[:8]}"
        send_raw(own, a, unknown, b, steps[0])
        send(own, (contracts.FORM_SUBMISSION, fresh_form(respondent, temperature=38.5)),
             (contracts.ALERT, fresh_alert(root)))  # fmt: skip
        wait_for(lambda: count(own, "SELECT count() FROM {db}.reports FINAL") == 2, 90,
                 "two reports before the restart")  # fmt: skip
        wait_for(lambda: count(own, "SELECT count() FROM {db}.dead_letters FINAL") == 1, 30,
                 "one dead letter before the restart")  # fmt: skip
        wait_for(lambda: count(own, "SELECT count() FROM {db}.alerts FINAL WHERE source = 'form'")
                 == 1, 30, "the form's derived alert")  # fmt: skip
        submitted = (
            "SELECT toUnixTimestamp64Milli(submitted_at) FROM {db}.work_orders FINAL "
            f"WHERE report_id = '{b['report_id']}'"
        )
        submitted_ms = count(own, submitted)
        repeat = "SELECT repeat_of = '%s' FROM {db}.work_orders FINAL WHERE report_id = '%s'"
        wait_for(lambda: count(own, repeat % (a["report_id"], b["report_id"])) == 1, 30,
                 "b marked as a repeat of a")  # fmt: skip
        assert worker.stop() == 0
        control.down(settings)
        control.up(settings)
        worker.start().wait_ready()
        c = fresh_submit()
        unknown2 = fresh_submit()
        unknown2["region_code"] = "439999999998"
        send_raw(own, c, unknown2, *steps[1:])  # offsets 0 and 1 again, then B's steps
        normal = fresh_form(respondent, temperature=36.6, symptoms=[])
        normal["submitted_at"] = "2024-06-13T08:00:00+08:00"  # a day after the first one
        send(own, (contracts.FORM_SUBMISSION, normal), (contracts.ALERT, fresh_update(root)))
        wait_for(lambda: count(own, "SELECT count() FROM {db}.reports FINAL") == 3, 90,
                 "the report sent after the restart at a reused offset")  # fmt: skip
        wait_for(lambda: count(own, "SELECT count() FROM {db}.dead_letters FINAL") == 2, 30,
                 "the dead letter sent after the restart at a reused offset")  # fmt: skip
        wait_for(lambda: count(own, "SELECT count() FROM {db}.work_order_events FINAL") == 5, 60,
                 "B's steps after the restart applied to its work order")  # fmt: skip
        closed = "SELECT state = 'closed' FROM {db}.work_orders FINAL WHERE report_id = '%s'"
        assert count(own, closed % b["report_id"]) == 1
        # the 并单 index came back too: C (same place, category and time as A) merges with A
        merged = "SELECT duplicate_of = '%s' FROM {db}.reports FINAL WHERE report_id = '%s'"
        assert count(own, merged % (a["report_id"], c["report_id"])) == 1
        assert count(own, submitted) == submitted_ms  # times restored as they were
        # the repeat index came back from gov.reports: C repeats A, the first of that person
        wait_for(lambda: count(own, repeat % (a["report_id"], c["report_id"])) == 1, 30,
                 "c marked as a repeat of a after the restart")  # fmt: skip
        assert count(own, repeat % (a["report_id"], b["report_id"])) == 1
        # the resubmission counted on from the row before the restart, and replaced it
        wait_for(lambda: count(own, "SELECT max(submissions) FROM {db}.form_submissions FINAL")
                 == 2, 30, "the resubmission counted as the second")  # fmt: skip
        assert count(own, "SELECT count() FROM {db}.form_submissions FINAL") == 1
        form_alerts = (
            "SELECT countIf(status = 'cancelled') FROM {db}.alerts FINAL WHERE source = 'form'"
        )
        wait_for(lambda: count(own, form_alerts) == 1, 30,
                 "the derived alert cancelled by the normal resubmission")  # fmt: skip
        updated = (
            "SELECT countIf(msg_type = 'Update' AND length(messages) = 2) "
            "FROM {db}.alerts FINAL WHERE source = 'weather'"
        )
        wait_for(lambda: count(own, updated) == 1, 30, "the Update on the restored warning")
        assert count(own, "SELECT count() FROM {db}.dead_letters FINAL") == 2
        # B came back by its step or by the SLA scan, whichever ran first; A, with no step
        # after the restart, only by the scan (which escalates it too when it is overdue)
        wait_for(lambda: "open work orders from ClickHouse" in worker.log_text(), 30,
                 "the SLA scan restoring A")  # fmt: skip
        worker.stop()
    finally:
        for worker in own.workers:
            worker.stop()
        control.down(settings)


def send_raw(run: Run, *events: dict[str, Any]) -> None:
    """Send report events as they are (no contract check beyond the schema), keyed by report_id."""
    with EventProducer(run.settings) as producer:
        for event in events:
            record = contracts.from_json(contracts.REPORT, event)
            producer.produce_raw(
                contracts.REPORT, producer.serialize(contracts.REPORT, record),
                key=record["report_id"],
            )  # fmt: skip
