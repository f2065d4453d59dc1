"""Lag statuses from scripted offset histories (no Kafka)."""

from __future__ import annotations

import math

import pytest

from pipelines.lag import (
    LagTracker,
    Observation,
    Status,
    consumption_rate,
    evaluate_partition,
    time_lag,
    worst,
)

pytestmark = pytest.mark.unit


def history(*points: tuple[int | None, int | None], step: float = 10.0) -> list[Observation]:
    """Observations (committed, log_end) taken every ``step`` seconds."""
    return [Observation(i * step, c, e) for i, (c, e) in enumerate(points)]


def status(points: list[Observation], members: int | None = 1) -> Status:
    return evaluate_partition(points, members).status


def test_caught_up_consumer_is_ok() -> None:
    assert status(history((100, 100), (150, 150), (200, 200))) is Status.OK


def test_idle_topic_with_no_lag_is_ok_even_without_members() -> None:
    assert status(history((50, 50), (50, 50), (50, 50)), members=0) is Status.OK


def test_zero_lag_anywhere_in_window_is_ok() -> None:
    # Burrow's first rule: one caught-up observation makes the window OK
    assert status(history((100, 100), (100, 130), (100, 160))) is Status.OK


def test_moving_offsets_with_shrinking_lag_is_ok() -> None:
    assert status(history((0, 100), (40, 110), (90, 120))) is Status.OK


def test_moving_offsets_with_growing_lag_is_warn() -> None:
    ev = evaluate_partition(history((0, 100), (10, 150), (20, 200)), 1)
    assert ev.status is Status.WARN
    assert ev.lag == 180


def test_lag_fixed_then_growing_with_moving_offsets_is_warn() -> None:
    assert status(history((0, 100), (10, 110), (20, 130))) is Status.WARN


def test_lag_up_then_down_is_not_warn() -> None:
    assert status(history((0, 100), (10, 150), (100, 160))) is Status.OK


def test_offsets_not_moving_with_members_is_stall() -> None:
    assert status(history((10, 50), (10, 60), (10, 60)), members=2) is Status.STALL


def test_offsets_not_moving_with_unknown_members_is_stall() -> None:
    assert status(history((10, 50), (10, 50)), members=None) is Status.STALL


def test_no_members_and_no_commit_over_window_is_stop() -> None:
    assert status(history((10, 50), (10, 50), (10, 50)), members=0) is Status.STOP


def test_single_observation_with_lag_and_no_member_is_stop() -> None:
    assert status(history((10, 50)), members=0) is Status.STOP


def test_single_observation_with_lag_and_members_is_ok() -> None:
    assert status(history((10, 50)), members=1) is Status.OK


def test_offset_going_back_is_rewind() -> None:
    ev = evaluate_partition(history((100, 200), (120, 200), (30, 200)), 1)
    assert ev.status is Status.REWIND
    assert "120 → 30" in ev.reason


def test_rewind_outranks_zero_lag_in_window() -> None:
    assert status(history((200, 200), (0, 200))) is Status.REWIND


def test_failed_observation_is_err() -> None:
    points = [*history((10, 20)), Observation(20.0, None, None, error="timeout")]
    ev = evaluate_partition(points, 1)
    assert ev.status is Status.ERR
    assert ev.reason == "timeout"


def test_committed_beyond_log_end_is_err() -> None:
    assert status(history((70, 50))) is Status.ERR


def test_unknown_log_end_is_err() -> None:
    assert status(history((70, None))) is Status.ERR


def test_empty_window_is_err() -> None:
    assert status([]) is Status.ERR


def test_severity_order() -> None:
    ranks = [s.severity for s in (Status.OK, Status.WARN, Status.STALL, Status.ERR)]
    assert ranks == sorted(ranks) and len(set(ranks)) == 4
    assert Status.STALL.severity == Status.STOP.severity == Status.REWIND.severity


def test_worst_of() -> None:
    assert worst([]) is Status.OK
    assert worst([Status.OK, Status.WARN, Status.OK]) is Status.WARN
    assert worst([Status.STALL, Status.ERR, Status.WARN]) is Status.ERR
    assert worst([Status.WARN, Status.STOP]) is Status.STOP


def test_parse_status() -> None:
    assert Status.parse("warn") is Status.WARN
    with pytest.raises(ValueError, match="unknown status"):
        Status.parse("BAD")


def test_consumption_rate_and_time_lag() -> None:
    points = history((0, 1000), (100, 1000), (200, 1000))  # 200 offsets in 20 s
    assert consumption_rate(points) == pytest.approx(10.0)
    assert time_lag(points) == pytest.approx(80.0)  # lag 800 at 10/s


def test_time_lag_is_infinite_when_stuck_and_zero_when_caught_up() -> None:
    assert time_lag(history((5, 10), (5, 10))) == math.inf
    assert time_lag(history((10, 10), (10, 10))) == 0.0
    assert time_lag(history((5, 10))) is None


def test_tracker_group_status_is_worst_partition_and_window_slides() -> None:
    tracker = LagTracker(window=3)
    stuck, moving = ("t", 0), ("t", 1)
    for i in range(5):
        at = float(i)
        tracker.observe(
            "g",
            {stuck: Observation(at, 10, 20), moving: Observation(at, 100 + i, 100 + i)},
            members=1,
        )
    report = tracker.report("g")
    by_partition = {p.partition: p for p in report.partitions}
    assert by_partition[0].status is Status.STALL
    assert by_partition[1].status is Status.OK
    assert report.status is Status.STALL
    assert report.lag == 10
    as_json = report.as_dict()
    assert as_json["status"] == "STALL"
    assert as_json["partitions"][0]["time_lag_unbounded"] is True
    # the window kept only the last 3 observations: a rewind 4 observations ago is forgotten
    tracker2 = LagTracker(window=2)
    for i, committed in enumerate([50, 10, 20, 30]):
        tracker2.observe("g", {stuck: Observation(float(i), committed, 100)}, members=1)
    assert tracker2.report("g").status is Status.OK


def test_tracker_rejects_empty_window() -> None:
    with pytest.raises(ValueError):
        LagTracker(window=0)
