"""Kafka uplink on confluent-kafka: idempotent producer, acks=all, record key = robot id."""

from __future__ import annotations

import logging
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from swarm_bridge.transport.link import LinkError, LinkStats

__all__ = ["KafkaLink"]

log = logging.getLogger(__name__)


class KafkaLink:
    """One producer; `send` queues, delivery reports count acks and failures."""

    def __init__(self, *, bootstrap: str, client_id: str, connect_timeout_s: float = 10.0) -> None:
        self.endpoint = f"kafka://{bootstrap}"
        self.stats = LinkStats()
        self._timeout = connect_timeout_s
        self._producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "client.id": client_id,
                "acks": "all",
                "enable.idempotence": True,
                "linger.ms": 5,
                "compression.type": "lz4",
                "logger": log,
            }
        )

    def connect(self) -> None:
        """Fetch cluster metadata once, so an unreachable cluster fails here and not at first send."""
        try:
            self._producer.list_topics(timeout=self._timeout)
        except KafkaException as exc:
            raise LinkError(
                self.endpoint, f"no cluster metadata within {self._timeout:g} s ({exc})",
                "start Kafka or fix uplink host/port",
            ) from None
        log.info("%s: connected", self.endpoint)

    def send(self, destination: str, key: bytes, payload: bytes, *, qos: int = 1) -> None:
        """Queue one record for Kafka topic `destination`; `qos` is ignored (always acks=all)."""
        while True:
            try:
                self._producer.produce(destination, value=payload, key=key, on_delivery=self._delivered)
                break
            except BufferError:
                self._producer.poll(0.1)  # local queue full: serve delivery reports, then retry
        self.stats.add(sent=1)
        self._producer.poll(0)

    def flush(self, timeout: float) -> int:
        """Wait for delivery reports; returns how many records are still unconfirmed."""
        self._producer.flush(timeout)
        return self.stats.pending

    def close(self) -> None:
        self._producer.flush(self._timeout)

    def _delivered(self, err: KafkaError | None, msg: Message | Any) -> None:
        if err is not None:
            self.stats.add(failed=1)
            log.warning("%s: delivery to %s failed: %s", self.endpoint, msg.topic(), err)
        else:
            self.stats.add(acked=1)
