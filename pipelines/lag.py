"""Consumer lag: a Burrow-style evaluator (pure) and the Kafka reads it needs (I/O).

Pure part
---------
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

I/O part
--------
Only APIs Apache Kafka and Tansu both answer: ListGroups, OffsetFetch, Metadata,
ListOffsets (earliest/latest), Fetch and DescribeGroups (members only; state strings are
not used, Tansu reports "Unknown"). Tansu's ListOffsets(latest) is wrong when a partition's
last record batch holds several records (it answers that batch's base offset + 1), so
:func:`log_end_offsets` corrects it by fetching from ``high watermark - 1``.
"""

from __future__ import annotations

import asyncio
import enum
import math
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pipelines import contracts
from pipelines.errors import GovstreamError
from pipelines.settings import Settings

TopicPart = tuple[str, int]


class LagError(GovstreamError):
    """Kafka could not be asked about groups or offsets."""


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


# --- I/O --------------------------------------------------------------------------------


def _admin(settings: Settings, timeout: float) -> Any:
    from confluent_kafka.admin import AdminClient

    return AdminClient(
        settings.kafka_config(**{"socket.timeout.ms": int(timeout * 1000), "log_level": 0})
    )


def _reason(exc: BaseException, timeout: float) -> str:
    """A client error as one line; a bare timeout (empty message) says how long it waited."""
    text = " ".join(str(exc).split())
    if not text or isinstance(exc, TimeoutError):
        return f"no answer from Kafka within {timeout:g} s ({type(exc).__name__})"
    return text


def list_groups(settings: Settings, timeout: float = 10.0) -> list[str]:
    """Consumer groups the cluster knows (ListGroups; states are not used)."""
    admin = _admin(settings, timeout)  # keep it alive until the future resolves
    try:
        listing = admin.list_consumer_groups(request_timeout=timeout).result(timeout=timeout)
    except Exception as exc:
        raise LagError(f"cannot list consumer groups: {_reason(exc, timeout)}") from exc
    return sorted(g.group_id for g in listing.valid)


def committed_offsets(
    settings: Settings, group: str, timeout: float = 10.0
) -> dict[TopicPart, int]:
    """The group's committed offsets (OffsetFetch for all partitions); none → empty dict."""
    from confluent_kafka import ConsumerGroupTopicPartitions

    admin = _admin(settings, timeout)
    try:
        futures = admin.list_consumer_group_offsets(
            [ConsumerGroupTopicPartitions(group)], request_timeout=timeout
        )
        answer = futures[group].result(timeout=timeout)
    except Exception as exc:
        raise LagError(
            f"cannot read the offsets of group {group!r}: {_reason(exc, timeout)}"
        ) from exc
    return {
        (tp.topic, tp.partition): tp.offset
        for tp in answer.topic_partitions
        if tp.error is None and tp.offset >= 0
    }


def live_members(
    settings: Settings, groups: Sequence[str], timeout: float = 10.0
) -> dict[str, int]:
    """Members of each group (DescribeGroups), counted from the member list, not the state.

    aiokafka's raw DescribeGroups is used because librdkafka 2.16 parses Tansu's answer into
    an empty member list (the member id lands in the assignor field); one group per request,
    because Tansu's answer for several groups does not decode.
    """
    if not groups:
        return {}

    async def describe() -> dict[str, int]:
        from aiokafka.admin import AIOKafkaAdminClient

        client = AIOKafkaAdminClient(
            bootstrap_servers=settings.kafka_bootstrap,
            request_timeout_ms=int(timeout * 1000),
            **settings.aiokafka_config(),
        )
        await client.start()
        counts: dict[str, int] = {}
        try:
            for group in groups:  # one group per request: Tansu mis-encodes several
                for response in await client.describe_consumer_groups([group]):
                    for described in response.groups:
                        error_code, group_id, members = described[0], described[1], described[5]
                        if error_code == 0 and group_id:
                            counts[group_id] = len(members)
        finally:
            await client.close()
        return counts

    try:
        counts = asyncio.run(asyncio.wait_for(describe(), timeout))
    except Exception as exc:
        raise LagError(f"cannot describe consumer groups: {_reason(exc, timeout)}") from exc
    return {g: counts.get(g, 0) for g in groups}


def remove_members(settings: Settings, group: str, timeout: float = 10.0) -> list[str]:
    """Make every member of ``group`` leave it (LeaveGroup on each one's behalf); their ids.

    For a consumer that stopped but is still listed: Tansu keeps an aiokafka (Faust) member
    after the consumer's own LeaveGroup on shutdown and never expires it, so the group is never
    empty again. The same request sent here with the member id DescribeGroups lists removes it.
    A consumer that is really running rejoins at its next heartbeat: use only on stopped ones.
    """

    async def leave() -> list[str]:
        from aiokafka.admin import AIOKafkaAdminClient
        from aiokafka.protocol.group import LeaveGroupRequest

        client = AIOKafkaAdminClient(
            bootstrap_servers=settings.kafka_bootstrap,
            request_timeout_ms=int(timeout * 1000),
            **settings.aiokafka_config(),
        )
        await client.start()
        removed: list[str] = []
        try:
            node = await client.find_coordinator(group)
            for response in await client.describe_consumer_groups([group]):
                for described in response.groups:
                    if described[0] != 0 or described[1] != group:
                        continue
                    for member in described[5]:
                        answer = await client._client.send(
                            node, LeaveGroupRequest(group, member[0])
                        )
                        if answer.error_code:
                            raise LagError(
                                f"member {member[0]} of {group!r} did not leave: "
                                f"error {answer.error_code}"
                            )
                        removed.append(str(member[0]))
        finally:
            await client.close()
        return removed

    try:
        return asyncio.run(asyncio.wait_for(leave(), timeout))
    except LagError:
        raise
    except Exception as exc:
        raise LagError(f"cannot remove the members of group {group!r}: {exc}") from exc


def partitions_of(
    settings: Settings, topics: Iterable[str], timeout: float = 10.0
) -> list[TopicPart]:
    """Every partition of the topics (Metadata); a topic that does not exist has none."""
    try:
        md = _admin(settings, timeout).list_topics(timeout=timeout)
    except Exception as exc:
        raise LagError(f"cannot read the topics' metadata: {_reason(exc, timeout)}") from exc
    out: list[TopicPart] = []
    for topic in sorted(set(topics)):
        meta = md.topics.get(topic)
        if meta is None or meta.error is not None:
            continue
        out.extend((topic, p) for p in sorted(meta.partitions))
    return out


def list_offsets(
    settings: Settings, partitions: Sequence[TopicPart], *, latest: bool, timeout: float = 10.0
) -> dict[TopicPart, int]:
    """ListOffsets(latest or earliest) as the broker answers it (uncorrected)."""
    from confluent_kafka import TopicPartition
    from confluent_kafka.admin import OffsetSpec

    if not partitions:
        return {}
    spec = OffsetSpec.latest() if latest else OffsetSpec.earliest()
    admin = _admin(settings, timeout)
    try:
        futures = admin.list_offsets(
            {TopicPartition(t, p): spec for t, p in partitions}, request_timeout=timeout
        )
        return {
            (tp.topic, tp.partition): f.result(timeout=timeout).offset for tp, f in futures.items()
        }
    except Exception as exc:
        raise LagError(f"cannot list offsets: {_reason(exc, timeout)}") from exc


def log_end_offsets(
    settings: Settings, partitions: Sequence[TopicPart], timeout: float = 10.0
) -> dict[TopicPart, int]:
    """The log-end offset of each partition, correct on Tansu and on Apache Kafka.

    Take the high watermark ``hw`` from ListOffsets(latest). When ``hw > 0``, fetch from
    ``hw - 1``: on Kafka that is the last record; on Tansu, whose ``hw`` is the last batch's
    base offset + 1, it is the first record of the last batch, and the fetch returns the
    whole batch. Read until the client reports the partition's end (its fetch responses
    carry the true high watermark) or a deadline passes; the log end is the largest of
    ``hw``, the last record offset + 1 and the end offset the fetch reported.
    """
    from confluent_kafka import Consumer, KafkaError, TopicPartition

    hws = list_offsets(settings, partitions, latest=True, timeout=timeout)
    ends = dict(hws)
    pending = {tp for tp, hw in hws.items() if hw > 0}
    if not pending:
        return ends
    consumer = Consumer(
        settings.kafka_config(
            **{
                # assign() only: the probe never joins nor commits to this group
                "group.id": f"govstream-lag-probe-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "enable.partition.eof": True,
                "fetch.wait.max.ms": 100,
                "log_level": 0,
            }
        )
    )
    deadline = time.monotonic() + timeout
    try:
        consumer.assign([TopicPartition(t, p, hws[(t, p)] - 1) for t, p in sorted(pending)])
        while pending and time.monotonic() < deadline:
            for msg in consumer.consume(10_000, timeout=0.2):
                tp = (str(msg.topic()), int(msg.partition() or 0))
                offset = int(msg.offset() or 0)
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        ends[tp] = max(ends[tp], offset)
                        pending.discard(tp)
                    continue
                ends[tp] = max(ends[tp], offset + 1)
        for t, p in pending:  # deadline: keep what we read, and what the fetches reported
            _, high = consumer.get_watermark_offsets(TopicPartition(t, p), cached=True)
            ends[(t, p)] = max(ends[(t, p)], high)
    finally:
        consumer.close()
    return ends


#: Topics the pipeline's own consumer group (``GOVSTREAM_APP_ID``) reads: its agents' inputs
#: (``pipelines.metrics.AGENT_OF_TOPIC``; ``report-routed`` is the reports agent's hop).
PIPELINE_INPUTS: tuple[str, ...] = (
    contracts.REPORT,
    "report-routed",
    contracts.FORM_SUBMISSION,
    contracts.ALERT,
)


def input_topics(settings: Settings, group: str) -> tuple[str, ...]:
    """Topics ``group`` reads whether or not it has committed on them yet: the pipeline's
    inputs (:data:`PIPELINE_INPUTS`) for the app's group, none for another group (its
    committed offsets are all that says what it reads)."""
    return PIPELINE_INPUTS if group == settings.app_id else ()


def observe_groups(
    settings: Settings,
    groups: Sequence[str],
    timeout: float = 10.0,
    topics: Mapping[str, Iterable[str]] | None = None,
) -> tuple[dict[str, dict[TopicPart, Observation]], dict[str, int]]:
    """One observation of every partition of every topic a group committed on or reads
    (``topics``: group -> topics; default :func:`input_topics`).

    A partition without a commit counts from the log start (the group's
    ``auto.offset.reset=earliest``): its lag is log end - log start, all of its records, so a
    topic nobody consumed yet shows its full lag instead of nothing (issue 17, item 1). A
    topic that does not exist has no partition. Raises :class:`LagError` when Kafka cannot be
    asked."""
    now = time.time()
    committed = {g: committed_offsets(settings, g, timeout) for g in groups}
    reads = {
        g: {t for t, _ in committed[g]}
        | set(input_topics(settings, g) if topics is None else topics.get(g, ()))
        for g in groups
    }
    parts = partitions_of(settings, set().union(*reads.values()) if reads else set(), timeout)
    ends = log_end_offsets(settings, parts, timeout)
    starts = list_offsets(settings, parts, latest=False, timeout=timeout)
    members = live_members(settings, groups, timeout)
    observed: dict[str, dict[TopicPart, Observation]] = {}
    for group, offsets in committed.items():
        group_topics = reads[group]
        obs: dict[TopicPart, Observation] = {}
        for tp in parts:
            if tp[0] not in group_topics:
                continue
            # a partition without a commit is read from its start (auto.offset.reset=earliest)
            position = offsets.get(tp, starts.get(tp))
            obs[tp] = Observation(now, position, ends.get(tp))
        for tp, offset in offsets.items():
            if tp not in obs:  # committed on a partition the metadata no longer shows
                obs[tp] = Observation(now, offset, None, error="partition not in metadata")
        observed[group] = obs
    return observed, members


def alter_offsets(
    settings: Settings, group: str, offsets: Mapping[TopicPart, int], timeout: float = 10.0
) -> None:
    """Commit ``offsets`` for ``group`` (AlterConsumerGroupOffsets = OffsetCommit as a
    non-member). The broker refuses it while the group has members (UNKNOWN_MEMBER_ID)."""
    from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition

    if not offsets:
        return
    admin = _admin(settings, timeout)
    request = ConsumerGroupTopicPartitions(
        group, [TopicPartition(t, p, o) for (t, p), o in sorted(offsets.items())]
    )
    try:
        futures = admin.alter_consumer_group_offsets([request], request_timeout=timeout)
        answer = futures[group].result(timeout=timeout)
    except Exception as exc:
        raise LagError(f"cannot commit offsets for group {group!r}: {exc}") from exc
    failed = [
        f"{tp.topic}[{tp.partition}]: {tp.error}" for tp in answer.topic_partitions if tp.error
    ]
    if failed:
        raise LagError(f"broker refused offsets for group {group!r}: {'; '.join(failed)}")
