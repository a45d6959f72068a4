"""Reading every partition of some Kafka topics without a consumer group, from their end (or beginning): the
consumer under the taps that check what reached Kafka (`sim/taps.py`)."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

from swarm_bridge.transport.kafka_log import kafka_log
from swarm_bridge.transport.link import LinkError

__all__ = ["KafkaTail"]


class KafkaTail:
    """A consumer assigned every partition of `topics`: at each partition's end as of opening (what is
    produced from now on), or at the beginning with `from_start=True`. LinkError if a topic does not exist."""

    def __init__(self, *, bootstrap: str, topics: Sequence[str], from_start: bool = False,
                 timeout_s: float = 30.0) -> None:
        self._consumer = Consumer({
            "bootstrap.servers": bootstrap,
            "group.id": f"tap-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "logger": kafka_log(logging.getLogger(__name__)),
        })
        metadata = self._consumer.list_topics(timeout=timeout_s).topics
        missing = [t for t in topics if t not in metadata or metadata[t].error]
        if missing:
            self._consumer.close()
            raise LinkError(f"kafka://{bootstrap}", f"no such topics: {missing}", "create them first")
        assignment = []
        for topic in topics:
            for partition in metadata[topic].partitions:
                offset = OFFSET_BEGINNING
                if not from_start:
                    offset = self._end_offset(TopicPartition(topic, partition), timeout_s)
                assignment.append(TopicPartition(topic, partition, offset))
        self._consumer.assign(assignment)

    def _end_offset(self, partition: TopicPartition, timeout_s: float) -> int:
        """The partition's high watermark; retried while a new topic's leader is still being elected."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                _low, high = self._consumer.get_watermark_offsets(partition, timeout=timeout_s)
                return int(high)
            except KafkaException:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def poll(self, timeout_s: float) -> tuple[str, bytes | None, bytes] | None:
        """The next record as (topic, key, value), or None if none came within `timeout_s` (errors skipped)."""
        msg = self._consumer.poll(timeout_s)
        if msg is None or msg.error():
            return None
        return msg.topic() or "", msg.key(), msg.value() or b""

    def close(self) -> None:
        self._consumer.close()
