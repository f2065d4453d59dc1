"""Kafka's admin answers the pipeline needs: groups, committed and log-end offsets, members.

The lag evaluator's observations (:mod:`pipelines.lag`) come from :func:`observe_groups`; table
recovery (``agents/recovery.py``) reads exact log ends with :func:`log_end_offsets`; ``govstream
replay`` and ``govstream topic read`` move and read offsets.

Only APIs Apache Kafka and Tansu both answer: ListGroups, OffsetFetch, Metadata,
ListOffsets (earliest/latest), Fetch and DescribeGroups (members only; state strings are
not used, Tansu reports "Unknown"). Tansu's ListOffsets(latest) is wrong when a partition's
last record batch holds several records (it answers that batch's base offset + 1), so
:func:`log_end_offsets` corrects it by fetching from ``high watermark - 1``.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pipelines import contracts
from pipelines.errors import GovstreamError
from pipelines.lag import Observation, TopicPart
from pipelines.settings import Settings


class LagError(GovstreamError):
    """Kafka could not be asked about groups or offsets."""


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
