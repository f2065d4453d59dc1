"""The benchmark's table: ratios to the ceilings, the soak's memory verdict, the targets."""

from __future__ import annotations

import pytest

from benchmarks import report
from benchmarks.report import Figure, Results

pytestmark = pytest.mark.unit


def test_rates_are_divided_by_the_ceiling_and_costs_are_shares_of_its_event_time() -> None:
    assert report.ratio(Figure("x", 5_000, "events/s", "rate"), 10_000) == 0.5
    # 25 µs at a 10 k events/s ceiling (100 µs per event) is a quarter of it
    assert report.ratio(Figure("x", 25.0, "µs/event", "cost"), 10_000) == pytest.approx(0.25)
    assert report.ratio(Figure("x", 900.0, "ms"), 10_000) is None
    assert report.ratio(Figure("x", None, "events/s", "rate"), 10_000) is None
    assert report.ratio(Figure("x", 1.0, "events/s", "rate"), None) is None


def test_soak_growth_compares_the_second_quarter_with_the_last() -> None:
    flat = [(float(t), 200.0 + (30.0 if t < 4 else 0.0)) for t in range(16)]  # warm-up spike
    assert report.soak_growth(flat) == (200.0, 0.0)
    leaking = [(float(t), 200.0 + 5 * t) for t in range(16)]
    warm, growth = report.soak_growth(leaking) or (0.0, 0.0)
    assert growth > 0 and not report.is_flat(warm, growth)
    assert report.soak_growth(flat[:7]) is None
    assert report.is_flat(400.0, 15.0)  # within 5 % of 400 MiB
    assert not report.is_flat(100.0, 9.0)  # over 8 MiB and over 5 %


def test_a_stack_process_that_grows_in_the_soak_shows_its_cpu_and_memory() -> None:
    # 16 samples a minute apart: CPU seconds grow 6 → 48 per minute (10 % → 80 % of a core)
    cpu, samples = 0.0, []
    for t in range(16):
        samples.append((60.0 * t, 100.0 + 15 * t, cpu))
        cpu += 6.0 if t < 8 else 48.0
    first, last, rss0, rss1 = report.service_trend(samples) or (0, 0, 0, 0)
    assert first == pytest.approx(10.0) and last == pytest.approx(80.0)
    assert (rss0, rss1) == (100.0, 325.0)
    assert report.service_trend(samples[:7]) is None
    shown = report.figures(Results(service_samples={"kafka": samples}))
    assert [f.note for f in shown if f.name.startswith("soak: kafka")] == [
        "10 % → 80 %",
        "100 → 325 MiB",
    ]


def test_targets_met_and_not_met_with_their_figures() -> None:
    """Issue 18's targets: reports ≥ 50 % and forms ≥ 60 % of their bare-Faust ceilings, two
    workers ≥ 1.6× one or ≥ 90 % of its events per worker CPU-second, p99 ≤ 1 s in the first
    and the last full minute, memory flat."""
    samples = [(float(t), 300.0) for t in range(20)]
    r = Results(faust_eps=10_000, full1_eps=5_500, full2_eps=8_000, p99_ms=900.0,
                p99_first_min_ms=800.0, p99_last_min_ms=1_100.0, latency_rate=2_750,
                rss_samples=samples, soak_s=600, form_faust_eps=20_000, form_full1_eps=11_000,
                worker_cpu_s={"w1": 10.0, "w2": 20.0},
                phase_events={"w1": 20_000, "w2": 20_000})  # fmt: skip
    verdicts = {t.name: t for t in report.targets(r)}
    assert verdicts["reports: full pipeline vs bare Faust"].met is True
    assert "55%" in verdicts["reports: full pipeline vs bare Faust"].measured
    assert verdicts["forms: full pipeline vs bare Faust"].met is False  # 55 % < 60 %
    # 1.45× and 50 % of one worker's 2,000 events per CPU-second: not met
    scale = verdicts["2 workers vs 1"]
    assert scale.met is False and "1.45×" in scale.measured and "50%" in scale.measured
    # the last minute's p99 is over 1 s although the whole soak's is under
    assert verdicts["p99 end-to-end at 50 % load"].met is False
    assert verdicts["memory flat in the soak"].met is True
    assert all(t.met is None for t in report.targets(Results()))


def test_two_workers_pass_on_cpu_efficiency_when_the_cores_are_shared() -> None:
    r = Results(full1_eps=1_000, full2_eps=1_200, worker_cpu_s={"w1": 10.0, "w2": 10.5},
                phase_events={"w1": 20_000, "w2": 20_000})  # fmt: skip
    scale = {t.name: t for t in report.targets(r)}["2 workers vs 1"]
    assert scale.met is True and "95%" in scale.measured  # 1,905 of 2,000 per CPU-second
    assert r.per_cpu_s("w1") == 2_000 and r.per_cpu_s("f1") is None


def test_forms_rows_take_the_forms_ceilings() -> None:
    r = Results(confluent_eps=100_000, faust_eps=10_000, form_confluent_eps=50_000,
                form_faust_eps=20_000, form_full1_eps=12_000)  # fmt: skip
    text = report.render(r, title="t", machine={}, versions={}, settings={}, sizes={})
    assert "| forms: full pipeline, 1 worker | 12,000 | events/s | 0.24 | 0.60 |" in text


def test_render_shows_every_section_and_ratio_columns() -> None:
    r = Results(confluent_eps=100_000, faust_eps=10_000, full1_eps=5_000,
                stage_us={"decode": 20.0}, p50_ms=300.0, p99_ms=2_500.0)  # fmt: skip
    text = report.render(r, title="t", machine={"CPUs": 2}, versions={"python": "3.11"},
                         settings={"sink_batch_rows": 2000}, sizes={"events": 10})  # fmt: skip
    assert "**machine:** CPUs 2" in text
    assert "| full pipeline, 1 worker | 5,000 | events/s | 0.05 | 0.50 |  |" in text
    assert "| stage: decode | 20.0 | µs/event | 2.00 | 0.20 |  |" in text
    assert "| p99 end-to-end at 50 % load | ≤ 1,000 ms |" in text
    assert "**not met**" in text and "not measured" in text


def test_machine_cpu_share_and_p99_per_soak_minute_are_reported() -> None:
    from benchmarks.harness import busy_share, cpu_times

    assert busy_share((100.0, 400.0), (250.0, 600.0)) == 0.75  # 150 busy of 200 jiffies
    assert busy_share((1.0, 1.0), (1.0, 1.0)) is None
    busy, total = cpu_times()
    assert 0 < busy < total
    r = Results(faust_eps=10_000, full1_eps=5_000, full_cpu={1: 0.97, 2: None},
                p99_first_min_ms=900.0, p99_last_min_ms=4_200.0)  # fmt: skip
    text = report.render(r, title="t", machine={}, versions={}, settings={}, sizes={})
    assert "| machine CPU busy, full pipeline 1 worker | 97 | % of all cores |" in text
    assert "| machine CPU busy, full pipeline 2 workers | — | % of all cores |" in text
    assert "| end-to-end latency p99, last full minute | 4,200 | ms |" in text


def test_the_bound_adds_the_stages_to_the_bare_agents_time_per_event() -> None:
    """4,000 events/s bare is 250 µs per event; with 250 µs of stages one worker can do at most
    2,000 events/s: half the ceiling, whatever the rest costs."""
    assert report.stage_bound(4_000, 250.0) == 2_000
    assert report.stage_bound(4_000, 0.0) == 4_000
    assert report.stage_bound(None, 250.0) is None
    assert report.stage_bound(4_000, None) is None


def test_each_streams_bound_is_shown_against_its_own_ceiling_and_in_its_target() -> None:
    r = Results(faust_eps=4_000, full1_eps=400, stage_us={report.REPORT_TOTAL: 250.0},
                form_faust_eps=5_000, form_full1_eps=1_000,
                form_stage_us={"validate answers (per decoded submission)": 100.0,
                               report.FORM_TOTAL: 300.0})  # fmt: skip
    text = report.render(r, title="t", machine={}, versions={}, settings={}, sizes={})
    assert "| bound: bare Faust + all stages, nothing else | 2,000 | events/s | — | 0.50 |" in text
    # forms: 200 µs bare + 300 µs of stages = 500 µs per event
    bound = "forms: bound: bare Faust + all stages, nothing else"
    assert f"| {bound} | 2,000 | events/s | — | 0.40 |" in text
    stage = "forms: stage: validate answers (per decoded submission)"
    assert f"| {stage} | 100.0 | µs/event | — | 0.50 |" in text
    assert "10% (400 / 4,000 events/s); bare Faust + the stages alone: 50%" in text
    assert "20% (1,000 / 5,000 events/s); bare Faust + the stages alone: 40%" in text
