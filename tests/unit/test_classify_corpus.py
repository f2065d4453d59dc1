"""The invented classification corpus (issue 14): coverage, floors, eval and train commands.

heldout.tsv is never read while tuning: the lexicon and rules are tuned on train.tsv, on
../shared/classify_cases.tsv and on dev.tsv (366 texts written later, without seeing either
split), then heldout.tsv is measured once. Floors are those measurements rounded down:
first session, rules top-1 0.877, routed precision 0.888, request type 0.959 (the model
trained on train.tsv: 0.865); after the dev-corpus round (2026-11-30), rules top-1 0.914,
routed precision 0.925, request type 0.959, and the model blend trained on train + dev
0.914 too (it ties the rules on the held-out third; in 5-fold cross validation on train +
dev it gains 0.989 against 0.985).

fresh.tsv (244 texts, four styles per code, written after that round by someone who saw none
of the other files) is a second held-out set, never tuned on: rules top-1 0.820, routed
precision 0.842; the model blend trained on train + dev 0.869, routed 0.878.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from pipelines import classify, classify_model, taxonomy
from pipelines.classify_eval import evaluate, load_tsv
from pipelines.cli import main

pytestmark = pytest.mark.unit

DATA = Path(__file__).resolve().parents[1] / "data" / "classify"
CASES = Path(__file__).resolve().parents[3] / "shared" / "classify_cases.tsv"


def test_corpus_covers_every_code_in_both_splits() -> None:
    train, heldout = load_tsv(DATA / "train.tsv"), load_tsv(DATA / "heldout.tsv")
    assert len(train) + len(heldout) >= 600
    assert 0.25 <= len(heldout) / (len(train) + len(heldout)) <= 0.4
    per_code = Counter(ex.code for ex in train + heldout)
    assert set(per_code) == {c.code for c in taxonomy.all()}
    assert min(per_code.values()) >= 8
    assert {ex.code for ex in heldout} == set(per_code)
    assert not {ex.text for ex in train} & {ex.text for ex in heldout}


def test_rules_on_heldout_floor() -> None:
    report = evaluate(load_tsv(DATA / "heldout.tsv"), classify.classify_rules)
    assert report.overall.accuracy >= 0.91
    assert report.routed.accuracy >= 0.92
    assert report.request_type.accuracy >= 0.95


def test_rules_on_dev_and_cases_floor() -> None:
    dev = evaluate(load_tsv(DATA / "dev.tsv"), classify.classify_rules)
    assert dev.overall.accuracy >= 0.97 and dev.routed.accuracy >= 0.97
    if CASES.is_file():
        assert evaluate(load_tsv(CASES), classify.classify_rules).overall.right >= 60


def test_training_on_labelled_texts_beats_the_rules_on_texts_neither_saw() -> None:
    """Issue 14: the model learned from labelled texts (train + dev) classifies the fresh
    corpus better than the rules alone (measured: 212 against 200 of 244)."""
    fresh = load_tsv(DATA / "fresh.tsv")
    examples = [(e.code, e.request_type, e.text) for f in ("train", "dev")
                for e in load_tsv(DATA / f"{f}.tsv")]  # fmt: skip
    model = classify_model.train(examples)
    rules = evaluate(fresh, classify.classify_rules)
    learned = evaluate(fresh, model.classify)
    assert rules.overall.accuracy >= 0.80 and rules.routed.accuracy >= 0.82
    assert learned.overall.right >= rules.overall.right + 8, (learned.overall, rules.overall)
    assert learned.routed.accuracy > rules.routed.accuracy


def test_eval_command_prints_the_figures(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["classify", "eval", str(DATA / "heldout.tsv"), "--rules", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {"top1", "routed_precision", "department_accuracy", "request_type_accuracy",
            "by_major", "confusions"} <= set(data)  # fmt: skip
    assert data["texts"] == len(load_tsv(DATA / "heldout.tsv"))


def test_eval_refuses_a_bad_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.tsv"
    bad.write_text("Q0000\tcomplaint\t路灯坏了\n", encoding="utf-8")
    assert main(["classify", "eval", str(bad)]) == 1


@pytest.mark.slow
def test_train_writes_a_versioned_model_that_classify_uses(tmp_path: Path) -> None:
    assert main(["classify", "train", str(DATA / "train.tsv"), "--out", str(tmp_path)]) == 0
    path = classify_model.newest(tmp_path)
    assert path is not None and path.name.startswith("classify-")
    model = classify_model.load(path)
    report = evaluate(load_tsv(DATA / "heldout.tsv"), model.classify)
    assert report.overall.accuracy >= 0.86
    if CASES.is_file():
        assert evaluate(load_tsv(CASES), model.classify).overall.right >= 54
    classify.use_model(model)
    try:
        result = classify.classify("路灯坏了")
        assert (result.code, result.classifier) == ("P0102", model.name)
    finally:
        classify.use_model(None)
    with pytest.raises(classify_model.ModelError):
        classify_model.load(tmp_path / "missing.pkl")
