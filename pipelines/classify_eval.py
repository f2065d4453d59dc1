"""Accuracy of the report classifier on labelled texts.

Two formats: the v1 CSV ``text,code[,split]`` (``tests/data/classify_eval.csv``) and the TSV of
``../shared/classify_cases.tsv`` (``code<TAB>request_type<TAB>text``, no header; the corpus
``tests/data/classify/*.tsv``). ``govstream classify eval FILE.tsv [--model PATH] [--json]``
prints top-1 accuracy, routed precision (share of the non-X9999 answers that are right),
department accuracy (the routed department is the gold code's), request-type accuracy, the
per-major table and the most frequent confusions.
"""

from __future__ import annotations

import csv
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pipelines import taxonomy
from pipelines.classify import Classification, classify
from pipelines.errors import GovstreamError

DEFAULT_EVAL = Path(__file__).resolve().parent.parent / "tests" / "data" / "classify_eval.csv"


@dataclass(frozen=True, slots=True)
class Example:
    text: str
    code: str
    split: str
    request_type: str = ""


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
    routed: Tally = field(default_factory=Tally)  # answers other than X9999: right / all
    department: Tally = field(default_factory=Tally)
    request_type: Tally = field(default_factory=Tally)  # examples with a gold request type

    def as_dict(self, top: int = 10) -> dict[str, object]:
        """The figures as JSON-friendly data (accuracies as fractions)."""
        return {
            "texts": self.overall.total,
            "top1": round(self.overall.accuracy, 4),
            "routed_precision": round(self.routed.accuracy, 4),
            "routed": self.routed.total,
            "department_accuracy": round(self.department.accuracy, 4),
            "request_type_accuracy": round(self.request_type.accuracy, 4)
            if self.request_type.total
            else None,
            "by_major": {
                m: {"accuracy": round(t.accuracy, 4), "right": t.right, "total": t.total}
                for m, t in sorted(self.by_major.items())
            },
            "confusions": [
                {"gold": g, "predicted": p, "count": n}
                for (g, p), n in self.confusions.most_common(top)
            ],
            "us_per_text": round(self.us_per_text, 1),
        }


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


def load_tsv(path: Path) -> list[Example]:
    """Rows ``code<TAB>request_type<TAB>text`` (format of ../shared/classify_cases.tsv);
    raises GovstreamError naming the line of a malformed row, unknown code or request type."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise GovstreamError(f"cannot read {path}: {exc}") from exc
    out = []
    for n, line in enumerate(lines, start=1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split("\t", 2)
        if len(parts) != 3:
            raise GovstreamError(f"{path}:{n}: expected code<TAB>request_type<TAB>text")
        code, kind, text = parts
        if not taxonomy.is_valid(code) or not taxonomy.is_request_type(kind):
            raise GovstreamError(f"{path}:{n}: unknown code {code!r} or request type {kind!r}")
        out.append(Example(text, code, "", kind))
    return out


def load_any(path: Path) -> list[Example]:
    """``load_tsv`` for ``*.tsv``, else the v1 CSV (``load_examples``)."""
    return load_tsv(path) if path.suffix == ".tsv" else load_examples(path)


def evaluate(
    examples: list[Example], classifier: Callable[[str], Classification] = classify
) -> EvalReport:
    """Classify every example and tally accuracy overall, per code and per major category,
    routed precision, department and request-type accuracy."""
    report = EvalReport()
    started = time.perf_counter()
    results = [classifier(ex.text) for ex in examples]
    predictions = [r.code for r in results]
    elapsed = time.perf_counter() - started
    report.us_per_text = elapsed / len(examples) * 1e6 if examples else 0.0
    for ex, result in zip(examples, results, strict=True):
        if result.code != taxonomy.UNKNOWN_CODE:
            report.routed.total += 1
            report.routed.right += result.code == ex.code
        report.department.total += 1
        report.department.right += result.department == taxonomy.get(ex.code).department
        if ex.request_type:
            report.request_type.total += 1
            report.request_type.right += result.request_type == ex.request_type
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
        f"({report.overall.right}/{report.overall.total}), {report.us_per_text:.1f} us/text",
        f"  routed precision {report.routed.accuracy:.3f} ({report.routed.right}/"
        f"{report.routed.total}), department {report.department.accuracy:.3f}, request type "
        f"{report.request_type.accuracy:.3f} ({report.request_type.right}/"
        f"{report.request_type.total})",
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
