"""Learning from dispatchers' corrections (issue 14, item 3): the corrected history as labelled
texts and `govstream classify train --from-clickhouse` (ClickHouse replaced by a fake client;
the real one: tests/e2e/test_classification_corrections.py)."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest

from pipelines import classify_model, corrections
from pipelines.cli import main
from pipelines.errors import GovstreamError

pytestmark = pytest.mark.unit

ROWS = [
    ("S0702", "complaint", "楼下烧烤店每晚油烟熏得没法开窗"),
    ("S0702", "", "饭店排烟管对着居民楼，油烟很大"),  # an order without a request type
    ("E0605", "help", "猕猴桃滞销，希望帮忙联系销路"),
    ("Q0000", "complaint", "a code the taxonomy no longer has"),
    ("E0605", "help", "今年柑橘卖不出去，果农着急"),
]


class FakeResult:
    def __init__(self, rows: list[tuple[Any, ...]]) -> None:
        self.result_rows = rows


class FakeClient:
    def __init__(self, rows: list[tuple[Any, ...]], error: Exception | None = None) -> None:
        self.rows, self.error = rows, error
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def query(self, sql: str, params: dict[str, Any]) -> FakeResult:
        self.calls.append((sql, params))
        if self.error is not None:
            raise self.error
        return FakeResult(self.rows)


def test_corrections_are_labelled_by_the_dispatchers_code() -> None:
    client = FakeClient(ROWS)
    found = corrections.examples(client, "gov", date(2026, 11, 1))
    assert [(e.code, e.request_type) for e in found] == [
        ("S0702", "complaint"),
        ("S0702", "complaint"),  # the taxonomy's default request type
        ("E0605", "help"),
        ("E0605", "help"),
    ]
    assert found[0].text == ROWS[0][2] and {e.split for e in found} == {"corrections"}
    [(sql, params)] = client.calls
    assert "classification_corrections" in sql and "{since:Date}" in sql
    assert params == {"db": "gov", "since": date(2026, 11, 1)}
    assert corrections.examples(FakeClient([]), "gov") == []
    with pytest.raises(GovstreamError, match="cannot read gov.classification_corrections: down"):
        corrections.examples(FakeClient([], ConnectionError("down\nmore")), "gov")


@pytest.fixture
def fake_clickhouse(monkeypatch: pytest.MonkeyPatch) -> FakeClient:
    client = FakeClient([])
    monkeypatch.setattr("pipelines.clickhouse.get_client", lambda *_a, **_k: client)
    return client


def test_train_from_clickhouse_writes_a_model(
    fake_clickhouse: FakeClient, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_clickhouse.rows = ROWS
    args = ["classify", "train", "--from-clickhouse", "--since", "2026-11-01"]
    assert main([*args, "--out", str(tmp_path)]) == 0
    assert '"corrections": 4' in capsys.readouterr().out
    assert fake_clickhouse.calls[0][1]["since"] == date(2026, 11, 1)
    path = classify_model.newest(tmp_path)
    assert path is not None
    model = classify_model.load(path)
    assert model.trained_on == 4
    assert set(model.codes.classes_) == {"S0702", "E0605"}
    # a FILE's texts and the corrections together
    tsv = tmp_path / "seed.tsv"
    tsv.write_text("P0102\tcomplaint\t路灯坏了\n", encoding="utf-8")
    both = tmp_path / "both.pkl"
    assert main(["classify", "train", str(tsv), "--from-clickhouse", "--out", str(both)]) == 0
    assert classify_model.load(both).trained_on == 5


def test_no_corrections_is_one_line_and_exit_2(
    fake_clickhouse: FakeClient, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["classify", "train", "--from-clickhouse", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("govstream: error: no dispatcher corrections")
    assert main(["classify", "train", "--from-clickhouse", "--since", "2026-11-01"]) == 2
    assert "corrected since 2026-11-01" in capsys.readouterr().err
    assert classify_model.newest(tmp_path) is None


def test_train_needs_a_file_or_the_corrections(tmp_path: Path) -> None:
    assert main(["classify", "train", "--out", str(tmp_path)]) == 2
    tsv = tmp_path / "x.tsv"
    tsv.write_text("P0102\tcomplaint\t路灯坏了\n", encoding="utf-8")
    assert main(["classify", "train", str(tsv), "--since", "2026-11-01"]) == 2
    assert main(["classify", "train", "--from-clickhouse", "--since", "30.11.2026"]) == 2
