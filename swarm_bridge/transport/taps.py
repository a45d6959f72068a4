"""Taps: read what reached a broker (MQTT subscription, Kafka consumer), for demos, tests and checks."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

from swarm_bridge.codec.errors import FramingError
from swarm_bridge.codec.framing import split_batch
from swarm_bridge.transport.kafka_log import kafka_log
from swarm_bridge.transport.link import LinkError
from swarm_bridge.transport.mqtt_client import Message, MqttClient, MqttOptions

__all__ = ["KafkaTap", "MqttTap", "TappedRecord"]


@dataclass(frozen=True)
class TappedRecord:
    """One record as it arrived: where (MQTT or Kafka topic), key (Kafka only), payload."""

    topic: str
    key: bytes | None
    payload: bytes
    retained: bool = False
    arrived_ns: int = 0  # time.time_ns() when the tap got it


class MqttTap:
    """An MQTT 5 subscriber (`MqttClient`) collecting every message on `patterns` (QoS 1) on its network thread."""

    def __init__(self, *, host: str, port: int, patterns: Sequence[str], timeout_s: float = 10.0,
                 client_id: str | None = None, session_expiry_s: int = 0, split: bool = True) -> None:
        """With `session_expiry_s` > 0 the session persists, so the broker keeps messages for the tap
        while it is disconnected (across a broker restart too, with broker persistence). `split=False`: one
        TappedRecord per MQTT message, its payload as it came (a batch unsplit). Raises a `LinkError` when
        the broker cannot be reached or refuses the subscription."""
        self._split = split
        self.records: list[TappedRecord] = []
        self._lock = threading.Lock()
        options = MqttOptions(host=host, port=port, client_id=client_id or f"tap-{uuid.uuid4().hex[:8]}",
                              clean_start=session_expiry_s == 0, session_expiry_s=session_expiry_s,
                              connect_timeout_s=timeout_s, reconnect_max_s=2.0)
        self._client = MqttClient(options, on_message=self._on_message, auto_ack=True)
        self._client.start(wait=False)
        error = self._client.first_attempt(timeout_s)
        if error is not None:
            self._client.close(disconnect=False)
            raise error
        try:
            # MQTT's default: only what the broker's retained store hands out is flagged retained
            self._client.subscribe(list(patterns), qos=1, timeout_s=timeout_s, retain_as_published=False)
        except LinkError:
            self.close()
            raise

    def snapshot(self) -> list[TappedRecord]:
        with self._lock:
            return list(self.records)

    def close(self) -> None:
        self._client.close()

    def _on_message(self, message: Message) -> None:
        """Every record of the message: a record batch counts as the records it carries."""
        arrived = time.time_ns()
        payload = message.payload
        try:
            payloads = split_batch(payload, max_payload=0) if self._split else [payload]
        except FramingError:
            payloads = [payload]  # kept as it came, for the reader to refuse with its own reason
        topic, retained = message.topic, message.retain
        with self._lock:
            self.records.extend(TappedRecord(topic, None, p, retained, arrived) for p in payloads)


class KafkaTap:
    """A Kafka consumer (no group) reading every partition of `topics`, in a thread.

    It starts at each partition's end as of opening (what is produced from now on), or at the
    beginning with `from_start=True`.
    """

    def __init__(self, *, bootstrap: str, topics: Sequence[str], from_start: bool = False,
                 timeout_s: float = 30.0) -> None:
        self.records: list[TappedRecord] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
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
        self._thread = threading.Thread(target=self._run, name="kafka-tap", daemon=True)
        self._thread.start()

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

    def snapshot(self) -> list[TappedRecord]:
        with self._lock:
            return list(self.records)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._consumer.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            msg = self._consumer.poll(0.1)
            if msg is None or msg.error():
                continue
            with self._lock:
                self.records.append(TappedRecord(msg.topic() or "", msg.key(), msg.value() or b"", False,
                                                 time.time_ns()))

