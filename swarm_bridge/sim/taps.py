"""Taps: read what reached a broker (MQTT subscription, Kafka consumer), for demos, tests and checks; built on
transport's clients (`MqttClient`, `KafkaTail`), which alone import the client libraries."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from swarm_bridge.codec.chunks import Reassembler, is_chunk, joined
from swarm_bridge.codec.compression import compression_of, records_of
from swarm_bridge.codec.errors import CodecError
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
        self.chunks: Reassembler[None] = Reassembler()  # chunked records put together (split=True); drops counted
        self.undecodable = 0  # messages whose compression could not be undone (kept as they came)
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

    def drain(self) -> list[TappedRecord]:
        """What arrived since the last drain, forgotten here (a long run reads its records in parts)."""
        with self._lock:
            records, self.records = self.records, []
        return records

    def close(self) -> None:
        self._client.close()

    def _on_message(self, message: Message) -> None:
        """Every record of the message: a record batch counts as the records it carries; chunks count as the
        record they make once it is whole, compressed records as they were before compression."""
        arrived = time.time_ns()
        payload = message.payload
        topic, retained = message.topic, message.retain
        if self._split and is_chunk(payload):
            with self._lock:
                whole = joined(self.chunks.add(topic, payload, None, time.monotonic()))
            if not whole:
                return
            payload = whole[0]
        try:
            compression = compression_of(message.packet.user_properties) if self._split else None
            if compression is not None:
                payloads = records_of(payload, compression, max_size=1 << 30)
            else:
                payloads = split_batch(payload, max_payload=0) if self._split else [payload]
        except CodecError:
            self.undecodable += 1
            payloads = [payload]  # kept as it came, for the reader to refuse with its own reason
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
        self.chunks: Reassembler[None] = Reassembler()  # records the gateway wrote as chunks, put together
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
            if is_chunk(value):
                whole = joined(self.chunks.add(f"{topic}/{key!r}", value, None, time.monotonic()))
                if not whole:
                    continue
                value = whole[0]
            with self._lock:
                self.records.append(TappedRecord(topic, key, value, False, time.time_ns()))

