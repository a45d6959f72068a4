"""Kafka uplink on confluent-kafka: idempotent producer, acks=all, record key = robot id; down routes read only the
partition of their robot's key, from the committed offset or, the first time, from `lookback_s` ago."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from confluent_kafka import OFFSET_END, Consumer, KafkaError, KafkaException, Message, TopicPartition

from swarm_bridge.transport.kafka_clients import keyed_producer
from swarm_bridge.transport.kafka_log import kafka_log
from swarm_bridge.transport.link import Done, Inbound, LinkBusy, LinkError, LinkStats
from swarm_bridge.transport.probes import kafka_login_problem

__all__ = ["KafkaLink", "KeyedReader"]

log = logging.getLogger(__name__)

_RETRY_S = 1.0  # between tries to place a reader (topic missing, cluster unreachable)
_RECHECK_S = 10.0  # between looks at the partition count: a grown topic moves the robot's key to another partition


@dataclass(frozen=True)
class KeyedReader:
    """How a robot reads a topic keyed by robot ids: only the partition its own `key` hashes to (`partition(key,
    partition count)`, Kafka's own partitioner), without a consumer group's rebalancing; from its committed offset,
    or on its first start from the first record stamped at most `lookback_s` ago (older records are past use;
    deadline and command id decide which of the rest still apply)."""

    key: str
    partition: Callable[[str, int], int]
    lookback_s: float


class KafkaLink:
    """One producer; `send` queues, delivery reports count acks and failures."""

    served = True  # librdkafka hands out delivery reports only from poll (service)

    def __init__(self, *, bootstrap: str, client_id: str, connect_timeout_s: float = 10.0,
                 delivery_timeout_s: float = 300.0, settings: Mapping[str, str] | None = None,
                 login_fix: str = "check the Kafka login settings against the cluster's users",
                 reader: KeyedReader | None = None) -> None:
        """`settings`: extra librdkafka settings (security: SASL login, TLS) for the producer and consumers;
        `login_fix`: the fix a refused login names (the config key to check); `reader`: how `subscribe` reads."""
        self.endpoint = f"kafka://{bootstrap}"
        self.stats = LinkStats()
        self.on_inflight_lost: Callable[[], None] | None = None  # never called: librdkafka keeps retrying
        self._timeout = connect_timeout_s
        self._down_until = 0.0
        self._bootstrap, self._client_id = bootstrap, client_id
        self._settings, self._login_fix = dict(settings or {}), login_fix
        self._reader = reader
        self._readers: list[threading.Thread] = []  # each owns its consumer and closes it when it ends
        self._placed: dict[str, int] = {}  # topic -> the partition count its reader was placed by
        self._stop = threading.Event()
        self.inbound_errors = 0
        self._producer = keyed_producer(bootstrap=bootstrap, client_id=client_id, logger=log,
                                        delivery_timeout_s=delivery_timeout_s, security=self._settings,
                                        on_error=self._on_error)

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

    def subscribe(self, destination: str, on_record: Inbound, *, with_properties: bool = False) -> None:
        """Read Kafka topic `destination`: only the reader's partition, committing after each record was handled;
        `with_properties`: `on_record` takes the record's headers too, as (name, text) pairs."""
        def deliver(msg: Any) -> None:
            if with_properties:
                headers = [(k, (v or b"").decode(errors="replace")) for k, v in msg.headers() or ()]
                on_record(msg.topic() or "", msg.key(), msg.value() or b"", headers)
            else:
                on_record(msg.topic() or "", msg.key(), msg.value() or b"")

        if self._reader is None:
            raise LinkError(self.endpoint, f"cannot read {destination}: no reader key given",
                            "open the link with reader=KeyedReader(robot id, ...)")
        consumer = Consumer({
            **self._settings,
            "bootstrap.servers": self._bootstrap,
            "group.id": f"{self._client_id}.{destination}",  # holds the committed offset; never joined (assign)
            "client.id": self._client_id,
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "logger": kafka_log(log),
        })
        thread = threading.Thread(target=self._consume, args=(consumer, destination, self._reader, deliver),
                                  daemon=True, name=f"kafka-in-{destination}")
        self._readers.append(thread)
        thread.start()

    def _place(self, consumer: Consumer, topic: str, reader: KeyedReader) -> bool:
        """Assign the reader's partition of `topic` at its start offset; False (to retry) while the topic is
        missing or the cluster does not answer."""
        try:
            found = consumer.list_topics(topic, timeout=self._timeout).topics.get(topic)
            if found is None or found.error is not None or not found.partitions:
                return False
            count = len(found.partitions)
            partition = reader.partition(reader.key, count)
            (committed,) = consumer.committed([TopicPartition(topic, partition)], timeout=self._timeout)
            if committed.offset >= 0:
                start, since = committed.offset, "its committed offset"
            else:
                stamp_ms = int((time.time() - reader.lookback_s) * 1000)
                (at,) = consumer.offsets_for_times([TopicPartition(topic, partition, stamp_ms)], timeout=self._timeout)
                start = at.offset if at.offset >= 0 else OFFSET_END
                since = f"the first record of the last {reader.lookback_s:g} s (first start)"
        except KafkaException as exc:
            log.debug("%s: cannot place the reader of %s yet: %s", self.endpoint, topic, exc)
            return False
        consumer.assign([TopicPartition(topic, partition, start)])
        log.info("%s: reading %s partition %d of %d (key %s) from %s", self.endpoint, topic, partition, count,
                 reader.key, since)
        self._placed[topic] = count
        return True

    def _grown(self, consumer: Consumer, topic: str) -> bool:
        """True when `topic` has a partition count other than the one the reader was placed by (a coordinator
        grew it to the fleet's shard count), so the robot's key now lands in another partition."""
        try:
            found = consumer.list_topics(topic, timeout=self._timeout).topics.get(topic)
        except KafkaException:
            return False
        return found is not None and found.error is None and len(found.partitions) != self._placed.get(topic)

    def _consume(self, consumer: Consumer, topic: str, reader: KeyedReader, deliver: Callable[[Any], None]) -> None:
        try:
            self._read(consumer, topic, reader, deliver)
        finally:
            consumer.close()

    def _read(self, consumer: Consumer, topic: str, reader: KeyedReader, deliver: Callable[[Any], None]) -> None:
        waiting_logged = False
        while not self._place(consumer, topic, reader):
            if not waiting_logged:
                log.warning("%s: topic %s not found or cluster not reachable; trying every %g s", self.endpoint,
                            topic, _RETRY_S)
                waiting_logged = True
            if self._stop.wait(_RETRY_S):
                return
        recheck = time.monotonic() + _RECHECK_S
        while not self._stop.is_set():
            if time.monotonic() >= recheck:
                recheck = time.monotonic() + _RECHECK_S
                if self._grown(consumer, topic):
                    with contextlib.suppress(KafkaException):
                        consumer.commit(asynchronous=False)
                    log.info("%s: %s now has another partition count; placing the reader again", self.endpoint,
                             topic)
                    while not self._place(consumer, topic, reader):
                        if self._stop.wait(_RETRY_S):
                            return
            msg = consumer.poll(0.1)
            if msg is None or msg.error():
                continue
            try:
                deliver(msg)
            except Exception:  # a malformed record must never stop the consumer
                self.inbound_errors += 1
                log.exception("%s: handling a record of %s failed", self.endpoint, msg.topic())
            consumer.commit(message=msg, asynchronous=True)
        # what was handled stays handled across a restart; KafkaException: nothing consumed since the last commit,
        # or the cluster is gone (the next start reads those records again)
        with contextlib.suppress(KafkaException):
            consumer.commit(asynchronous=False)

    def service(self) -> None:
        """Serve delivery reports and errors (librdkafka calls back only from poll)."""
        self._producer.poll(0)

    def flush(self, timeout: float) -> int:
        """Wait for delivery reports; returns how many records are still unconfirmed."""
        self._producer.flush(timeout)
        return self.stats.pending

    def close(self) -> None:
        self._stop.set()
        for thread in self._readers:
            thread.join(timeout=self._timeout + 5)  # a reader may be waiting on a metadata request
        self._producer.flush(self._timeout)

    def _on_error(self, err: KafkaError) -> None:
        """Link state only: the error itself is logged (once, then counted) by kafka_log."""
        if err.code() in (KafkaError._ALL_BROKERS_DOWN, KafkaError._TRANSPORT, KafkaError._AUTHENTICATION):
            self._down_until = time.monotonic() + 1.0

    def _delivered(self, err: KafkaError | None, msg: Message | Any) -> None:
        if err is not None:
            self._down_until = time.monotonic() + 1.0
            self.stats.add(failed=1)
            log.warning("%s: delivery to %s failed: %s", self.endpoint, msg.topic(), err)
        else:
            self.stats.add(acked=1)
