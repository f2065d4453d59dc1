"""The embedded broker speaks Kafka to the real confluent-kafka client."""

from __future__ import annotations

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from pipelines.settings import Settings

pytestmark = pytest.mark.integration


def create_topic(settings: Settings, name: str, partitions: int) -> None:
    admin = AdminClient(settings.kafka_config())
    for future in admin.create_topics([NewTopic(name, partitions, 1)]).values():
        future.result(timeout=10)


def test_topic_creation_is_visible_in_metadata(stack: Settings, unique: str) -> None:
    name = f"created-{unique}"
    create_topic(stack, name, 3)
    topics = AdminClient(stack.kafka_config()).list_topics(timeout=10).topics
    assert name in topics
    assert len(topics[name].partitions) == 3


def test_produce_and_consume_100k_messages(stack: Settings, unique: str) -> None:
    topic, count = f"bulk-{unique}", 100_000
    create_topic(stack, topic, 4)
    producer = Producer(
        stack.kafka_config(**{"linger.ms": 20, "batch.size": 1_000_000, "enable.idempotence": True})
    )
    failures: list[str] = []

    def on_delivery(err: object, _msg: object) -> None:
        if err is not None:
            failures.append(str(err))

    for i in range(count):
        producer.produce(
            topic, key=str(i % 97), value=f"{i:06d}".encode() * 50, on_delivery=on_delivery
        )
        if i % 10_000 == 0:
            producer.poll(0)
    assert producer.flush(60) == 0
    assert failures == []

    consumer = Consumer(
        stack.kafka_config(
            **{
                "group.id": f"g-{unique}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            }
        )
    )
    consumer.subscribe([topic])
    seen: set[int] = set()
    empty_polls = 0
    try:
        while len(seen) < count and empty_polls < 30:
            batch = consumer.consume(10_000, timeout=1.0)
            if not batch:
                empty_polls += 1
                continue
            for msg in batch:
                assert msg.error() is None, msg.error()
                seen.add(int(msg.value()[:6]))
        consumer.commit(asynchronous=False)
        committed = consumer.committed([TopicPartition(topic, p) for p in range(4)], timeout=10)
    finally:
        consumer.close()
    assert len(seen) == count
    assert sum(tp.offset for tp in committed) == count
