"""Kafka topics of the pipeline: create the missing ones, describe what exists.

``ensure_topics`` is idempotent: topics that exist already (also ones another process creates
at the same moment) are left alone, whatever their partition count, and only the names it
created are returned. It speaks the plain Kafka admin protocol (CreateTopics, Metadata), so it
works the same on the embedded Tansu broker and on Apache Kafka.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from pipelines import contracts
from pipelines.errors import ConfigError, GovstreamError
from pipelines.settings import Settings

#: The worker's own hops for repeat complaints (agents/reports.py), JSON values: each named,
#: categorised complaint keyed by the reporter's salted hash, and each repeat found keyed by
#: report_id. Named ``<app id>-<suffix>`` (:func:`app_topic`), under the prefix of the app's
#: changelogs (and of the production ACLs, deploy/kafka/init.sh).
PERSON_COMPLAINTS = "person-complaints"
REPEAT_OF = "repeat-of"
APP_HOPS = (PERSON_COMPLAINTS, REPEAT_OF)


def app_topic(settings: Settings, suffix: str) -> str:
    """The name of the app's own topic ``suffix``: ``<app id>-<suffix>``."""
    return f"{settings.app_id}-{suffix}"


class TopicError(GovstreamError):
    """The broker could not be reached, or refused to create a topic."""


@dataclass(frozen=True)
class TopicInfo:
    """A topic as the broker's metadata describes it."""

    name: str
    partitions: int
    replicas: int

    def as_dict(self) -> dict[str, object]:
        return {"name": self.name, "partitions": self.partitions, "replicas": self.replicas}


def _admin(settings: Settings) -> AdminClient:
    return AdminClient(settings.kafka_config())


def _existing(admin: AdminClient, timeout: float) -> dict[str, TopicInfo]:
    try:
        metadata = admin.list_topics(timeout=timeout)
    except KafkaException as exc:
        raise TopicError(f"cannot list topics at the Kafka bootstrap servers: {exc}") from exc
    out: dict[str, TopicInfo] = {}
    for name, topic in metadata.topics.items():
        if topic.error is not None:
            continue
        replicas = max((len(p.replicas) for p in topic.partitions.values()), default=0)
        out[name] = TopicInfo(name, len(topic.partitions), replicas)
    return out


def describe_topics(
    settings: Settings, topics: Iterable[str] | None = None, *, timeout: float = 10.0
) -> dict[str, TopicInfo]:
    """Existing topics (all of them, or those of ``topics`` that exist) by name."""
    existing = _existing(_admin(settings), timeout)
    if topics is None:
        return dict(sorted(existing.items()))
    return {name: existing[name] for name in topics if name in existing}


def ensure_topics(
    settings: Settings,
    topics: Iterable[str] | None = None,
    *,
    extra: Iterable[str] = (),
    partitions: int | None = None,
    replication_factor: int = 1,
    timeout: float = 15.0,
) -> list[str]:
    """Create the missing topics of ``topics`` (default: every pipeline topic) plus ``extra``.

    ``extra`` adds internal topics (e.g. a worker's repartition topic). Partitions default to
    ``settings.topic_partitions``. Returns the names it created, in the order given; an existing
    topic is fine and is not changed.
    """
    if isinstance(topics, str | int):
        raise TypeError("topics is a list of topic names; give partitions= by keyword")
    names = list(dict.fromkeys([*(contracts.TOPICS if topics is None else topics), *extra]))
    count = settings.topic_partitions if partitions is None else partitions
    if count < 1:
        raise ConfigError(f"partitions must be at least 1, got {count}")
    if replication_factor < 1:
        raise ConfigError(f"replication factor must be at least 1, got {replication_factor}")
    for name in names:
        if not name or len(name) > 249 or any(not (c.isalnum() or c in "._-") for c in name):
            raise ConfigError(f"invalid topic name {name!r} (letters, digits, '.', '_', '-')")
    admin = _admin(settings)
    missing = [n for n in names if n not in _existing(admin, timeout)]
    if not missing:
        return []
    futures = admin.create_topics(
        [NewTopic(n, count, replication_factor) for n in missing], request_timeout=timeout
    )
    created: list[str] = []
    for name in missing:
        try:
            futures[name].result(timeout=timeout)
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            if isinstance(error, KafkaError) and error.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                continue  # created by someone else in the meantime
            raise TopicError(f"cannot create topic {name!r}: {exc}") from exc
        except Exception as exc:  # a timeout of the future itself
            raise TopicError(f"cannot create topic {name!r}: {exc}") from exc
        created.append(name)
    return created
