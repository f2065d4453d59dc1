"""Accuracy of the report classifier on a labelled CSV (``text,code[,split]``).

Run ``python -m pipelines.classify_eval [tests/data/classify_eval.csv] [--split test]`` for the
per-category table, the per-major table and the most frequent confusions.
"""

from __future__ import annotations

import csv
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from pipelines import taxonomy
from pipelines.classify import classify
from pipelines.errors import GovstreamError

DEFAULT_EVAL = Path(__file__).resolve().parent.parent / "tests" / "data" / "classify_eval.csv"


@dataclass(frozen=True, slots=True)
class Example:
    text: str
    code: str
    split: str


@dataclass(slots=True)
class Tally:
    right: int = 0
    total: int = 0

    @property
    def accuracy(self) -> float:
        return self.right / self.total if self.total else 0.0


@dataclass(slots=True)
class EvalReport:
    overall: Tally = field(default_factory=Tally)
    by_code: dict[str, Tally] = field(default_factory=dict)
    by_major: dict[str, Tally] = field(default_factory=dict)
    confusions: Counter[tuple[str, str]] = field(default_factory=Counter)
    errors: list[tuple[str, str, str]] = field(default_factory=list)  # text, gold, predicted
    us_per_text: float = 0.0


def load_examples(path: Path = DEFAULT_EVAL, split: str | None = None) -> list[Example]:
    """Rows of the eval CSV, optionally only one split; every code must be a taxonomy code."""
    try:
        with path.open(encoding="utf-8", newline="") as fh:
            rows = list(csv.DictReader(fh))
    except OSError as exc:
        raise GovstreamError(f"cannot read eval set {path}: {exc}") from exc
    examples = [Example(r["text"], r["code"], r.get("split") or "") for r in rows]
    for ex in examples:
        if not taxonomy.is_valid(ex.code):
            raise GovstreamError(f"{path}: unknown code {ex.code!r} for {ex.text!r}")
    return [ex for ex in examples if split is None or ex.split == split]


def evaluate(examples: list[Example]) -> EvalReport:
    """Classify every example and tally accuracy overall, per code and per major category."""
    report = EvalReport()
    started = time.perf_counter()
    predictions = [classify(ex.text).code for ex in examples]
    elapsed = time.perf_counter() - started
    report.us_per_text = elapsed / len(examples) * 1e6 if examples else 0.0
    for ex, got in zip(examples, predictions, strict=True):
        ok = got == ex.code
        major = taxonomy.get(ex.code).major
        for tally in (
            report.overall,
            report.by_code.setdefault(ex.code, Tally()),
            report.by_major.setdefault(major, Tally()),
        ):
            tally.total += 1
            tally.right += ok
        if not ok:
            report.confusions[(ex.code, got)] += 1
            report.errors.append((ex.text, ex.code, got))
    return report


def format_report(report: EvalReport, title: str = "", top: int = 10) -> str:
    """A plain-text table: per code, per major, then the most frequent confusions."""
    lines = [
        f"== {title} accuracy {report.overall.accuracy:.3f} "
        f"({report.overall.right}/{report.overall.total}), {report.us_per_text:.1f} us/text"
    ]
    for code, tally in sorted(report.by_code.items()):
        cat = taxonomy.get(code)
        name = f"{cat.major}/{cat.minor}"
        lines.append(f"  {code} {name:<16} {tally.accuracy:6.3f} {tally.right}/{tally.total}")
    lines.append("  -- per major category")
    for major, tally in sorted(report.by_major.items()):
        lines.append(f"  {major:<8} {tally.accuracy:6.3f} {tally.right}/{tally.total}")
    if report.confusions:
        lines.append("  -- confusions (gold -> predicted: count)")
        for (gold, got), n in report.confusions.most_common(top):
            lines.append(f"  {gold} -> {got}: {n}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    split = None
    if "--split" in args:
        i = args.index("--split")
        split = args[i + 1]
        del args[i : i + 2]
    verbose = "-v" in args
    args = [a for a in args if a != "-v"]
    path = Path(args[0]) if args else DEFAULT_EVAL
    report = evaluate(load_examples(path, split))
    print(format_report(report, title=split or "all"))
    if verbose:
        for text, gold, got in report.errors:
            print(f"  ✗ {gold} -> {got}: {text}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
