"""The dedup windows read back from the Kafka topics the up rules write: their whole tail at start, and one robot's
partition again when one of its streams is new to this gateway or starts a new run.

A gateway that crashed after Kafka confirmed records but before it acked their MQTT messages gets those
messages again; reading the last records of each partition back first means they are known duplicates. A robot
that comes from another hub (its bridge restarted there with its spool) sends again what it never saw acknowledged,
which that hub's gateway may already have written; reading its partition back before its first record here is
judged makes those known duplicates too (test_two_hubs.py).
"""

from __future__ import annotations

import logging
import time

from swarm_bridge.codec.errors import CodecError
from swarm_bridge.config.gateway import GatewayConfig
from swarm_bridge.gateway.dedup import Dedup
from swarm_bridge.gateway.heads import Head, avro_head, json_head
from swarm_bridge.gateway.rules import UpRules
from swarm_bridge.routing.sharding import murmur2
from swarm_bridge.transport.kafka_clients import (
    Consumer,
    KafkaError,
    KafkaException,
    TopicPartition,
    kafka_consumer,
    kafka_error,
)
from swarm_bridge.transport.link import LinkError

__all__ = ["DedupTail", "record_head"]

log = logging.getLogger(__name__)

_LOOK_UP_PAUSE_S = 10.0  # after a look-up Kafka did not answer, records are judged without one this long
_PARTITIONS_TTL_S = 30.0  # a topic's partition count is asked again after this long (topics may grow)

Where = tuple[str, int]  # (topic, partition)


def record_head(value: bytes | None) -> Head | None:
    """The head of a record as the gateway writes it (Confluent Avro or JSON); None for anything else."""
    if not value:
        return None
    try:
        if value[0] == 0 and len(value) > 5:
            return avro_head(value[5:])
        if value[:1] == b"{":
            return json_head(value)
    except CodecError:
        return None
    return None


# A partition that just came to be (its topic made or grown a moment ago by another service) answers these
# until its leader has settled.
_SETTLING = (KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE, KafkaError.UNKNOWN_TOPIC_OR_PART)


def _watermarks(consumer: Consumer, partition: TopicPartition, config: GatewayConfig) -> tuple[int, int]:
    """A partition's (low, high) offsets, asked again while its leader settles; LinkError after the timeout."""
    timeout = config.kafka.connect_timeout_s
    deadline = time.monotonic() + timeout
    while True:
        try:
            low, high = consumer.get_watermark_offsets(partition, timeout=timeout)
            return int(low), int(high)
        except KafkaException as exc:
            error = kafka_error(exc)
            if time.monotonic() > deadline or error is None or error.code() not in _SETTLING:
                raise LinkError(f"kafka://{config.kafka.bootstrap}", f"no offsets of {partition.topic}"
                                f"[{partition.partition}] ({exc})", "check the broker log") from None
            time.sleep(0.2)


class DedupTail:
    """Feeds `dedup` the heads of records already in Kafka: `rebuild()` at start (the last
    `dedup.rebuild_records` of every partition of the up topics), `look_up(topic, key, since_ns)` later (the
    records written to that key's partition since it was last read, as many at most). Off with rebuild_records 0."""

    def __init__(self, dedup: Dedup, config: GatewayConfig, rules: UpRules) -> None:
        self.dedup, self.config, self.rules = dedup, config, rules
        self.per_partition = config.dedup.rebuild_records
        self._consumer: Consumer | None = None
        self._next: dict[Where, int] = {}  # the offset after the last one read back, per partition
        self._read_ns: dict[Where, int] = {}  # time.monotonic_ns() when the last read of a partition began
        self._paused_until = 0.0
        self.look_ups = 0  # partitions read back after start
        self.looked_up_records = 0  # records they held
        self.look_up_ns = 0  # time the up path spent on them
        self._topics: dict[str, tuple[int, float]] = {}  # topic -> (partitions, asked again after monotonic)

    @property
    def consumer(self) -> Consumer:
        """One assign-only consumer for the gateway's life (no group membership, nothing committed)."""
        if self._consumer is None:
            config = self.config
            self._consumer = kafka_consumer({
                **config.kafka.security.client_settings(),
                "bootstrap.servers": config.kafka.bootstrap,
                "group.id": f"{config.gateway_id}-dedup-rebuild",
                "enable.auto.commit": False,
                "enable.partition.eof": True,
                "auto.offset.reset": "earliest",
            }, log)
        return self._consumer

    def rebuild(self, *, timeout_s: float = 60.0) -> int:
        """Read back the last `rebuild_records` records of every partition of the up topics; returns how many were
        read. LinkError when Kafka does not answer."""
        if self.per_partition == 0:
            return 0
        started, began_ns = time.monotonic(), time.monotonic_ns()
        config, consumer = self.config, self.consumer
        try:
            metadata = consumer.list_topics(timeout=config.kafka.connect_timeout_s)
        except KafkaException as exc:
            raise LinkError(f"kafka://{config.kafka.bootstrap}", f"no cluster metadata ({exc})",
                            "start Kafka or fix kafka.bootstrap") from None
        skip = {config.kafka.dlq_topic, *(rule.kafka_topic for rule in config.down)}
        patterns = self.rules.kafka_topic_patterns()
        topics = sorted(t for t in metadata.topics if t not in skip and not t.startswith("__")
                        and any(p.match(t.replace(".", "/")) is not None for p in patterns))
        ends: dict[Where, tuple[int, int]] = {}
        for topic in topics:
            for partition in metadata.topics[topic].partitions:
                low, high = _watermarks(consumer, TopicPartition(topic, partition), config)
                ends[(topic, partition)] = (max(low, high - self.per_partition), high)
                self._read_ns[(topic, partition)] = began_ns
        read = self._read(ends, timeout_s)
        log.info("dedup rebuilt from %d records of %d topics in %.1f s (%d streams known)", read, len(topics),
                 time.monotonic() - started, len(self.dedup))
        return read

    def look_up(self, topic: str, key: bytes | None, since_ns: int) -> None:
        """Read back what was written to `key`'s partition of `topic` since this gateway last read it, unless a
        read that began after `since_ns` (when the record that asks arrived) already did. A robot new here may come
        from another hub, whose gateway wrote records it will send again. Kafka silent: logged, skipped a while."""
        if self.per_partition == 0 or key is None or time.monotonic() < self._paused_until:
            return
        began = time.monotonic_ns()
        config = self.config
        try:
            partitions = self._partitions(topic)
            if not partitions:
                return  # not made yet: nothing written to it
            where = (topic, (murmur2(key) & 0x7FFFFFFF) % partitions)
            if self._read_ns.get(where, 0) >= since_ns:
                return
            self._read_ns[where] = began
            low, high = _watermarks(self.consumer, TopicPartition(*where), config)
            read = self._read({where: (max(low, high - self.per_partition, self._next.get(where, 0)), high)},
                              config.kafka.connect_timeout_s)
        except (KafkaException, LinkError) as exc:
            self._paused_until = time.monotonic() + _LOOK_UP_PAUSE_S
            log.warning("dedup: reading %s back failed (%s); records new to this gateway are judged without it "
                        "for %g s", topic, exc, _LOOK_UP_PAUSE_S)
            return
        self.look_ups += 1
        self.looked_up_records += read
        self.look_up_ns += time.monotonic_ns() - began
        log.debug("dedup: read back %d records of %s[%d] for a stream new to this gateway", read, *where)

    def _partitions(self, topic: str) -> int:
        """How many partitions `topic` has (0: none yet), asked again every _PARTITIONS_TTL_S."""
        known = self._topics.get(topic)
        if known is not None and time.monotonic() < known[1]:
            return known[0]
        metadata = self.consumer.list_topics(topic, timeout=self.config.kafka.connect_timeout_s).topics.get(topic)
        count = 0 if metadata is None or metadata.error is not None else len(metadata.partitions)
        self._topics[topic] = (count, time.monotonic() + _PARTITIONS_TTL_S)
        return count

    def _read(self, spans: dict[Where, tuple[int, int]], timeout_s: float) -> int:
        """Feed the dedup the heads of the records in each partition's [start, end); returns how many were read.
        Where each partition was read to is kept, so the next look-up reads only what came after."""
        ends = {where: end for where, (start, end) in spans.items() if start < end}
        read = self._consume(spans, ends, timeout_s) if ends else 0
        for where, (start, end) in spans.items():
            self._next[where] = max(self._next.get(where, 0), start if where in ends else end)
        if ends:
            log.warning("dedup: %d partitions not read back to their end within %g s", len(ends), timeout_s)
        return read

    def _consume(self, spans: dict[Where, tuple[int, int]], ends: dict[Where, int], timeout_s: float) -> int:
        """Read the partitions of `ends` from their span's start until each reaches its end (taken off `ends`)."""
        consumer, dedup, progress = self.consumer, self.dedup, self._next
        consumer.assign([TopicPartition(topic, partition, spans[(topic, partition)][0]) for topic, partition in ends])
        read = 0
        deadline = time.monotonic() + timeout_s
        try:
            while ends and time.monotonic() < deadline:
                for msg in consumer.consume(1000, 0.5):
                    where = (msg.topic() or "", msg.partition() or 0)
                    err = msg.error()
                    if err is not None:
                        if err.code() == KafkaError._PARTITION_EOF:
                            ends.pop(where, None)
                        continue
                    read += 1
                    offset = msg.offset() or 0
                    progress[where] = max(progress.get(where, 0), offset + 1)
                    head = record_head(msg.value())
                    if head is not None:
                        dedup.admit(head.robot_id, head.stream, head.seq)
                    if offset + 1 >= ends.get(where, 0):
                        ends.pop(where, None)
        finally:
            consumer.unassign()
        return read

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None
