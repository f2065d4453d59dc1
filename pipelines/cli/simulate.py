"""`govstream simulate`: send a seeded, realistic province's events and write their manifest.

The manifest (JSON) says what was sent and what the pipeline should make of it: events per
topic, dead letters per reason, work orders, duplicates, counts per category and department,
form statistics per community, active warnings by level. ``--dry-run --out DIR`` writes the
events as JSON lines instead of producing them.

``--closed-loop`` simulates the closed loop of 接诉即办 as ``make demo`` does
(``simulator.SimConfig.closed_loop``: 回访 with ratings, 转派, rework, repeat complaints and one
seeded hotspot over 30 days of history before the window); the manifest's ``closed_loop`` then
holds the expected 三率 per department, 督办 warnings, 问题工单, repeats and hotspots, computed
with this process's settings (``simulator.Analysis.of``). Events are sent in time order, the
history first; ``make demo`` also waits until the worker has taken the history before it sends
the rest, which exact repeat figures need on several partitions.
"""

from __future__ import annotations

import dataclasses
import json
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from pipelines import simulator, topics
from pipelines.errors import ConfigError
from pipelines.output import console, print_json, print_table
from pipelines.producer import EventProducer
from pipelines.settings import Settings, get_settings


def open_producer(settings: Settings) -> EventProducer:
    """The producer the command uses (tests replace it)."""
    return EventProducer(settings)


def _rate(text: str | None) -> float | None:
    if text is None:
        return None
    value = text.strip().removesuffix("/s")
    try:
        rate = float(value)
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is not a rate like 500/s", param_hint="--rate"
        ) from None
    if rate <= 0:
        raise typer.BadParameter(f"{text!r} must be positive", param_hint="--rate")
    return rate


def _start(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        start = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not ISO-8601", param_hint="--start") from None
    if start.tzinfo is None:
        raise typer.BadParameter(f"{text!r} needs a time zone (+08:00 or Z)", param_hint="--start")
    return start


_UNITS = {"s": 1 / 60, "m": 1.0, "h": 60.0, "d": 24 * 60.0}


def _duration_minutes(text: str) -> float:
    """``90s`` / ``60m`` / ``24h`` / ``2d`` → minutes (at least 0.1)."""
    value, unit = text.strip()[:-1], text.strip()[-1:].lower()
    try:
        minutes = float(value) * _UNITS[unit]
    except (KeyError, ValueError):
        raise typer.BadParameter(
            f"{text!r} is not a duration like 90s, 60m, 24h or 2d", param_hint="--duration"
        ) from None
    if minutes < 0.1:
        raise typer.BadParameter("a duration of at least 6s", param_hint="--duration")
    return minutes


def simulate(
    seed: int = typer.Option(1, "--seed", help="Random seed: the same seed, the same events."),
    reports: int | None = typer.Option(
        None, "--reports", min=0, help="Reports submitted (default 1000)."
    ),
    forms: int | None = typer.Option(
        None, "--forms", min=0, help="Form submissions (default: as many as reports)."
    ),
    warnings: int | None = typer.Option(
        None, "--warnings", min=0, help="Weather warnings (default: reports/200, at least 2)."
    ),
    count: int | None = typer.Option(
        None, "--count", min=0, help="Total events instead of --reports/--forms (a mix)."
    ),
    minutes: float = typer.Option(60.0, "--minutes", min=0.1, help="Simulated time span."),
    duration: str | None = typer.Option(
        None,
        "--duration",
        help="Simulated time span as 90s, 60m, 24h or 2d (instead of --minutes).",
    ),
    start: str | None = typer.Option(
        None, "--start", help="Start of the time span, ISO-8601 (default: it ends now)."
    ),
    region: str = typer.Option("", "--region", help="Division code prefix, e.g. 43 or 4306."),
    bad_fraction: float = typer.Option(
        0.03, "--bad-fraction", min=0.0, max=1.0, help="Share of reports that are bad events."
    ),
    rate: str | None = typer.Option(None, "--rate", help="Send at most R events/s, e.g. 500/s."),
    manifest_path: Path | None = typer.Option(  # noqa: B008 - typer's declaration style
        None, "--manifest", help="Write the manifest here (default: under GOVSTREAM_HOME)."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Write JSONL files, send nothing."),
    out: Path | None = typer.Option(  # noqa: B008
        None, "--out", help="Directory of the --dry-run files."
    ),
    json_: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
    closed_loop: bool = typer.Option(
        False,
        "--closed-loop",
        help="Add the closed loop (回访, 转派, rework, repeats, a seeded hotspot, 30 days of "
        "history), as make demo does.",
    ),
) -> None:
    """Simulate a province: reports with handling steps, health forms, weather warnings."""
    settings = get_settings()
    per_second = _rate(rate)
    if dry_run and out is None:
        raise typer.BadParameter("--dry-run needs --out DIR", param_hint="--out")
    if count is not None and (reports is not None or forms is not None):
        raise typer.BadParameter("give --count or --reports/--forms, not both")
    if duration is not None:
        minutes = _duration_minutes(duration)
    common: dict[str, Any] = {
        "seed": seed,
        "minutes": minutes,
        "start": _start(start),
        "region": region,
        "bad_fraction": bad_fraction,
        "duplicate_window_s": float(settings.duplicate_window_s),
        "duplicate_distance_m": settings.duplicate_distance_m,
        **(simulator.CLOSED_LOOP if closed_loop else {}),
    }
    if count is not None:
        config = simulator.SimConfig.for_count(count, **common)
    else:
        config = simulator.SimConfig(
            reports=1000 if reports is None else reports, forms=forms, warnings=warnings, **common
        )
        if warnings is not None:
            config = dataclasses.replace(config, warnings=warnings)
    now = datetime.now().astimezone()
    events = simulator.generate(config, now=now)
    analysis = simulator.Analysis.of(settings) if closed_loop else None
    manifest = simulator.manifest(events, config, now=now, analysis=analysis)
    started = time.perf_counter()
    if dry_run:
        assert out is not None
        files = simulator.write_jsonl(events, out)
        manifest["files"] = {name: str(path) for name, path in files.items()}
        manifest_path = manifest_path or out / "manifest.json"
    else:
        _produce(settings, events, per_second, quiet=json_)
        manifest_path = manifest_path or settings.home / "simulate" / f"manifest-seed{seed}.json"
    seconds = time.perf_counter() - started
    manifest["sent"] = {
        "dry_run": dry_run,
        "seconds": round(seconds, 3),
        "events_per_s": round(len(events) / seconds, 1) if seconds > 0 else 0.0,
    }
    try:
        manifest_path.parent.mkdir(parents=True, exist_ok=True)
        manifest_path.write_text(
            json.dumps(manifest, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
        )
    except OSError as exc:
        raise ConfigError(f"cannot write the manifest {manifest_path}: {exc.strerror}") from exc
    _summary(manifest, manifest_path, json_)


def _produce(
    settings: Settings, events: list[simulator.SimEvent], rate: float | None, quiet: bool
) -> None:
    topics.ensure_topics(settings, replication_factor=settings.topic_replication_factor)
    with open_producer(settings) as producer:
        progress = Progress(
            TextColumn("sending"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            disable=quiet,
            transient=True,
        )
        with progress:
            task = progress.add_task("events", total=len(events))
            simulator.send(
                events, producer, rate=rate, progress=lambda n: progress.update(task, completed=n)
            )
        producer.flush(60.0)


def _summary(manifest: dict[str, Any], path: Path, as_json: bool) -> None:
    # snake_case keys for --json (topic names are kebab-case: form-submission -> form_submission)
    summary = {
        "events": manifest["events"],
        **{f"topic_{t.replace('-', '_')}": n for t, n in manifest["topics"].items()},
        "work_orders": manifest["reports"]["work_orders"],
        "duplicates": manifest["reports"]["duplicates"],
        "dead_letters": manifest["dead_letters_total"],
        "warnings_active": sum(manifest["alerts"]["active_by_level"].values()),
        "events_per_s": manifest["sent"]["events_per_s"],
        "manifest": str(path),
    }
    if as_json:
        print_json({**summary, "manifest_data": manifest})
        return
    title = "simulated (dry run)" if manifest["sent"]["dry_run"] else "simulated and sent"
    rows = [{"what": k.replace("_", " "), "count": v} for k, v in summary.items()]
    print_table(rows, ["what", "count"], title)
