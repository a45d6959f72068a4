"""Rebuild the duplicate windows at start from the tail of the Kafka topics the up rules write.

A gateway that crashed after Kafka confirmed records but before it acked their MQTT messages gets those
messages again; reading the last records of each partition back first means they are known duplicates.
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

__all__ = ["rebuild_dedup", "record_head"]

log = logging.getLogger(__name__)


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


def rebuild_dedup(dedup: Dedup, config: GatewayConfig, rules: UpRules, *, timeout_s: float = 60.0) -> int:
    """Feed the last `dedup.rebuild_records` records of every partition of the up topics to `dedup`;
    returns how many records were read. LinkError when Kafka does not answer."""
    per_partition = config.dedup.rebuild_records
    if per_partition == 0:
        return 0
    started = time.monotonic()
    consumer = kafka_consumer({
        **config.kafka.security.client_settings(),
        "bootstrap.servers": config.kafka.bootstrap,
        "group.id": f"{config.gateway_id}-dedup-rebuild",
        "enable.auto.commit": False,
        "enable.partition.eof": True,
        "auto.offset.reset": "earliest",
    }, log)
    try:
        try:
            metadata = consumer.list_topics(timeout=config.kafka.connect_timeout_s)
        except KafkaException as exc:
            raise LinkError(f"kafka://{config.kafka.bootstrap}", f"no cluster metadata ({exc})",
                            "start Kafka or fix kafka.bootstrap") from None
        skip = {config.kafka.dlq_topic, *(rule.kafka_topic for rule in config.down)}
        patterns = rules.kafka_topic_patterns()
        topics = sorted(t for t in metadata.topics if t not in skip and not t.startswith("__")
                        and any(p.match(t.replace(".", "/")) is not None for p in patterns))
        assignment, ends = [], {}
        for topic in topics:
            for partition in metadata.topics[topic].partitions:
                low, high = _watermarks(consumer, TopicPartition(topic, partition), config)
                start = max(low, high - per_partition)
                if start < high:
                    assignment.append(TopicPartition(topic, partition, start))
                    ends[(topic, partition)] = high
        if not assignment:
            return 0
        consumer.assign(assignment)
        read = 0
        deadline = time.monotonic() + timeout_s
        while ends and time.monotonic() < deadline:
            for msg in consumer.consume(1000, 0.5):
                where = (msg.topic() or "", msg.partition() or 0)
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        ends.pop(where, None)
                    continue
                read += 1
                head = record_head(msg.value())
                if head is not None:
                    dedup.admit(head.robot_id, head.stream, head.seq)
                if (msg.offset() or 0) + 1 >= ends.get(where, 0):
                    ends.pop(where, None)
        if ends:
            log.warning("dedup rebuild: %d partitions not read to their end within %g s", len(ends), timeout_s)
        log.info("dedup rebuilt from %d records of %d topics in %.1f s (%d streams known)", read, len(topics),
                 time.monotonic() - started, len(dedup))
        return read
    finally:
        consumer.close()
