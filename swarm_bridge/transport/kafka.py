"""Kafka uplink on confluent-kafka: idempotent producer, acks=all, record key = robot id."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from confluent_kafka import Consumer, KafkaError, Message, Producer

from swarm_bridge.transport.link import Done, Inbound, LinkBusy, LinkError, LinkStats
from swarm_bridge.transport.probes import kafka_login_problem

__all__ = ["KafkaLink"]

log = logging.getLogger(__name__)


class KafkaLink:
    """One producer; `send` queues, delivery reports count acks and failures."""

    def __init__(self, *, bootstrap: str, client_id: str, connect_timeout_s: float = 10.0,
                 delivery_timeout_s: float = 300.0, settings: Mapping[str, str] | None = None,
                 login_fix: str = "check the Kafka login settings against the cluster's users") -> None:
        """`settings`: extra librdkafka settings (security: SASL login, TLS) for the producer and consumers;
        `login_fix`: the fix a refused login names (the config key to check)."""
        self.endpoint = f"kafka://{bootstrap}"
        self.stats = LinkStats()
        self.on_inflight_lost: Callable[[], None] | None = None  # never called: librdkafka keeps retrying
        self._timeout = connect_timeout_s
        self._down_until = 0.0
        self._bootstrap, self._client_id = bootstrap, client_id
        self._settings, self._login_fix = dict(settings or {}), login_fix
        self._consumers: list[tuple[Consumer, threading.Thread]] = []
        self._stop = threading.Event()
        self.inbound_errors = 0
        self._producer = Producer(
            {
                **self._settings,
                "bootstrap.servers": bootstrap,
                "client.id": client_id,
                "acks": "all",
                "enable.idempotence": True,
                # Kafka's (Java) partitioner: a robot's records land on its shard's partition (routing/sharding.py)
                "partitioner": "murmur2_random",
                "linger.ms": 5,
                "compression.type": "lz4",
                "logger": log,
                "error_cb": self._on_error,
                "message.timeout.ms": int(delivery_timeout_s * 1000),
            }
        )

    def connect(self, *, require: bool = True) -> None:
        """Fetch cluster metadata once, so an unreachable cluster fails here (when `require`) and not at
        the first send; else warn, and librdkafka keeps trying. A refused login (SASL or TLS) always fails:
        waiting does not fix a wrong password."""
        problem = kafka_login_problem(self._bootstrap, settings=self._settings, timeout_s=self._timeout)
        if problem is not None and problem.startswith("login refused"):
            raise LinkError(self.endpoint, problem, self._login_fix)
        if problem is not None:
            if not require:
                log.warning("%s: %s; spooling until it answers", self.endpoint, problem)
                self._down_until = time.monotonic() + 1.0
                return
            raise LinkError(self.endpoint, problem, "start Kafka or fix uplink host/port")
        log.info("%s: connected", self.endpoint)

    @property
    def connected(self) -> bool:
        """False for a second after all brokers were reported down or a delivery failed, else True."""
        return time.monotonic() >= self._down_until

    def send(self, destination: str, key: bytes, payload: bytes, *, qos: int = 1, retain: bool | None = None,
             on_done: Done | None = None) -> None:
        """Queue one record for Kafka topic `destination` (`qos` and `retain` are MQTT's, ignored: acks=all).

        Raises LinkBusy when librdkafka's local queue is full."""
        def delivered(err: KafkaError | None, msg: Message | Any) -> None:
            self._delivered(err, msg)
            if on_done is not None:
                on_done(err is None)

        try:
            self._producer.produce(destination, value=payload, key=key, on_delivery=delivered)
        except BufferError:
            self._producer.poll(0)
            raise LinkBusy(f"{self.endpoint}: local producer queue full") from None
        self.stats.add(sent=1)
        self._producer.poll(0)

    def describe(self, destination: str, *, content_type: str, user_properties: tuple[tuple[str, str], ...] = (),
                 retain: bool = False) -> None:
        """Nothing to do: Kafka records say what they are by their Confluent framing (schema id)."""

    def subscribe(self, destination: str, on_record: Inbound) -> None:
        """Consume Kafka topic `destination` in this robot's own group, committing after each record was handled."""
        consumer = Consumer({
            **self._settings,
            "bootstrap.servers": self._bootstrap,
            "group.id": f"{self._client_id}.{destination}",
            "client.id": self._client_id,
            "auto.offset.reset": "latest",
            "enable.auto.commit": False,
            "logger": log,
        })
        consumer.subscribe([destination])
        thread = threading.Thread(target=self._consume, args=(consumer, on_record), daemon=True,
                                  name=f"kafka-in-{destination}")
        self._consumers.append((consumer, thread))
        thread.start()

    def _consume(self, consumer: Consumer, on_record: Inbound) -> None:
        while not self._stop.is_set():
            msg = consumer.poll(0.1)
            if msg is None or msg.error():
                continue
            try:
                on_record(msg.topic() or "", msg.key(), msg.value() or b"")
            except Exception:  # a malformed record must never stop the consumer
                self.inbound_errors += 1
                log.exception("%s: handling a record of %s failed", self.endpoint, msg.topic())
            consumer.commit(message=msg, asynchronous=True)

    def service(self) -> None:
        """Serve delivery reports and errors (librdkafka calls back only from poll)."""
        self._producer.poll(0)

    def flush(self, timeout: float) -> int:
        """Wait for delivery reports; returns how many records are still unconfirmed."""
        self._producer.flush(timeout)
        return self.stats.pending

    def close(self) -> None:
        self._stop.set()
        for consumer, thread in self._consumers:
            thread.join(timeout=5)
            consumer.close()
        self._producer.flush(self._timeout)

    def _on_error(self, err: KafkaError) -> None:
        if err.code() in (KafkaError._ALL_BROKERS_DOWN, KafkaError._TRANSPORT, KafkaError._AUTHENTICATION):
            self._down_until = time.monotonic() + 1.0
        log.warning("%s: %s", self.endpoint, err)

    def _delivered(self, err: KafkaError | None, msg: Message | Any) -> None:
        if err is not None:
            self._down_until = time.monotonic() + 1.0
            self.stats.add(failed=1)
            log.warning("%s: delivery to %s failed: %s", self.endpoint, msg.topic(), err)
        else:
            self.stats.add(acked=1)
