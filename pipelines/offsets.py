"""In-order delivery of a partition's records to the agents: the offset guard.

Faust acknowledges a partition's offsets in order and treats a jump in the offsets it
delivers (``offset > last + 1``) as a *gap*: offsets that do not exist (compaction,
transaction markers), so it counts them as acknowledged and commits past them. Two things make
a jump appear although the records exist, and then they are never processed:

* after a rebalance, a record prefetched before the seek to the committed offset can reach
  the stream after it (seen here: committed offset 150, first record delivered 162, the
  re-fetched 150–161 dropped as "already read"; faust-streaming 0.15.3, aiokafka 0.14);
* Tansu assigns a produced batch its offset before it stores it, and a fetch returns every
  stored batch at or after the requested offset, so with two producers on one partition a
  fetch can return offset N+k before N is stored.

:class:`OffsetGuard` keeps the next offset expected for each partition (set by every seek) and
decides for each record: deliver it, drop it (already delivered), or — on a jump — seek back
to the expected offset and fetch again. Only when ``confirmations`` fresh fetches from the
expected offset still start past it are the missing offsets accepted as a real gap.

A third way to lose records is not a jump: Faust clears the streams' queues each time it
resumes the flow after a rebalance, and records delivered into them between the seek to the
committed offsets and that resume were gone (seen: offsets 3716–3758 of a partition, never
processed, the worker going on from 3759). So after every resume the partitions are
positioned again at :meth:`OffsetGuard.rewind_target` — the committed offset, or the first
offset delivered when nothing was committed yet — and records are re-delivered (the sink and
the tables are idempotent). Pure logic; ``agents/ordered.py`` wires it into the Faust consumer.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from enum import Enum


class Verdict(Enum):
    DELIVER = "deliver"  # the expected record (or the first one after an unknown position)
    DROP = "drop"  # before the expected offset: delivered already
    RESEEK = "reseek"  # a jump: seek back to the expected offset and fetch again
    SKIP = "skip"  # a jump already being re-fetched: wait for the fresh fetch
    GAP = "gap"  # a jump confirmed by fresh fetches: the offsets in between do not exist


@dataclass
class Decision:
    verdict: Verdict
    expected: int | None = None  # RESEEK/GAP: the offset the partition should have been at


@dataclass
class OffsetGuard:
    """Per-partition expected offsets and jumps being confirmed (keys are Faust TPs)."""

    confirmations: int = 2
    expected: dict[Hashable, int] = field(default_factory=dict)
    refetches: dict[Hashable, tuple[int, int]] = field(default_factory=dict)  # tp: (at, n)
    origin: dict[Hashable, int] = field(default_factory=dict)  # first offset from unknown
    _reseeking: set[Hashable] = field(default_factory=set)

    def seeked(self, tp: Hashable, offset: int | None) -> None:
        """The consumer was positioned at ``offset`` (``None``: unknown, take what comes)."""
        if offset is None or offset < 0:
            self.expected.pop(tp, None)
        else:
            self.expected[tp] = offset
            self.origin.pop(tp, None)

    def revoked(self, tps: Iterable[Hashable]) -> None:
        for tp in tps:
            self.expected.pop(tp, None)
            self.refetches.pop(tp, None)
            self.origin.pop(tp, None)
            self._reseeking.discard(tp)

    def new_fetch(self) -> None:
        """A new fetched batch begins: partitions re-fetched by a seek can be judged again."""
        self._reseeking.clear()

    def check(self, tp: Hashable, offset: int) -> Decision:
        """What to do with the record at ``offset`` of ``tp``."""
        expected = self.expected.get(tp)
        if expected is None:
            self.origin.setdefault(tp, offset)
            return Decision(Verdict.DELIVER)
        if offset == expected:
            return Decision(Verdict.DELIVER)
        if offset < expected:
            return Decision(Verdict.DROP, expected)
        if tp in self._reseeking:
            return Decision(Verdict.SKIP, expected)
        at, done = self.refetches.get(tp, (expected, 0))
        if at != expected:
            done = 0
        if done >= self.confirmations:
            return Decision(Verdict.GAP, expected)
        self.refetches[tp] = (expected, done + 1)
        self._reseeking.add(tp)
        return Decision(Verdict.RESEEK, expected)

    def delivered(self, tp: Hashable, offset: int) -> None:
        """The record at ``offset`` reached the stream: the next one is expected."""
        self.expected[tp] = offset + 1
        self.refetches.pop(tp, None)

    def rewind_target(self, tp: Hashable, committed: int | None) -> int | None:
        """Where to position ``tp`` after queued records were discarded (None: leave it)."""
        if committed is not None and committed >= 0:
            return committed
        return self.origin.get(tp)
