"""Taps: read what reached a broker (MQTT subscription, Kafka consumer), for demos, tests and checks."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as paho
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from swarm_bridge.codec.errors import FramingError
from swarm_bridge.codec.framing import split_batch
from swarm_bridge.transport.kafka_log import kafka_log
from swarm_bridge.transport.link import LinkError

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
    """An MQTT 5 subscriber collecting every message on `patterns` (QoS 1) in a background thread."""

    def __init__(self, *, host: str, port: int, patterns: Sequence[str], timeout_s: float = 10.0,
                 client_id: str | None = None, session_expiry_s: int = 0, split: bool = True) -> None:
        """With `session_expiry_s` > 0 the session persists, so the broker keeps messages for the tap
        while it is disconnected (across a broker restart too, with broker persistence). `split=False`: one
        TappedRecord per MQTT message, its payload as it came (a batch unsplit)."""
        self._split = split
        self.records: list[TappedRecord] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self._patterns = list(patterns)
        self._client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id or f"tap-{uuid.uuid4().hex[:8]}",
                                   protocol=paho.MQTTv5)
        self._client.reconnect_delay_set(min_delay=1, max_delay=2)
        connect_props = Properties(PacketTypes.CONNECT)
        connect_props.SessionExpiryInterval = session_expiry_s
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = lambda *_a: self._subscribed.set()
        self._client.on_message = self._on_message
        try:
            self._client.connect(host, port, clean_start=session_expiry_s == 0, properties=connect_props)
        except OSError as exc:
            raise LinkError(f"mqtt://{host}:{port}", f"cannot connect ({exc})", "start the broker") from None
        self._client.loop_start()
        if not self._subscribed.wait(timeout_s):
            self.close()
            raise LinkError(f"mqtt://{host}:{port}", "no SUBACK", "check the broker is an MQTT 5 broker")

    def snapshot(self) -> list[TappedRecord]:
        with self._lock:
            return list(self.records)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def _on_connect(self, client: Any, _u: Any, _f: Any, _reason: Any, _p: Any) -> None:
        client.subscribe([(pattern, 1) for pattern in self._patterns])

    def _on_message(self, _c: Any, _u: Any, message: Any) -> None:
        """Every record of the message: a record batch counts as the records it carries."""
        arrived = time.time_ns()
        try:
            payloads = split_batch(message.payload, max_payload=0) if self._split else [bytes(message.payload)]
        except FramingError:
            payloads = [bytes(message.payload)]  # kept as it came, for the reader to refuse with its own reason
        with self._lock:
            self.records.extend(TappedRecord(message.topic, None, payload, bool(message.retain), arrived)
                                for payload in payloads)


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

