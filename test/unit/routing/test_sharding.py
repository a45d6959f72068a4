"""Sharding, pure: Kafka's murmur2 and the same shard every time (the partition Kafka itself picks:
integration/transport/test_sharding.py)."""

from __future__ import annotations

import ctypes
from collections import Counter

import pytest

from swarm_bridge.routing import murmur2, partition_of, shard_of

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
