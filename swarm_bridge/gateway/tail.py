"""The dedup windows read back from the Kafka topics the up rules write: their whole tail at start, and what was
written since before a record the windows cannot place (a stream new to this gateway, a new run, a gap).

A gateway that crashed after Kafka confirmed records but before it acked their MQTT messages gets those
messages again; reading the last records of each partition back first means they are known duplicates. A robot
that comes from another hub (its bridge restarted there with its spool) sends again what it never saw acknowledged,
which that hub's gateway may already have written; reading the topics back before its first record here is
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
_CONSUME_WAIT_S = 0.005  # consume() waits this long for a full batch: a look-up of a few records must not wait more
_PARTITIONS_TTL_S = 30.0  # the up topics' partitions are listed again after this long (topics come and grow)
_LATEST = -1  # ListOffsets' timestamp for "the end of the partition": offsets_for_times gives every end in one go

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
    `dedup.rebuild_records` of every partition of the up topics), `look_up(since_ns)` later (what was written to
    them since they were last read, as many at most per partition). Off with rebuild_records 0."""

    def __init__(self, dedup: Dedup, config: GatewayConfig, rules: UpRules) -> None:
        self.dedup, self.config, self.rules = dedup, config, rules
        self.per_partition = config.dedup.rebuild_records
        self._consumer: Consumer | None = None
        self._next: dict[Where, int] = {}  # the offset after the last one read back, per partition
        self._partitions: list[Where] = []  # the up topics' partitions, listed again every _PARTITIONS_TTL_S
        self._topics: set[str] = set()  # ... and their topics
        self._listed_until = 0.0
        self._read_ns = 0  # time.monotonic_ns() when the last read-back began
        self._paused_until = 0.0
        self.look_ups = 0  # read-backs after start
        self.looked_up_records = 0  # records they read
        self.look_up_ns = 0  # time the up path spent on them

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
                # a fetch at a partition's end is answered at once: a long-polled one would hold the next
                # look-up's offsets request behind it on the connection (500 ms by default)
                "fetch.wait.max.ms": 10,
            }, log)
        return self._consumer

    def rebuild(self, *, timeout_s: float = 60.0) -> int:
        """Read back the last `rebuild_records` records of every partition of the up topics; returns how many were
        read. LinkError when Kafka does not answer."""
        if self.per_partition == 0:
            return 0
        started, self._read_ns = time.monotonic(), time.monotonic_ns()
        try:
            partitions = self._list()
        except KafkaException as exc:
            raise LinkError(f"kafka://{self.config.kafka.bootstrap}", f"no cluster metadata ({exc})",
                            "start Kafka or fix kafka.bootstrap") from None
        read = self._read(self._tails(partitions), timeout_s)
        log.info("dedup rebuilt from %d records of %d topics in %.1f s (%d streams known)", read,
                 len({topic for topic, _partition in partitions}), time.monotonic() - started, len(self.dedup))
        return read

    def look_up(self, since_ns: int, topic: str) -> None:
        """Read back what was written to the up topics since they were last read (at most `rebuild_records` per
        partition), unless a read-back that began after `since_ns` (when the record that asks arrived) did: a
        robot new here may come from another hub, whose gateway wrote records it sends again. One batched offsets
        request, then only the new records; the topics are listed again when `topic` (the asking record's) is not
        among them. Kafka silent: logged, and records are judged without it for 10 s."""
        if self.per_partition == 0 or self._read_ns >= since_ns or time.monotonic() < self._paused_until:
            return
        began = self._read_ns = time.monotonic_ns()
        config = self.config
        try:
            if time.monotonic() >= self._listed_until or topic not in self._topics:
                self._list()
            known = [where for where in self._partitions if where in self._next]
            spans = self._tails([where for where in self._partitions if where not in self._next])
            if known:
                ends = self.consumer.offsets_for_times([TopicPartition(topic, partition, _LATEST)
                                                        for topic, partition in known],
                                                       timeout=config.kafka.connect_timeout_s)
                spans.update({(end.topic, end.partition): (max(self._next[(end.topic, end.partition)],
                                                               end.offset - self.per_partition), end.offset)
                              for end in ends if end.offset >= 0})
            read = self._read(spans, config.kafka.connect_timeout_s)
        except (KafkaException, LinkError) as exc:
            self._paused_until = time.monotonic() + _LOOK_UP_PAUSE_S
            log.warning("dedup: reading the up topics back failed (%s); records new to this gateway are judged "
                        "without it for %g s", exc, _LOOK_UP_PAUSE_S)
            return
        self.look_ups += 1
        self.looked_up_records += read
        self.look_up_ns += time.monotonic_ns() - began

    def _list(self) -> list[Where]:
        """The partitions of the Kafka topics the up rules write (not the DLQ, not the command topics)."""
        config = self.config
        metadata = self.consumer.list_topics(timeout=config.kafka.connect_timeout_s)
        skip = {config.kafka.dlq_topic, *(rule.kafka_topic for rule in config.down)}
        patterns = self.rules.kafka_topic_patterns()
        topics = sorted(t for t in metadata.topics if t not in skip and not t.startswith("__")
                        and any(p.match(t.replace(".", "/")) is not None for p in patterns))
        self._partitions = [(topic, partition) for topic in topics for partition in metadata.topics[topic].partitions]
        self._topics = set(topics)
        self._listed_until = time.monotonic() + _PARTITIONS_TTL_S
        return self._partitions

    def _tails(self, partitions: list[Where]) -> dict[Where, tuple[int, int]]:
        """The span of the last `rebuild_records` records of each partition: (start, end) offsets."""
        spans = {}
        for where in partitions:
            low, high = _watermarks(self.consumer, TopicPartition(*where), self.config)
            spans[where] = (max(low, high - self.per_partition), high)
        return spans

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
                for msg in consumer.consume(1000, _CONSUME_WAIT_S):
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
