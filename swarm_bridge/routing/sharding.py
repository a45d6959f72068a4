"""Robots to shards, shards to partitions: Kafka's own murmur2 hash, so every client agrees.

Why this scheme (and not a ring of virtual nodes or jump hash over instances):

- A shard is the unit a coordinator instance owns. There are many more shards than instances (the
  shards are the "virtual nodes"); instances come and go by taking whole shards through the Kafka
  consumer group, so a robot never changes shard when an instance dies or joins.
- robot -> shard is exactly Kafka's default partitioner (murmur2 of the key, sign bit cleared, modulo
  the count). A producer configured with `partitioner=murmur2_random` (librdkafka) or the Java default
  puts a robot's records in its shard's partition by itself: robots and gateways need no code of ours.
- shard -> partition is the identity: the sharded topics (commands, task status, task submissions,
  task events) have exactly `shards` partitions, checked at start.
- The shard count is fixed for the life of a fleet, as Kafka partition counts are: modulo would move
  most robots if it changed (jump hash would move only 1/n, but then Kafka's partitioner and ours
  would disagree, which costs more than it saves). Choose it large (e.g. 4x the most instances).
"""

from __future__ import annotations

from swarm_bridge.routing.errors import RouteError

__all__ = ["murmur2", "partition_of", "shard_of"]

_SEED = 0x9747B28C
_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (32-bit, seed 0x9747b28c) of `data`, as an unsigned 32-bit int."""
    length = len(data)
    h = (_SEED ^ length) & _MASK
    end = length - length % 4
    for i in range(0, end, 4):
        k = data[i] | data[i + 1] << 8 | data[i + 2] << 16 | data[i + 3] << 24
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    rest = length % 4
    if rest == 3:
        h ^= data[end + 2] << 16
    if rest >= 2:
        h ^= data[end + 1] << 8
    if rest >= 1:
        h ^= data[end]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h


def shard_of(key: str, shards: int) -> int:
    """The shard of a robot id (or task id): Kafka's default partition of that key among `shards`."""
    if shards <= 0:
        raise RouteError(f"shards must be > 0 (got {shards})", "configure at least one shard")
    return (murmur2(key.encode("utf-8")) & 0x7FFFFFFF) % shards


def partition_of(shard: int, partitions: int) -> int:
    """The partition of a shard in a sharded topic: the identity; the topic must have one per shard."""
    if not 0 <= shard < partitions:
        raise RouteError(f"shard {shard} has no partition in a topic of {partitions} partitions",
                         "sharded topics need exactly one partition per shard: create the topic with as many "
                         "partitions as shards")
    return shard
