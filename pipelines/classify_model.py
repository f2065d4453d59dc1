"""A learned classifier (issue 14, item 3): linear model over character n-grams and words.

``train(examples)`` fits a scikit-learn pipeline on labelled texts: the category code by a
logistic regression over TF-IDF of character 1-3-grams and of jieba
words (the rules engine's segmenter, so its user dictionary applies), on normalized text
(``classify.normalize``: NFKC, lower case, OpenCC t2s). ``save`` writes one versioned file
``classify-<version>.pkl`` (a pickle: load only files you trained); ``newest(dir)`` finds the
latest one. ``Model.classify`` answers like ``classify.classify`` with ``classifier =
model-<version>``: when the rules are sure (confidence at least ``RULES_FIRST``) they answer;
else the model chooses the code when its probability reaches ``MIN_PROBA``, otherwise the
rules answer (the cold start); the evidence always comes from the rules' terms,
and so does the request type (the rules' cues read classify_cases better than the model did:
58 vs 51 of 60).

Labelled texts come from a TSV in the format of ``../shared/classify_cases.tsv``
(``code<TAB>request_type<TAB>text``), see ``classify_eval.load_tsv``.

What a model file holds (format 2) is not the scikit-learn pipeline but its fitted numbers:
``LinearTfidf`` -- the two vocabularies with their idf weights, the coefficients, intercepts
and classes -- and it scores a text with numpy alone. Why not the pipeline itself: importing
scikit-learn takes 2 s here (it imports scipy.stats and pandas), which the worker paid on
every start before its first report (issue 14: a model loads in under 2 s); ONNX exporters do
not take a callable analyzer (the segmenter's words). ``LinearTfidf`` repeats what
``TfidfVectorizer.transform`` and ``LogisticRegression.predict_proba`` compute for this
pipeline's settings only (``from_pipeline`` refuses others), and
``tests/unit/test_classify_model.py`` checks its probabilities against the pipeline's.
A format-1 file (the pickled pipeline) still loads: it is converted, importing scikit-learn.
"""

from __future__ import annotations

import hashlib
import math
import pickle
import re
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pipelines import classify as rules
from pipelines import taxonomy
from pipelines.errors import GovstreamError

FORMAT = 2  # 1: the pickled scikit-learn pipeline (still read, converted on load)
MIN_PROBA = 0.25  # below this the rules answer (set on the training split, not the held-out)
#: rules at or above this confidence answer without asking the model; chosen by 5-fold cross
#: validation on train.tsv + dev.tsv (0.989 against 0.985 for the rules alone; 0.6-0.9 within
#: 0.001), never on the held-out third
RULES_FIRST = 0.6
PATTERN = "classify-*.pkl"


class ModelError(GovstreamError):
    """A model file is missing, unreadable, of another format or of another taxonomy."""


def _words(text: str) -> list[str]:
    return [w for w in rules.segmenter().cut(text, False) if w.strip()]


def _pipeline() -> Any:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline, make_union

    features = make_union(
        TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True, min_df=1),
        TfidfVectorizer(analyzer=_words, sublinear_tf=True),
    )
    return make_pipeline(features, LogisticRegression(C=20.0, max_iter=2000))


_WHITE_SPACES = re.compile(r"(?u)\s\s+")  # TfidfVectorizer._white_spaces: runs become one space


@dataclass
class _Tfidf:
    """One fitted TF-IDF vectorizer: ``vocabulary`` (feature -> column), ``idf`` (per column),
    ``ngrams`` ((1, 3) for character n-grams, None for the segmenter's words)."""

    vocabulary: dict[str, int]
    idf: Any  # numpy float64 array, one weight per column
    ngrams: tuple[int, int] | None

    def features(self, text: str) -> list[str]:
        if self.ngrams is None:
            return _words(text)
        doc = _WHITE_SPACES.sub(" ", text.lower())
        lo, hi = self.ngrams
        return [doc[i : i + n] for n in range(lo, hi + 1) for i in range(len(doc) - n + 1)]

    def row(self, text: str) -> tuple[list[int], list[float]]:
        """Columns and values of ``text``'s row: sublinear tf (1 + ln count) times idf, the
        row scaled to unit length (l2), as ``TfidfVectorizer(sublinear_tf=True)`` does."""
        vocabulary = self.vocabulary
        counts = Counter(col for f in self.features(text) if (col := vocabulary.get(f)) is not None)
        cols = sorted(counts)
        values = [(1.0 + math.log(counts[c])) * float(self.idf[c]) for c in cols]
        norm = math.sqrt(sum(v * v for v in values))
        return cols, [v / norm for v in values] if norm > 0 else values


@dataclass
class LinearTfidf:
    """The fitted numbers of ``_pipeline()``: character n-gram and word TF-IDF side by side
    (``make_union``), then a multinomial logistic regression. ``predict_proba(texts)`` ->
    array (len(texts), len(classes_)) of probabilities, columns in ``classes_`` order."""

    parts: tuple[_Tfidf, ...]
    coef: Any  # numpy (n_classes, n_features); (1, n_features) for two classes
    intercept: Any  # numpy (n_classes,) or (1,)
    classes_: Any  # numpy array of codes

    @classmethod
    def from_pipeline(cls, pipeline: Any) -> LinearTfidf:
        """The numbers of a fitted ``_pipeline()``; raises :class:`ModelError` for a pipeline
        of other settings (this class computes only these)."""
        import numpy as np

        union, logistic = (step for _name, step in pipeline.steps)
        if union.transformer_weights or logistic.solver != "lbfgs":
            raise ModelError("cannot convert a pipeline of other settings (weights or solver)")
        parts = []
        for _name, vec in union.transformer_list:
            char = vec.analyzer == "char"
            expected = (vec.analyzer == _words or char and tuple(vec.ngram_range) == (1, 3)) and (
                vec.sublinear_tf and vec.use_idf and vec.norm == "l2" and not vec.binary
                and vec.lowercase and vec.strip_accents is None and vec.preprocessor is None
                and np.dtype(vec.dtype) == np.float64
            )  # fmt: skip
            if not expected:
                raise ModelError(f"cannot convert a vectorizer of other settings: {vec!r}")
            parts.append(_Tfidf(dict(vec.vocabulary_), vec.idf_.copy(), (1, 3) if char else None))
        coef, intercept = logistic.coef_.copy(), logistic.intercept_.copy()
        return cls(tuple(parts), coef, intercept, logistic.classes_)

    def predict_proba(self, texts: Sequence[str]) -> Any:
        import numpy as np

        out = np.empty((len(texts), len(self.classes_)))
        for k, text in enumerate(texts):
            decision = self.intercept.astype(float)
            offset = 0
            for part in self.parts:
                cols, values = part.row(text)
                if cols:
                    columns = self.coef[:, [offset + c for c in cols]]
                    decision = decision + columns @ np.array(values)
                offset += len(part.idf)
            if len(decision) == 1:  # two classes: the logistic function of one decision
                d = float(decision[0])
                p = 1.0 / (1.0 + math.exp(-d)) if d >= 0 else math.exp(d) / (1.0 + math.exp(d))
                out[k] = (1.0 - p, p)
            else:  # softmax
                e = np.exp(decision - decision.max())
                out[k] = e / e.sum()
        return out


@dataclass
class Model:
    """A trained model: ``version`` goes into gov.reports.classifier as ``model-<version>``."""

    version: str
    taxonomy_version: str
    trained_on: int
    codes: Any

    @property
    def name(self) -> str:
        return f"model-{self.version}"

    def classify(self, text: str, hint: str | None = None) -> rules.Classification:
        """The category and request type of ``text`` (shape of ``classify.classify``)."""
        base = rules.classify_rules(text, hint)
        if base.source == "hint":
            return base
        norm = rules.normalize(text or "")
        if not rules._has_content(norm):
            return replace(base, classifier=self.name)
        if base.source == "text" and base.confidence >= RULES_FIRST:
            return replace(base, classifier=self.name)  # the rules are sure: their evidence holds
        proba = self.codes.predict_proba([norm])[0]
        best = int(proba.argmax())
        code, p = str(self.codes.classes_[best]), float(proba[best])
        kind = base.request_type  # the rules' cues: better than the model on classify_cases
        if p < MIN_PROBA:
            return replace(base, classifier=self.name, request_type=kind)
        if code == base.code:
            return replace(base, confidence=round(p, 4), classifier=self.name, request_type=kind)
        _scores, evidence, by_part = rules.score(norm)
        terms = rules._evidence_terms(evidence.get(code, []))
        part = max(by_part[code].items(), key=lambda kv: kv[1])[0] if code in by_part else ""
        cat = taxonomy.get(code)
        return rules.Classification(
            code=cat.code, major=cat.major, minor=cat.minor, confidence=round(p, 4),
            priority=cat.priority, sla_hours=cat.sla_hours, department=cat.department,
            level=cat.level, evidence=terms, source="text" if code != "X9999" else "fallback",
            request_type=kind, taxonomy_version=taxonomy.VERSION, classifier=self.name,
            part=part,  # type: ignore[arg-type]
        )  # fmt: skip


def train(examples: Sequence[tuple[str, str, str]]) -> Model:
    """Fit a model on ``(code, request_type, text)`` triples; raises :class:`ModelError` when
    a code is not in the taxonomy or fewer than two codes are present."""
    if len({code for code, _k, _t in examples}) < 2:
        raise ModelError("training needs texts of at least two categories")
    for code, kind, text in examples:
        if not taxonomy.is_valid(code) or not taxonomy.is_request_type(kind):
            raise ModelError(f"bad label {code!r}/{kind!r} for {text[:30]!r}")
    texts = [rules.normalize(t) for _c, _k, t in examples]
    pipeline = _pipeline()
    pipeline.fit(texts, [c for c, _k, _t in examples])
    codes = LinearTfidf.from_pipeline(pipeline)
    digest = hashlib.sha256("\n".join(sorted(texts)).encode()).hexdigest()[:8]
    version = f"{time.strftime('%Y%m%d%H%M%S', time.gmtime())}-{digest}"
    return Model(version, taxonomy.VERSION, len(examples), codes)


def save(model: Model, out: Path) -> Path:
    """Write ``model``: into ``out`` when it is a directory (``classify-<version>.pkl``), else
    to the file ``out``. Returns the path written."""
    path = out / f"classify-{model.version}.pkl" if out.is_dir() or not out.suffix else out
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with tmp.open("wb") as fh:
        pickle.dump({"format": FORMAT, "model": model}, fh, protocol=pickle.HIGHEST_PROTOCOL)
    tmp.replace(path)
    return path


def load(path: Path) -> Model:
    """Read a model file; raises :class:`ModelError` if it is unreadable, of another format or
    trained on another taxonomy version."""
    try:
        with path.open("rb") as fh:
            data = pickle.load(fh)  # noqa: S301 - our own model files only
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError) as exc:
        raise ModelError(f"cannot read model {path}: {exc}") from exc
    if not isinstance(data, dict) or data.get("format") not in (1, FORMAT):
        raise ModelError(f"{path}: not a classifier model of format 1 or {FORMAT}")
    model = data["model"]
    if data["format"] == 1:  # the scikit-learn pipeline itself: keep its numbers only
        model = replace(model, codes=LinearTfidf.from_pipeline(model.codes))
    if model.taxonomy_version != taxonomy.VERSION:
        raise ModelError(
            f"{path}: trained on taxonomy {model.taxonomy_version}, this is {taxonomy.VERSION}"
        )
    return model


def newest(directory: Path) -> Path | None:
    """The newest model file in ``directory`` (by name: versions sort by time), or None."""
    if not directory.is_dir():
        return None
    files = sorted(directory.glob(PATTERN))
    return files[-1] if files else None
