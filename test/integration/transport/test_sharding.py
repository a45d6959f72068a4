"""Sharding: Kafka's murmur2, the same shard every time, and the same partition Kafka itself picks."""

from __future__ import annotations

import ctypes
import uuid
from collections import Counter

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from swarm_bridge.brokers import Kafka
from swarm_bridge.routing import murmur2, partition_of, shard_of
from swarm_bridge.transport import ensure_kafka_topics

# Kafka's own test vectors (clients UtilsTest.testMurmur2), as signed 32-bit ints.
KAFKA_VECTORS = [
    (b"21", -973932308),
    (b"foobar", -790332482),
    (b"a-little-bit-long-string", -985981536),
    (b"a-little-bit-longer-string", -1486304829),
    (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
    (b"abc", 479470107),
]


@pytest.mark.parametrize(("data", "expected"), KAFKA_VECTORS)
def test_murmur2_matches_kafka(data: bytes, expected: int) -> None:
    assert ctypes.c_int32(murmur2(data)).value == expected


def test_shard_is_stable_and_in_range() -> None:
    robots = [f"amr_{i:04d}" for i in range(2000)]
    first = [shard_of(r, 16) for r in robots]
    assert first == [shard_of(r, 16) for r in robots]
    assert set(first) == set(range(16))
    # Spread: no shard holds more than twice its fair share of 2000 robots.
    assert max(Counter(first).values()) < 2 * 2000 / 16


def test_shard_and_partition_refuse_bad_counts() -> None:
    with pytest.raises(ValueError, match="shards must be > 0"):
        shard_of("amr_1", 0)
    with pytest.raises(ValueError, match="one partition per shard"):
        partition_of(8, 8)
    assert partition_of(7, 8) == 7


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
