"""Taps: read what reached a broker (MQTT subscription, Kafka consumer), for demos, tests and checks; built on
transport's clients (`MqttClient`, `KafkaTail`), which alone import the client libraries."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from swarm_bridge.codec.errors import FramingError
from swarm_bridge.codec.framing import split_batch
from swarm_bridge.transport.kafka_tail import KafkaTail
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
        self._tail = KafkaTail(bootstrap=bootstrap, topics=topics, from_start=from_start, timeout_s=timeout_s)
        self._thread = threading.Thread(target=self._run, name="kafka-tap", daemon=True)
        self._thread.start()

    def snapshot(self) -> list[TappedRecord]:
        with self._lock:
            return list(self.records)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._tail.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            got = self._tail.poll(0.1)
            if got is None:
                continue
            topic, key, value = got
            with self._lock:
                self.records.append(TappedRecord(topic, key, value, False, time.time_ns()))

