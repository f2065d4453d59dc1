"""Learning from dispatchers' corrections end to end (issue 14, item 3): DISPATCH steps with a
corrected_category go through a real worker into gov.work_orders and
gov.classification_corrections, bad ones are dead-lettered, `govstream classify train
--from-clickhouse` writes a model from them, and a worker started on that model directory
classifies with it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pipelines import classify_model, divisions
from pipelines import settings as settings_module
from pipelines.cli import main
from pipelines.settings import Settings
from pipelines.workerproc import WorkerProcess
from tests.e2e.test_report_pipeline import RAW_PHONE, _report, run  # noqa: F401 (fixture)
from tests.e2e.test_work_orders import _query, _send_and_run, _step

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

#: (text, the dispatcher's code)
TEXTS = [
    (f"楼下烧烤店每晚油烟熏得没法开窗，联系我{RAW_PHONE}", "S0702"),
    ("小区门口饭店的排烟管直对住户窗户，油烟很大", "S0702"),
    ("夜市大排档油烟弥漫，老人孩子都受不了", "S0702"),
    ("村里的猕猴桃今年滞销，希望政府帮忙联系销路", "E0605"),
    ("今年柑橘卖不出去，果农很着急", "E0605"),
    ("稻田里发生虫害，想请农技站的人来看看", "E0605"),
]


def _corrections(settings: Settings, prefix: str) -> list[tuple[Any, ...]]:
    return _query(
        settings,
        "SELECT c.report_id, c.corrected_code, c.corrected_minor, c.original_code, "
        "c.classifier, c.description, r.category_code, c.changed "
        "FROM {db}.classification_corrections AS c "
        "INNER JOIN (SELECT report_id, category_code FROM {db}.reports FINAL) AS r "
        "ON r.report_id = c.report_id "
        "WHERE startsWith(c.report_id, {p:String}) ORDER BY c.report_id",
        prefix,
    )


def _letters(settings: Settings, prefix: str) -> dict[str, int]:
    sql = (
        "SELECT reason, count() FROM {db}.dead_letters FINAL "
        "WHERE positionUTF8(value, {p:String}) > 0 GROUP BY reason"
    )
    return {str(reason): int(n) for reason, n in _query(settings, sql, prefix)}


def test_corrections_reach_clickhouse_and_train_a_model_the_worker_uses(
    run: Settings,  # noqa: F811
    unique: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    prefix = f"CC{unique}"
    villages = divisions.villages_under("430602")
    department = {"assigned_department": "岳阳楼区城管执法局"}
    events: list[dict[str, Any]] = []
    for n, (text, code) in enumerate(TEXTS):
        submit = _report(prefix, n, villages[n], description=text, category_hint=None)
        dispatch = _step(submit, "DISPATCH", 0.2, corrected_category=code, **department)
        events += [submit, _step(submit, "ACCEPT", 0.1), dispatch]
    plain = _report(prefix, 10, villages[10], category_hint=None)  # dispatched as classified
    bad = _report(prefix, 11, villages[11], category_hint=None)
    events += [
        plain, _step(plain, "ACCEPT", 0.1), _step(plain, "DISPATCH", 0.2, **department),
        bad, _step(bad, "ACCEPT", 0.1),
        _step(bad, "DISPATCH", 0.2, corrected_category="S9999", **department),
        _step(bad, "DISPATCH", 0.25, **department),
        _step(bad, "RESOLVE", 0.3, note="已处理", corrected_category="S0702"),
    ]  # fmt: skip
    worker = WorkerProcess(run, tmp_path / "worker.log")
    _send_and_run(
        run, worker, events,
        lambda: len(_corrections(run, prefix)) == len(TEXTS)
        and _letters(run, prefix) == {"unknown_category": 1, "incomplete_for_action": 1},
        "the corrections and the two dead letters",
    )  # fmt: skip
    rows = _corrections(run, prefix)
    assert [(r[1], r[2]) for r in rows] == [
        (code, "餐饮油烟" if code == "S0702" else "农业生产") for _t, code in TEXTS
    ]
    for _rid, corrected, _minor, original, classifier, text, reported, changed in rows:
        assert original == reported  # the classifier's answer stays beside the correction
        assert classifier.startswith(("rules-", "model-", "hint")) and changed == (
            corrected != original
        )
        assert RAW_PHONE not in text and text  # gov.reports' scrubbed description
    [[state, corrected, corrected_at]] = _query(
        run,
        "SELECT state, corrected_category, corrected_at FROM {db}.work_orders FINAL "
        "WHERE report_id = {p:String}",
        plain["report_id"],
    )
    assert (state, corrected, corrected_at) == ("dispatched", "", None)
    [[bad_state, bad_corrected]] = _query(
        run,
        "SELECT state, corrected_category FROM {db}.work_orders FINAL WHERE report_id = {p:String}",
        bad["report_id"],
    )
    assert (bad_state, bad_corrected) == ("dispatched", "")

    # govstream classify train --from-clickhouse, as an operator runs it
    for name, value in settings_module.settings_env(run).items():
        monkeypatch.setenv(name, value)
    models = tmp_path / "models"
    settings_module.get_settings.cache_clear()
    try:
        assert main(["classify", "train", "--from-clickhouse", "--out", str(models)]) == 0
        summary = json.loads(capsys.readouterr().out)
        assert main(["classify", "train", "--from-clickhouse", "--since", "2099-01-01"]) == 2
        assert "no dispatcher corrections" in capsys.readouterr().err
    finally:
        settings_module.get_settings.cache_clear()
    assert summary["corrections"] == summary["texts"] == len(TEXTS)
    path = classify_model.newest(models)
    assert path is not None and str(path) == summary["model"]
    model = classify_model.load(path)
    assert set(model.codes.classes_) == {"S0702", "E0605"}

    # a worker on that model directory classifies new reports with the model
    on_model = run.model_copy(update={"classify_model_dir": models})
    later = _report(prefix, 20, villages[20], description="楼下饭店油烟太大了", category_hint=None)
    _send_and_run(
        on_model, WorkerProcess(on_model, tmp_path / "worker2.log"), [later],
        lambda: bool(_query(run, "SELECT 1 FROM {db}.reports FINAL WHERE report_id = {p:String}",
                           later["report_id"])),
        "the report classified after training",
    )  # fmt: skip
    [[classifier]] = _query(
        run, "SELECT classifier FROM {db}.reports FINAL WHERE report_id = {p:String}",
        later["report_id"],
    )  # fmt: skip
    assert classifier == model.name
