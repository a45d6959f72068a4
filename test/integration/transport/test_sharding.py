"""Sharding: Kafka's murmur2, the same shard every time, and the same partition Kafka itself picks."""

from __future__ import annotations

import uuid

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from swarm_bridge.brokers import Kafka
from swarm_bridge.routing import shard_of
from swarm_bridge.transport import ensure_kafka_topics

# Kafka's own test vectors (clients UtilsTest.testMurmur2), as signed 32-bit ints.


@pytest.mark.integration
def test_kafka_murmur2_partitioner_puts_robots_on_their_shard(kafka: Kafka) -> None:
    """A producer with librdkafka's murmur2 partitioner lands each robot's records in its shard's partition."""
    topic, shards = f"shard-check-{uuid.uuid4().hex[:6]}", 6
    ensure_kafka_topics(kafka.bootstrap, [topic], partitions=shards)
    producer = Producer({"bootstrap.servers": kafka.bootstrap, "partitioner": "murmur2_random"})
    robots = [f"robot_{i}" for i in range(60)]
    for robot in robots:
        producer.produce(topic, key=robot.encode(), value=b"x")
    assert producer.flush(30) == 0
    consumer = Consumer({"bootstrap.servers": kafka.bootstrap, "group.id": topic, "auto.offset.reset": "earliest"})
    consumer.assign([TopicPartition(topic, p, 0) for p in range(shards)])
    seen: dict[str, int] = {}
    for _ in range(200):
        for msg in consumer.consume(100, timeout=0.2):
            if not msg.error():
                seen[(msg.key() or b"").decode()] = msg.partition() or 0
        if len(seen) == len(robots):
            break
    consumer.close()
    assert seen == {r: shard_of(r, shards) for r in robots}
