"""The offset guard: every record of a partition reaches the stream once, in order."""

from __future__ import annotations

import pytest

from pipelines.offsets import OffsetGuard, Verdict

pytestmark = pytest.mark.unit

TP = ("report", 2)


def deliver_all(guard: OffsetGuard, offsets: list[int]) -> list[int]:
    """Run one fetched batch through the guard; the offsets delivered."""
    guard.new_fetch()
    out = []
    for offset in offsets:
        if guard.check(TP, offset).verdict in (Verdict.DELIVER, Verdict.GAP):
            guard.delivered(TP, offset)
            out.append(offset)
    return out


def test_in_order_records_are_delivered_and_earlier_ones_dropped() -> None:
    guard = OffsetGuard()
    guard.seeked(TP, 150)
    assert deliver_all(guard, [150, 151, 152]) == [150, 151, 152]
    assert guard.check(TP, 151).verdict is Verdict.DROP
    assert guard.expected[TP] == 153


def test_a_prefetched_record_after_the_seek_triggers_a_refetch_not_a_skip() -> None:
    """Seen after a rebalance: committed 150, the first record delivered 162."""
    guard = OffsetGuard()
    guard.seeked(TP, 150)
    first = guard.check(TP, 162)
    assert (first.verdict, first.expected) == (Verdict.RESEEK, 150)
    guard.seeked(TP, 150)  # the agent seeks back
    assert guard.check(TP, 163).verdict is Verdict.SKIP  # rest of the stale batch
    # the fresh fetch from 150 brings everything
    assert deliver_all(guard, list(range(150, 170))) == list(range(150, 170))


def test_a_jump_is_a_gap_only_after_fresh_fetches_agree() -> None:
    guard = OffsetGuard(confirmations=2)
    guard.seeked(TP, 10)
    verdicts = []
    for _ in range(3):  # three fetches from 10, each starting at 14
        guard.new_fetch()
        verdicts.append(guard.check(TP, 14).verdict)
    assert verdicts == [Verdict.RESEEK, Verdict.RESEEK, Verdict.GAP]
    guard.delivered(TP, 14)
    assert guard.expected[TP] == 15 and TP not in guard.refetches


def test_a_hole_that_fills_in_costs_one_refetch() -> None:
    """Tansu: offset 20 assigned to a concurrent producer, 21 already stored."""
    guard = OffsetGuard()
    guard.seeked(TP, 20)
    assert deliver_all(guard, [21, 22]) == []
    assert deliver_all(guard, [20, 21, 22]) == [20, 21, 22]
    assert TP not in guard.refetches


def test_refetch_count_restarts_for_a_new_hole() -> None:
    guard = OffsetGuard(confirmations=1)
    guard.seeked(TP, 0)
    assert deliver_all(guard, [2]) == []  # refetch 1 of hole at 0
    assert deliver_all(guard, [0, 1, 5]) == [0, 1]  # hole at 2 now: a fresh count
    assert guard.refetches[TP] == (2, 1)
    assert deliver_all(guard, [5]) == [5]  # confirmed


def test_unknown_position_takes_the_first_record_and_revocation_forgets() -> None:
    guard = OffsetGuard()
    assert deliver_all(guard, [7, 8]) == [7, 8]  # no committed offset: start where it is
    guard.revoked([TP])
    assert TP not in guard.expected
    guard.seeked(TP, None)
    assert guard.check(TP, 99).verdict is Verdict.DELIVER


def test_rewind_goes_to_the_committed_offset_or_where_delivery_began() -> None:
    """After Faust empties the stream queues, nothing delivered into them may be lost."""
    guard = OffsetGuard()
    assert deliver_all(guard, [40, 41, 42]) == [40, 41, 42]  # nothing committed yet
    assert guard.rewind_target(TP, None) == 40
    assert guard.rewind_target(TP, 41) == 41
    guard.seeked(TP, 41)
    assert guard.rewind_target(TP, None) is None  # a known position: nothing to guess
    assert guard.rewind_target(("report", 0), None) is None
