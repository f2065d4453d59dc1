"""`make bench` / ``python -m benchmarks``: run every measurement, write the results table.

Writes ``benchmarks/results/<date>.md`` and ``benchmarks/results/latest.md``. A bad flag prints
one line and exits 2; a failure of the stack or a phase prints one line and exits 1. The
embedded stack is the benchmark's own (free ports, temporary home) and is stopped at the end.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import NoReturn

from benchmarks import harness, report, stages
from pipelines import contracts
from pipelines.errors import GovstreamError

QUICK_EVENTS = 5_000
QUICK_SOAK_MINUTES = 1.0
MIN_PHASE_S = 20.0  # the latency phase runs at least this long, even without a soak


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"benchmarks: {message}\n")
        raise SystemExit(2)


def parse(argv: list[str]) -> harness.Options:
    parser = _Parser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, help="events per throughput phase (20000)")
    parser.add_argument("--soak-minutes", type=float, help="length of the soak (10)")
    quick = f"{QUICK_EVENTS} events, {QUICK_SOAK_MINUTES:g}-minute soak"
    parser.add_argument("--quick", action="store_true", help=quick)
    parser.add_argument("--results-dir", type=Path, help="where the tables go")
    parser.add_argument("--seed", type=int, default=1, help="simulator seed")
    args = parser.parse_args(argv)
    options = harness.Options(seed=args.seed)
    if args.quick:
        options.events, options.soak_minutes = QUICK_EVENTS, QUICK_SOAK_MINUTES
    if args.events is not None:
        if args.events < 100:
            parser.error(f"--events must be at least 100, got {args.events}")
        options.events = args.events
    if args.soak_minutes is not None:
        if not 0 <= args.soak_minutes <= 120:
            parser.error(f"--soak-minutes must be between 0 and 120, got {args.soak_minutes:g}")
        options.soak_minutes = args.soak_minutes
    if args.results_dir is not None:
        options.results_dir = args.results_dir
    return options


def log(text: str) -> None:
    print(f"[{datetime.now():%H:%M:%S}] {text}", file=sys.stderr, flush=True)


def measure(run: harness.Run) -> harness.Pool:
    settings, options, r = run.settings, run.options, run.results
    log(f"stack up in {settings.home} …")
    harness.restart_stack(settings, first=True)
    log(f"encoding {options.events:,} simulated report-topic events once …")
    pool = harness.build_pool(settings, options.events, options.seed)
    r.produce_eps = harness.fill(settings, pool)
    log(f"  filled the topic at {r.produce_eps:,.0f} events/s")
    r.confluent_eps = harness.confluent_ceiling(settings, len(pool))
    log(f"confluent-kafka consumer loop: {r.confluent_eps:,.0f} events/s")
    r.faust_eps = harness.faust_ceiling(settings, len(pool))
    log(f"bare Faust agent: {r.faust_eps:,.0f} events/s")
    r.stage_us, rows = stages.stage_costs(settings, harness.pool_values(pool))
    log("stages: " + ", ".join(f"{k} {v:.1f} µs" for k, v in r.stage_us.items()))
    r.insert_rows_s = stages.insert_rate(settings, rows, max(20_000, len(rows)))
    log(f"insert: {r.insert_rows_s:,.0f} rows/s")
    r.full1_eps = harness.full_pipeline(run, pool, 1)
    log(f"full pipeline, 1 worker: {r.full1_eps:,.0f} events/s")
    r.full2_eps = harness.full_pipeline(run, pool, 2)
    log(f"full pipeline, 2 workers: {r.full2_eps:,.0f} events/s")
    seconds = max(MIN_PHASE_S, options.soak_minutes * 60)
    rate = r.full1_eps / 2
    log(f"latency + soak: {seconds / 60:.1f} min at {rate:,.0f} events/s …")
    harness.latency_soak(run, pool, rate, seconds)
    log(f"latency p50 {r.p50_ms} ms, p99 {r.p99_ms} ms; peak RSS {r.peak_rss_mib} MiB")
    measure_forms(run, pool)
    return pool


def measure_forms(run: harness.Run, reports: harness.Pool | None = None) -> None:
    """The form-submission stream's ceilings and its full pipeline with one worker; with
    ``reports`` also both streams at once through one worker (the mixed phase)."""
    settings, options, r = run.settings, run.options, run.results
    harness.restart_stack(settings)
    log(f"encoding {options.events:,} simulated form-submission events once …")
    forms = harness.build_pool(settings, options.events, options.seed, contracts.FORM_SUBMISSION)
    harness.fill(settings, forms)
    r.form_stage_us = stages.form_stage_costs(settings, harness.pool_values(forms))
    log("forms: stages: " + ", ".join(f"{k} {v:.1f} µs" for k, v in r.form_stage_us.items()))
    r.form_confluent_eps = harness.confluent_ceiling(settings, len(forms), topic=forms.topic)
    log(f"forms: confluent-kafka consumer loop: {r.form_confluent_eps:,.0f} events/s")
    r.form_faust_eps = harness.faust_ceiling(settings, len(forms), topic=forms.topic)
    log(f"forms: bare Faust agent: {r.form_faust_eps:,.0f} events/s")
    r.form_full1_eps = harness.full_pipeline(run, forms, 1)
    log(f"forms: full pipeline, 1 worker: {r.form_full1_eps:,.0f} events/s")
    if reports is not None:
        r.mixed1_eps = harness.mixed_pipeline(run, reports, forms)
        log(f"mixed: reports and forms, 1 worker: {r.mixed1_eps:,.0f} events/s")


def write(run: harness.Run, started: float, stamp: datetime) -> Path:
    options, settings = run.options, run.settings
    sizes = {
        "events per phase": f"{options.events:,}",
        "soak": f"{options.soak_minutes:g} min",
        "seed": options.seed,
        "whole run": f"{(time.monotonic() - started) / 60:.1f} min",
    }
    text = report.render(
        run.results,
        title=f"govstream benchmark — {stamp:%Y-%m-%d %H:%M}",
        machine=harness.machine(),
        versions=harness.versions(settings),
        settings=harness.settings_shown(settings),
        sizes=sizes,
        notes=run.notes,
    )
    options.results_dir.mkdir(parents=True, exist_ok=True)
    path = options.results_dir / f"{stamp:%Y-%m-%d-%H%M}.md"
    path.write_text(text, encoding="utf-8")
    (options.results_dir / "latest.md").write_text(text, encoding="utf-8")
    return path


NOTES = [
    "Events: the simulator's report topic (reports, handling steps, 并单 duplicates, ~3 % bad "
    "events that become dead letters), Avro-encoded once and produced with `produce_raw`.",
    "Ceilings and the pipeline read the same bytes; the stack is restarted before each "
    "pipeline phase (Tansu keeps topics in memory) and the topic refilled.",
    "Full pipeline: workers join first, then the topic is filled; rate = events / (all rows "
    "reconciled against the manifest − first event received). Two hops: report → "
    "report-routed (并单 table) → gov.reports.",
    "Latency: `inserted_at − produced_at` of gov.reports rows (Kafka record timestamp → row in "
    "ClickHouse), under load at 50 % of the 1-worker rate sent with the simulator's rate "
    "limiting; memory: VmRSS of that worker sampled over the soak, peak = VmHWM.",
    "Everything (broker, registry, chDB, worker(s), load generator) shares the machine's cores.",
    "Forms: the simulator's form-submission events (submissions, 10 % resubmissions, ~3 % bad "
    "events), the same phases with their own ceilings; accounted for as sum(submissions) of "
    "gov.form_submissions FINAL plus the topic's dead letters; rate from the start of the fill "
    "(a respondent's row is replaced, so the first event's receive time is not kept).",
    "Events per worker CPU-second: events accounted for / the worker processes' own CPU time "
    "(user + system, /proc/<pid>/stat) over the phase.",
    "Mixed: the report and form-submission pools in their own topics, filled one after the "
    "other, through one worker; rate from the start of the fill until both are accounted for. "
    "Weather warnings (a few a day) are left out.",
]


def main(argv: list[str] | None = None) -> int:
    options = parse(sys.argv[1:] if argv is None else argv)
    started = time.monotonic()
    stamp = datetime.now()
    home = harness.tempdir()
    settings = harness.bench_settings(home)
    run = harness.Run(settings, options, log, notes=list(NOTES))
    failed: str | None = None
    try:
        measure(run)
    except (GovstreamError, OSError) as exc:
        failed = f"{type(exc).__name__}: {exc}"
        run.notes.append(f"**The run stopped early:** {failed}")
    except KeyboardInterrupt:
        failed = "interrupted"
        run.notes.append("**The run was interrupted.**")
    finally:
        try:
            harness.control.down(settings)
        except GovstreamError as exc:
            log(f"stack down: {exc}")
    path = write(run, started, stamp)
    log(f"wrote {path} and latest.md ({(time.monotonic() - started) / 60:.1f} min)")
    if failed:
        print(f"benchmarks: {failed} (stack logs kept in {home / 'logs'})", file=sys.stderr)
        return 1
    shutil.rmtree(home, ignore_errors=True)
    print(path.read_text("utf-8"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
