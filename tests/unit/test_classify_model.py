"""The model file's numbers (``LinearTfidf``) score texts as the fitted scikit-learn pipeline
does, and loading one does not import scikit-learn (issue 14: a model loads in under 2 s)."""

from __future__ import annotations

import functools
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pipelines import classify, classify_model
from pipelines.classify_eval import load_tsv

DATA = Path(__file__).resolve().parents[1] / "data" / "classify"

ODD_TEXTS = [
    "",
    "   ",
    "路灯坏了",
    "路灯  坏了\n\n\t井盖 丢了",  # whitespace runs: one space for the character n-grams
    "ＡＢＣ abc 123 😀 〇㐀",
    "喂，你好，我要反映一下我们小区门口那个井盖已经丢了好几天了，晚上很危险",
]


@functools.cache
def _fitted() -> Any:
    """The scikit-learn pipeline of ``classify_model._pipeline()`` fitted on train.tsv."""
    examples = load_tsv(DATA / "train.tsv")
    pipeline = classify_model._pipeline()
    pipeline.fit([classify.normalize(e.text) for e in examples], [e.code for e in examples])
    return pipeline


def _texts() -> list[str]:
    texts = [e.text for f in ("dev", "fresh") for e in load_tsv(DATA / f"{f}.tsv")]
    return [classify.normalize(t) for t in texts + ODD_TEXTS]


def test_the_numbers_give_the_pipelines_probabilities() -> None:
    pipeline = _fitted()
    numbers = classify_model.LinearTfidf.from_pipeline(pipeline)
    texts = _texts()
    expected = pipeline.predict_proba(texts)
    got = numbers.predict_proba(texts)
    assert list(numbers.classes_) == list(pipeline.classes_)
    assert got.shape == expected.shape
    assert np.allclose(got, expected, rtol=0, atol=1e-9), float(np.abs(got - expected).max())


def test_two_classes_use_the_logistic_function() -> None:
    examples = [e for e in load_tsv(DATA / "train.tsv") if e.code in ("P0101", "P0102")]
    pipeline = classify_model._pipeline()
    pipeline.fit([classify.normalize(e.text) for e in examples], [e.code for e in examples])
    numbers = classify_model.LinearTfidf.from_pipeline(pipeline)
    texts = _texts()[:80]
    assert np.allclose(numbers.predict_proba(texts), pipeline.predict_proba(texts), atol=1e-9)


def test_a_pipeline_of_other_settings_is_refused() -> None:
    pipeline = classify_model._pipeline()
    pipeline.steps[0][1].transformer_list[0][1].set_params(ngram_range=(1, 2))
    examples = load_tsv(DATA / "train.tsv")
    pipeline.fit([classify.normalize(e.text) for e in examples], [e.code for e in examples])
    with pytest.raises(classify_model.ModelError, match="other settings"):
        classify_model.LinearTfidf.from_pipeline(pipeline)


def test_a_format_1_file_still_loads(tmp_path: Path) -> None:
    """Model files written before format 2 held the pipeline itself: converted on load."""
    model = classify_model.Model("20261101000000-old", classify.taxonomy.VERSION, 1, _fitted())
    path = tmp_path / "classify-20261101000000-old.pkl"
    path.write_bytes(pickle.dumps({"format": 1, "model": model}))
    loaded = classify_model.load(path)
    assert isinstance(loaded.codes, classify_model.LinearTfidf)
    texts = _texts()[:50]
    assert np.allclose(loaded.codes.predict_proba(texts), _fitted().predict_proba(texts), atol=1e-9)


def test_loading_a_model_and_classifying_does_not_import_scikit_learn(tmp_path: Path) -> None:
    examples = [(e.code, e.request_type, e.text) for e in load_tsv(DATA / "train.tsv")]
    path = classify_model.save(classify_model.train(examples), tmp_path)
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from pipelines import classify_model\n"
        f"model = classify_model.load(Path({str(path)!r}))\n"
        "model.codes.predict_proba(['路灯坏了'])\n"
        "print(model.classify('昨晚小区东门口的路灯不亮了，黑漆漆的').code)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('sklearn', 'scipy')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    ).stdout.splitlines()
    assert out == ["P0102", "[]"], out


def test_an_extreme_decision_gives_certainty_not_an_overflow() -> None:
    part = classify_model._Tfidf({"a": 0}, np.array([1.0]), (1, 1))
    for weight, expected in ((-1000.0, [1.0, 0.0]), (1000.0, [0.0, 1.0])):
        numbers = classify_model.LinearTfidf(
            (part,), np.array([[weight]]), np.array([0.0]), np.array(["P0101", "P0102"])
        )
        assert numbers.predict_proba(["a"]).tolist() == [expected]
