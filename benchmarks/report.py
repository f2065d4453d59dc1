"""The benchmark's results and their markdown table (pure: no I/O, no clocks).

Throughputs are shown as ratios to the two ceilings of the same run and the same topic (a
plain confluent-kafka consumer loop, a Faust agent that does nothing per event); a per-event
cost in µs is shown as the share of one event's time at that ceiling (``cost × ceiling /
10⁶``), so 0.25 means the stage alone eats a quarter of what Faust spends per event when it
does nothing.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

Kind = Literal["rate", "cost", "plain"]

#: Targets of issue 18 (issue 8 had 70 %, 1.7× and 2 s).
FULL_VS_FAUST = 0.50  # reports, full pipeline with one worker, against bare Faust
FORMS_VS_FAUST = 0.60  # forms, full pipeline with one worker, against bare Faust on forms
SCALE_OUT = 1.6  # two workers against one …
PER_CPU_SHARE = 0.90  # … or this share of one worker's events per worker CPU-second
P99_MS = 1000.0  # at 50 % of the one-worker rate, in the first and the last full minute
FLAT_MIB = 8.0  # memory growth tolerated over the soak: this many MiB or
FLAT_SHARE = 0.05  # this share of the warm RSS, whichever is larger


#: The names of the stage totals (benchmarks.stages), which the bounds are taken from.
REPORT_TOTAL = "all stages (per report event)"
FORM_TOTAL = "all stages (per form event)"


@dataclass(frozen=True)
class Figure:
    """One measured figure: a rate (events/s), a cost (µs/event) or a plain value."""

    name: str
    value: float | None
    unit: str
    kind: Kind = "plain"
    note: str = ""
    topic: str = "report"  # whose ceilings its ratios are taken against: report | form


@dataclass(frozen=True)
class Target:
    name: str
    want: str
    measured: str
    met: bool | None  # None: not measured in this run


@dataclass
class Results:
    """Everything one benchmark run measured (None: not measured)."""

    confluent_eps: float | None = None
    faust_eps: float | None = None
    full1_eps: float | None = None
    full2_eps: float | None = None
    full_cpu: dict[int, float | None] = field(default_factory=dict)  # workers: machine busy share
    stage_us: dict[str, float] = field(default_factory=dict)
    form_stage_us: dict[str, float] = field(default_factory=dict)
    insert_rows_s: float | None = None
    produce_eps: float | None = None
    latency_rate: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    p99_first_min_ms: float | None = None  # p99 of the first full minute of the soak
    p99_last_min_ms: float | None = None  # and of its last full minute
    latency_rows: int = 0
    peak_rss_mib: float | None = None
    soak_s: float | None = None
    rss_samples: list[tuple[float, float]] = field(default_factory=list)  # (s, MiB)
    #: the stack's processes over the soak: service name → [(s, RSS MiB, CPU seconds so far)]
    service_samples: dict[str, list[tuple[float, float, float]]] = field(default_factory=dict)
    form_confluent_eps: float | None = None
    form_faust_eps: float | None = None
    form_full1_eps: float | None = None
    mixed1_eps: float | None = None  # reports and forms at once, one worker
    # per pipeline phase ("w1", "w2": reports with 1 and 2 workers; "f1": forms, 1 worker;
    # "m1": both streams at once, 1 worker)
    worker_cpu_s: dict[str, float] = field(default_factory=dict)  # the workers' CPU seconds
    phase_events: dict[str, int] = field(default_factory=dict)  # events accounted for

    def per_cpu_s(self, phase: str) -> float | None:
        """Events per worker CPU-second of a pipeline phase (None if not measured)."""
        cpu = self.worker_cpu_s.get(phase)
        events = self.phase_events.get(phase)
        return events / cpu if cpu and events else None

    def ceilings(self, topic: str) -> tuple[float | None, float | None]:
        """(confluent, bare Faust) events/s of ``topic`` ("report" or "form")."""
        if topic == "form":
            return self.form_confluent_eps, self.form_faust_eps
        return self.confluent_eps, self.faust_eps


def ratio(figure: Figure, ceiling: float | None) -> float | None:
    """``figure`` relative to a ceiling in events/s (see the module doc); None if unknown."""
    if figure.value is None or not ceiling:
        return None
    if figure.kind == "rate":
        return figure.value / ceiling
    if figure.kind == "cost":
        return figure.value * ceiling / 1e6
    return None


def stage_bound(ceiling: float | None, stages_us: float | None) -> float | None:
    """events/s of one worker whose only costs are the bare Faust agent's per event (``1 /
    ceiling``) and the pipeline's own stages (``stages_us`` µs per event, measured in-process):
    what the full pipeline could reach if everything else (the second hop, table changelogs,
    inserts, acknowledgements) were free. None if either is unknown."""
    if not ceiling or stages_us is None:
        return None
    return 1e6 / (1e6 / ceiling + stages_us)


def soak_growth(samples: Sequence[tuple[float, float]]) -> tuple[float, float] | None:
    """(warm RSS, growth) in MiB: median of the second quarter of the soak against the median
    of its last quarter (the first quarter is warm-up); None with fewer than 8 samples."""
    if len(samples) < 8:
        return None
    values = [mib for _, mib in sorted(samples)]
    q = len(values) // 4
    warm = statistics.median(values[q : 2 * q])
    end = statistics.median(values[-q:])
    return warm, end - warm


def service_trend(
    samples: Sequence[tuple[float, float, float]],
) -> tuple[float, float, float, float] | None:
    """(CPU % of one core in the first quarter of the soak, in the last quarter, RSS MiB at
    the start, at the end) of one process; None with fewer than 8 samples."""
    if len(samples) < 8:
        return None
    ordered = sorted(samples)
    q = len(ordered) // 4

    def busy(part: Sequence[tuple[float, float, float]]) -> float:
        (t0, _, c0), (t1, _, c1) = part[0], part[-1]
        return 100.0 * (c1 - c0) / (t1 - t0) if t1 > t0 else 0.0

    return busy(ordered[: q + 1]), busy(ordered[-q - 1 :]), ordered[0][1], ordered[-1][1]


def is_flat(warm: float, growth: float) -> bool:
    return growth <= max(FLAT_MIB, FLAT_SHARE * warm)


def _num(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "—"
    return f"{value:,.{digits}f}"


def _ratio_text(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


BOUND_NOTE = "the most one worker could reach: see benchmarks/report.py stage_bound"


def _report_bound(r: Results) -> float | None:
    return stage_bound(r.faust_eps, r.stage_us.get(REPORT_TOTAL))


def _form_bound(r: Results) -> float | None:
    return stage_bound(r.form_faust_eps, r.form_stage_us.get(FORM_TOTAL))


def figures(r: Results) -> list[Figure]:
    out = [
        Figure("confluent-kafka consumer loop (ceiling)", r.confluent_eps, "events/s", "rate"),
        Figure("bare Faust agent (ceiling)", r.faust_eps, "events/s", "rate"),
        Figure("full pipeline, 1 worker", r.full1_eps, "events/s", "rate"),
        Figure("full pipeline, 2 workers", r.full2_eps, "events/s", "rate"),
    ]
    out += [
        Figure(f"machine CPU busy, full pipeline {n} worker{'s' if n > 1 else ''}",
               None if share is None else share * 100, "% of all cores",
               note="broker, registry, ClickHouse, workers and load generator together")
        for n, share in sorted(r.full_cpu.items())
    ]  # fmt: skip
    out += [Figure(f"stage: {name}", us, "µs/event", "cost") for name, us in r.stage_us.items()]
    out.append(Figure("bound: bare Faust + all stages, nothing else", _report_bound(r),
                      "events/s", "rate", note=BOUND_NOTE))  # fmt: skip
    out += [
        Figure("ClickHouse insert (clickhouse-connect)", r.insert_rows_s, "rows/s", "rate"),
        Figure("fill (produce_raw, pre-encoded)", r.produce_eps, "events/s", "rate"),
        Figure("latency load (50 % of 1-worker max)", r.latency_rate, "events/s", "rate"),
        Figure("end-to-end latency p50", r.p50_ms, "ms", note=f"{r.latency_rows:,} rows"),
        Figure("end-to-end latency p99", r.p99_ms, "ms", note=f"{r.latency_rows:,} rows"),
        Figure("end-to-end latency p99, first full minute", r.p99_first_min_ms, "ms"),
        Figure("end-to-end latency p99, last full minute", r.p99_last_min_ms, "ms"),
        Figure("worker peak RSS", r.peak_rss_mib, "MiB"),
    ]
    per_cpu = "events / the workers' own CPU seconds (user + system)"
    out += [
        Figure("forms: confluent-kafka consumer loop (ceiling)", r.form_confluent_eps,
               "events/s", "rate", topic="form"),
        Figure("forms: bare Faust agent (ceiling)", r.form_faust_eps, "events/s", "rate",
               topic="form"),
        Figure("forms: full pipeline, 1 worker", r.form_full1_eps, "events/s", "rate",
               note="from the start of the fill", topic="form"),
        *(Figure(f"forms: stage: {name}", us, "µs/event", "cost", topic="form")
          for name, us in r.form_stage_us.items()),
        Figure("forms: bound: bare Faust + all stages, nothing else", _form_bound(r),
               "events/s", "rate", note=BOUND_NOTE, topic="form"),
        Figure("events per worker CPU-second, reports, 1 worker", r.per_cpu_s("w1"), "events/s",
               note=per_cpu),
        Figure("events per worker CPU-second, reports, 2 workers", r.per_cpu_s("w2"),
               "events/s", note=per_cpu),
        Figure("events per worker CPU-second, forms, 1 worker", r.per_cpu_s("f1"), "events/s",
               note=per_cpu, topic="form"),
        Figure("mixed: reports and forms at once, 1 worker", r.mixed1_eps, "events/s",
               note="no ceiling of its own: compare with the two streams' rates above"),
        Figure("events per worker CPU-second, mixed, 1 worker", r.per_cpu_s("m1"), "events/s",
               note=per_cpu),
    ]  # fmt: skip
    growth = soak_growth(r.rss_samples)
    minutes = f"{(r.soak_s or 0) / 60:.1f} min soak"
    if growth is not None:
        out.append(Figure("worker RSS after warm-up", growth[0], "MiB", note=minutes))
        out.append(Figure("worker RSS growth over the soak", growth[1], "MiB", note=minutes))
    for name, samples in sorted(r.service_samples.items()):
        trend = service_trend(samples)
        if trend is None:
            continue
        first, last, rss0, rss1 = trend
        out.append(Figure(f"soak: {name} CPU, first → last quarter", last, "% of a core",
                          note=f"{first:.0f} % → {last:.0f} %"))  # fmt: skip
        out.append(Figure(f"soak: {name} RSS, start → end", rss1, "MiB",
                          note=f"{rss0:.0f} → {rss1:.0f} MiB"))  # fmt: skip
    return out


def targets(r: Results) -> list[Target]:
    out = []
    for name, full, ceiling, floor, bound in (
        ("reports: full pipeline vs bare Faust", r.full1_eps, r.faust_eps, FULL_VS_FAUST,
         _report_bound(r)),
        ("forms: full pipeline vs bare Faust", r.form_full1_eps, r.form_faust_eps,
         FORMS_VS_FAUST, _form_bound(r)),
    ):  # fmt: skip
        if full and ceiling:
            share = full / ceiling
            measured = f"{share:.0%} ({full:,.0f} / {ceiling:,.0f} events/s)"
            if bound is not None:
                measured += f"; bare Faust + the stages alone: {bound / ceiling:.0%}"
            out.append(Target(name, f"≥ {floor:.0%}", measured, share >= floor))
        else:
            out.append(Target(name, f"≥ {floor:.0%}", "—", None))
    want = f"≥ {SCALE_OUT}×, or ≥ {PER_CPU_SHARE:.0%} of 1 worker's events per CPU-second"
    one, two = r.per_cpu_s("w1"), r.per_cpu_s("w2")
    if r.full1_eps and r.full2_eps:
        factor = r.full2_eps / r.full1_eps
        measured = f"{factor:.2f}× ({r.full2_eps:,.0f} / {r.full1_eps:,.0f} events/s)"
        met = factor >= SCALE_OUT
        if one and two:
            measured += f"; per CPU-second {two / one:.0%} ({two:,.0f} / {one:,.0f})"
            met = met or two / one >= PER_CPU_SHARE
        out.append(Target("2 workers vs 1", want, measured, met))
    else:
        out.append(Target("2 workers vs 1", want, "—", None))
    if r.p99_ms is not None:
        minutes = (r.p99_first_min_ms, r.p99_last_min_ms)
        measured = (
            f"{r.p99_ms:,.0f} ms at {_num(r.latency_rate)} events/s; first minute "
            f"{_num(minutes[0])} ms, last {_num(minutes[1])} ms"
        )
        met = all(m is not None and m <= P99_MS for m in minutes)
        out.append(Target("p99 end-to-end at 50 % load", f"≤ {P99_MS:,.0f} ms", measured, met))
    else:
        out.append(Target("p99 end-to-end at 50 % load", f"≤ {P99_MS:,.0f} ms", "—", None))
    growth = soak_growth(r.rss_samples)
    want = f"growth ≤ max({FLAT_MIB:g} MiB, {FLAT_SHARE:.0%})"
    if growth is not None:
        warm, grew = growth
        measured = f"{grew:+.1f} MiB on {warm:.0f} MiB over {(r.soak_s or 0) / 60:.1f} min"
        out.append(Target("memory flat in the soak", want, measured, is_flat(warm, grew)))
    else:
        out.append(Target("memory flat in the soak", want, "—", None))
    return out


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def figures_table(r: Results) -> list[str]:
    rows = []
    for f in figures(r):
        digits = 1 if f.kind == "cost" or f.unit == "MiB" else 0
        confluent, faust = r.ceilings(f.topic)
        rows.append([
            f.name, _num(f.value, digits), f.unit,
            _ratio_text(ratio(f, confluent)), _ratio_text(ratio(f, faust)), f.note,
        ])  # fmt: skip
    return _table(["figure", "value", "unit", "× confluent", "× bare Faust", "note"], rows)


def targets_table(r: Results) -> list[str]:
    def verdict(met: bool | None) -> str:
        return "not measured" if met is None else ("**met**" if met else "**not met**")

    rows = [[t.name, t.want, t.measured, verdict(t.met)] for t in targets(r)]
    return _table(["target", "wanted", "measured", "result"], rows)


def _pairs(title: str, values: Mapping[str, object]) -> list[str]:
    return [f"**{title}:** " + " · ".join(f"{k} {v}" for k, v in values.items())]


def render(
    r: Results,
    *,
    title: str,
    machine: Mapping[str, object],
    versions: Mapping[str, object],
    settings: Mapping[str, object],
    sizes: Mapping[str, object],
    notes: Sequence[str] = (),
) -> str:
    """The whole results page (markdown)."""
    lines = [f"# {title}", ""]
    for name, values in (
        ("machine", machine),
        ("versions", versions),
        ("settings", settings),
        ("sizes", sizes),
    ):
        lines += _pairs(name, values) + [""]
    lines += ["## Targets", "", *targets_table(r), "", "## Figures", "", *figures_table(r), ""]
    lines += [
        "Ratios: a rate divided by the ceiling of its own topic (the forms' rows by the "
        "forms' ceilings); a µs/event cost as the share of one event's time at that ceiling "
        "(cost × ceiling / 10⁶).",
        "",
    ]
    if notes:
        lines += ["## Notes", "", *[f"- {n}" for n in notes], ""]
    return "\n".join(lines)
