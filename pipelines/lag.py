"""Consumer lag: a Burrow-style evaluator (pure; the Kafka reads it needs are
:mod:`pipelines.kafka_admin`).

Every few seconds an observer records, per (group, topic, partition), an
:class:`Observation`: when it looked, the committed offset and the log-end offset. A
:class:`LagTracker` keeps the last ``window`` observations of each partition and
:func:`evaluate_partition` turns a window into a :class:`Status`, checked in this order:

``ERR``     the newest observation failed (offset or log end unreadable) or is impossible
            (committed offset beyond the log end).
``REWIND``  the committed offset went backwards between two observations of the window.
``OK``      the lag was zero in at least one observation of the window (Burrow's rule 1).
``STOP``    lag > 0, the committed offset did not move over the window and the group has
            no live member: no commit can come, the consumer is gone. With a single
            observation and no member, the same holds.
``STALL``   lag > 0 and the committed offset did not move over the window while the group
            has live members (or their number is unknown): the consumer is there but stuck.
``WARN``    the committed offset moved, but the lag grew between every pair of
            observations (never shrank, and ended higher): the consumer falls behind.
``OK``      otherwise (offsets move and the lag does not grow steadily).

A group's status is its worst partition's, by severity:
``OK < WARN < STALL = STOP = REWIND < ERR`` (``--fail-on`` compares severities).

The time lag is the lag divided by the consumption rate seen over the window (committed
offsets per second); ``inf`` when the consumer does not move, ``None`` with one observation.
"""

from __future__ import annotations

import enum
import math
from collections import defaultdict, deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

TopicPart = tuple[str, int]


class Status(enum.Enum):
    OK = "OK"
    WARN = "WARN"
    STALL = "STALL"
    STOP = "STOP"
    REWIND = "REWIND"
    ERR = "ERR"

    @property
    def severity(self) -> int:
        return _SEVERITY[self]

    @classmethod
    def parse(cls, name: str) -> Status:
        try:
            return cls[name.strip().upper()]
        except KeyError:
            raise ValueError(
                f"unknown status {name!r}; choose from {', '.join(s.value for s in cls)}"
            ) from None


_SEVERITY = {
    Status.OK: 0,
    Status.WARN: 1,
    Status.STALL: 2,
    Status.STOP: 2,
    Status.REWIND: 2,
    Status.ERR: 3,
}
_ORDER = list(Status)  # tie-break among equal severities: declaration order, later wins


def worst(statuses: Iterable[Status]) -> Status:
    """The most severe status (OK for none)."""
    return max(statuses, key=lambda s: (s.severity, _ORDER.index(s)), default=Status.OK)


@dataclass(frozen=True)
class Observation:
    """One look at a partition: committed offset and log end at time ``at`` (seconds)."""

    at: float
    committed: int | None
    log_end: int | None
    error: str | None = None

    @property
    def lag(self) -> int | None:
        if self.committed is None or self.log_end is None:
            return None
        return max(0, self.log_end - self.committed)


@dataclass(frozen=True)
class Evaluation:
    status: Status
    lag: int | None
    time_lag_s: float | None
    reason: str


def consumption_rate(window: Sequence[Observation]) -> float | None:
    """Committed offsets per second over the window (None with fewer than two points)."""
    points = [o for o in window if o.committed is not None]
    if len(points) < 2 or points[-1].at <= points[0].at:
        return None
    first, last = points[0], points[-1]
    assert first.committed is not None and last.committed is not None
    return max(0.0, (last.committed - first.committed) / (last.at - first.at))


def time_lag(window: Sequence[Observation]) -> float | None:
    """Seconds the consumer needs to catch up at the rate seen in the window."""
    if not window or window[-1].lag is None:
        return None
    lag = window[-1].lag
    if lag == 0:
        return 0.0
    rate = consumption_rate(window)
    if rate is None:
        return None
    return math.inf if rate == 0 else lag / rate


def evaluate_partition(window: Sequence[Observation], live_members: int | None) -> Evaluation:
    """The status of one partition from its window of observations (oldest first)."""
    if not window:
        return Evaluation(Status.ERR, None, None, "no observation")
    last = window[-1]
    if last.error is not None:
        return Evaluation(Status.ERR, None, None, last.error)
    lag = last.lag
    if lag is None:
        return Evaluation(Status.ERR, None, None, "log end or committed offset unknown")
    assert last.committed is not None and last.log_end is not None
    if last.committed > last.log_end:
        return Evaluation(
            Status.ERR, lag, None, f"committed {last.committed} beyond log end {last.log_end}"
        )
    tlag = time_lag(window)
    offsets = [o.committed for o in window if o.error is None and o.committed is not None]
    for before, after in zip(offsets, offsets[1:], strict=False):
        if after < before:
            return Evaluation(Status.REWIND, lag, tlag, f"offset went back {before} → {after}")
    lags = [o.lag for o in window if o.error is None and o.lag is not None]
    if 0 in lags:
        return Evaluation(Status.OK, lag, tlag, "caught up within the window")
    moved = offsets[-1] != offsets[0]
    if not moved:
        if live_members == 0:
            return Evaluation(
                Status.STOP, lag, tlag, "no live member and no commit over the window"
            )
        if len(offsets) < 2:
            return Evaluation(Status.OK, lag, tlag, "one observation, members live")
        return Evaluation(Status.STALL, lag, tlag, "offset not moving while lag > 0")
    growing = all(b >= a for a, b in zip(lags, lags[1:], strict=False)) and lags[-1] > lags[0]
    if growing:
        return Evaluation(Status.WARN, lag, tlag, "lag growing while offsets move")
    return Evaluation(Status.OK, lag, tlag, "consuming")


@dataclass
class PartitionReport:
    group: str
    topic: str
    partition: int
    committed: int | None
    log_end: int | None
    lag: int | None
    time_lag_s: float | None
    status: Status
    reason: str

    def as_dict(self) -> dict[str, Any]:
        tlag = self.time_lag_s
        return {
            "group": self.group,
            "topic": self.topic,
            "partition": self.partition,
            "committed": self.committed,
            "log_end": self.log_end,
            "lag": self.lag,
            "time_lag_s": None if tlag is None else (None if math.isinf(tlag) else tlag),
            "time_lag_unbounded": tlag is not None and math.isinf(tlag),
            "status": self.status.value,
            "reason": self.reason,
        }


@dataclass
class GroupReport:
    group: str
    members: int | None
    partitions: list[PartitionReport] = field(default_factory=list)

    @property
    def status(self) -> Status:
        return worst(p.status for p in self.partitions)

    @property
    def lag(self) -> int:
        return sum(p.lag or 0 for p in self.partitions)

    def as_dict(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "status": self.status.value,
            "members": self.members,
            "lag": self.lag,
            "partitions": [p.as_dict() for p in self.partitions],
        }


class LagTracker:
    """Sliding windows of observations per (group, topic, partition)."""

    def __init__(self, window: int = 3) -> None:
        if window < 1:
            raise ValueError("window must be at least 1")
        self.window = window
        self._history: dict[str, dict[TopicPart, deque[Observation]]] = defaultdict(dict)
        self._members: dict[str, int | None] = {}

    def observe(
        self,
        group: str,
        offsets: Mapping[TopicPart, Observation],
        members: int | None = None,
    ) -> None:
        history = self._history[group]
        for tp, obs in offsets.items():
            history.setdefault(tp, deque(maxlen=self.window)).append(obs)
        self._members[group] = members

    def groups(self) -> list[str]:
        return sorted(self._history)

    def report(self, group: str) -> GroupReport:
        members = self._members.get(group)
        report = GroupReport(group, members)
        for (topic, partition), window in sorted(self._history.get(group, {}).items()):
            ev = evaluate_partition(list(window), members)
            last = window[-1]
            report.partitions.append(
                PartitionReport(
                    group,
                    topic,
                    partition,
                    last.committed,
                    last.log_end,
                    ev.lag,
                    ev.time_lag_s,
                    ev.status,
                    ev.reason,
                )  # fmt: skip
            )
        return report
