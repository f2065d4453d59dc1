"""`govstream classify TEXT | --file F [--json]`: run the report classifier on free text."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import typer

from pipelines import classify as engine
from pipelines.output import print_json, print_table

FIELDS = (
    "code",
    "major",
    "minor",
    "confidence",
    "priority",
    "sla_hours",
    "department",
    "level",
    "request_type",
    "taxonomy_version",
    "classifier",
)
COLUMNS = ["text", *FIELDS, "evidence"]


def _row(text: str) -> dict[str, Any]:
    result = engine.classify(text)
    row: dict[str, Any] = {"text": text}
    row.update({name: getattr(result, name) for name in FIELDS})
    row["evidence"] = list(result.evidence)
    return row


def _read_lines(path: Path) -> list[str]:
    try:
        content = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise typer.BadParameter(f"cannot read {path}: {exc}", param_hint="--file") from exc
    return [line.strip() for line in content.splitlines() if line.strip()]


def classify(
    text: str | None = typer.Argument(None, help="A report text (Chinese free text)."),
    file: Path | None = typer.Option(  # noqa: B008 - typer's declaration style
        None, "--file", help="Classify each non-empty line of F."
    ),
    json_: bool = typer.Option(
        False, "--json", help="Print JSON (one object per line with --file)."
    ),
) -> None:
    """Classify report text into the taxonomy: code, category, priority, SLA, department."""
    if (text is None) == (file is None):
        raise typer.BadParameter("give either a TEXT or --file F (exactly one)")
    if text is not None:
        row = _row(text)
        if json_:
            print_json(row)
        else:
            pairs = [{"field": k, "value": v} for k, v in row.items() if k != "evidence"]
            pairs.append({"field": "evidence", "value": "、".join(row["evidence"])})
            print_table(pairs, ["field", "value"], title="classification")
        return
    assert file is not None
    rows = [_row(line) for line in _read_lines(file)]
    if json_:
        for row in rows:
            print(json.dumps(row, ensure_ascii=False))
    else:
        table_rows = [{**r, "evidence": "、".join(r["evidence"])} for r in rows]
        print_table(table_rows, COLUMNS, title=f"classification of {file}")


def _classifier(model: Path | None) -> Any:
    """``classify`` of the model file ``model``, else the active classifier."""
    if model is None:
        return engine.classify
    from pipelines import classify_model

    return classify_model.load(model).classify


def classify_eval(
    file: Path = typer.Argument(  # noqa: B008 - typer's declaration style
        ..., help="Labelled texts: code<TAB>request_type<TAB>text (or the v1 CSV)."
    ),
    model: Path | None = typer.Option(  # noqa: B008
        None, "--model", help="Evaluate this model file (default: the active classifier)."
    ),
    rules: bool = typer.Option(False, "--rules", help="Evaluate the rules alone."),
    json_: bool = typer.Option(False, "--json", help="Print the figures as JSON."),
) -> None:
    """`govstream classify eval FILE`: top-1, routed precision, department and request-type
    accuracy, per-major figures and the top confusions of the classifier on FILE."""
    from pipelines import classify_eval as ev

    examples = ev.load_any(file)
    classifier = engine.classify_rules if rules else _classifier(model)
    report = ev.evaluate(examples, classifier)
    if json_:
        print_json({"file": str(file), **report.as_dict()})
    else:
        print(ev.format_report(report, title=str(file)))


def _corrections(since: datetime | None) -> list[Any]:
    """The dispatchers' corrections in ClickHouse as labelled examples (exit 2 when none)."""
    from pipelines import corrections
    from pipelines.clickhouse import get_client
    from pipelines.settings import get_settings

    settings = get_settings()
    day = since.date() if since is not None else None
    found = corrections.examples(
        get_client(settings, analyst=True), settings.clickhouse_database, day
    )
    if not found:
        after = f" corrected since {day.isoformat()}" if day else ""
        print(
            f"govstream: error: no dispatcher corrections{after} in "
            f"{settings.clickhouse_database}.{corrections.VIEW}: nothing to train on",
            file=sys.stderr,
        )
        raise typer.Exit(2)
    return found


def classify_train(
    file: Path | None = typer.Argument(  # noqa: B008
        None, help="Labelled texts: code<TAB>request_type<TAB>text."
    ),
    out: Path | None = typer.Option(  # noqa: B008
        None, "--out", help="Model file or directory (default: the settings' model directory)."
    ),
    from_clickhouse: bool = typer.Option(
        False,
        "--from-clickhouse",
        help="Learn from the dispatchers' corrections in ClickHouse "
        "(gov.classification_corrections), with FILE's texts too when given.",
    ),
    since: datetime | None = typer.Option(  # noqa: B008
        None,
        "--since",
        formats=["%Y-%m-%d"],
        help="With --from-clickhouse: only corrections made on or after this date "
        "(YYYY-MM-DD, Asia/Shanghai).",
    ),
) -> None:
    """`govstream classify train FILE | --from-clickhouse [--since DATE]`: fit the linear
    model on labelled texts (a TSV file, the dispatchers' corrected work orders, or both) and
    write a versioned model file (`classify-<version>.pkl`); prints its path."""
    from pipelines import classify_eval as ev
    from pipelines import classify_model
    from pipelines.settings import get_settings

    if file is None and not from_clickhouse:
        raise typer.BadParameter("give a FILE, --from-clickhouse, or both")
    if since is not None and not from_clickhouse:
        raise typer.BadParameter("--since goes with --from-clickhouse", param_hint="--since")
    examples = ev.load_tsv(file) if file is not None else []
    corrected = _corrections(since) if from_clickhouse else []
    examples += corrected
    model = classify_model.train([(e.code, e.request_type, e.text) for e in examples])
    path = classify_model.save(model, out or get_settings().model_dir)
    summary = {"model": str(path), "version": model.version, "texts": model.trained_on}
    if from_clickhouse:
        summary["corrections"] = len(corrected)
    print_json(summary)
