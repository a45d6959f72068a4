"""The up direction: MQTT (our MQTT 5 client; plain, split or shared subscriptions; manual ack) -> Kafka (acks=all).

Two threads: the MQTT client's network thread reads (many packets per socket read, at most one read per 1 ms
while messages flow) and queues each message;
the gateway's thread takes the queued messages in batches, produces their records and serves the producer's
delivery callbacks, which complete a message once Kafka confirmed all its records; the completed ones are acked
together after the callbacks (`MqttClient.ack_all`: PUBACKs leave in arrival order, one wake-up of the network
thread). Flow control is MQTT 5's Receive Maximum: the broker stops sending once that many messages are
unacked, so while Kafka is down or slow the gateway holds at most that many and the rest wait in the
broker's session. Above `max_inflight_records` unconfirmed records new records are held, not produced. Records of
`kafka.prompt_topics` (task status) go by a second producer with a short linger; telemetry's batches wait longer.

Order: when librdkafka gives a record up, newer records must not reach Kafka before it is produced again. So the
gateway closes a barrier: it produces nothing new, takes back what librdkafka still queues (purge, never what is
on the wire), waits until every record in flight is resolved, then produces the given-up and taken-back records
again in their first order, before anything newer. A given-up record may still be in Kafka (it was on the wire
when the link went), so its new copy can follow it: at-least-once, never a newer record before an older one.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from swarm_bridge.codec.chunks import CHUNK_MAGIC, Reassembler, split_record
from swarm_bridge.codec.compression import CompressionError, compression_of, records_of
from swarm_bridge.codec.errors import FramingError
from swarm_bridge.config.gateway import GatewayConfig
from swarm_bridge.gateway.dedup import BELOW_WINDOW, NEW, Dedup
from swarm_bridge.gateway.ledger import Headers, InFlight, Ledger, MqttMessage
from swarm_bridge.gateway.metrics import GatewayMetrics
from swarm_bridge.gateway.mqtt_session import gateway_client, start_session
from swarm_bridge.gateway.rules import UpRoute, UpRules
from swarm_bridge.gateway.schemas import SchemaTrouble
from swarm_bridge.gateway.split import division
from swarm_bridge.gateway.translate import DeadLetter, KafkaRecord, Translation, Translator, unroutable
from swarm_bridge.transport.kafka_clients import (
    ANY_PARTITION,
    ErrorSink,
    KafkaError,
    KafkaException,
    Producer,
    keyed_producer,
)
from swarm_bridge.transport.link import LinkError
from swarm_bridge.transport.mqtt_client import Message
from swarm_bridge.transport.mqtt_errors import SubscribeRefused

__all__ = ["MqttToKafka", "kafka_producer"]

log = logging.getLogger(__name__)

_BURST = 1024  # MQTT messages taken per loop turn before the producer's delivery callbacks are served
# While records are in flight, a turn starts at most `mqtt.gather_ms` after the last one began (config; default 3):
# messages arriving in between are taken together (one wake-up, one ack batch, one wake-up of the network thread for
# their PUBACKs) instead of a turn per few messages. At most this much latency is added. The MQTT client's network
# thread reads the same way (`read_gather_s`): Mosquitto writes each PUBLISH on its own, and a read per few messages
# cost ~16 us of CPU per message at 20,000/s against ~8.5 with 1 ms between reads (in process, a paced writer);
# 3 ms against 1 took another ~10 % off the gateway's CPU per record at 7,200 msgs/s (docs/fleet-scale.md).
_RETRY_S = 1.0  # wait before asking the registry (or producing a refused dead letter) again
_MAX_TOPICS = 10_000  # Kafka topics whose producer is remembered; the memory restarts beyond
_DLQ_VALUE_MAX = 512 * 1024  # a record Kafka refused goes to the DLQ cut to this (header truncated=true)
# delivery errors after which a record is produced again (behind the order barrier) rather than refused
_GIVEN_BACK = (KafkaError._MSG_TIMED_OUT, KafkaError._PURGE_QUEUE)


LookUp = Callable[[int, str], None]
"""(when the record arrived in monotonic ns, its Kafka topic) -> feed the dedup what the up topics got since they
were last read: asked before judging a record the dedup has not `placed` (`tail.DedupTail.look_up`)."""


@dataclass(slots=True)
class _Whole:
    """A record put together from chunks, with the messages of its chunks and its MQTT properties."""

    record: bytes
    messages: list[MqttMessage]
    topic: str
    content_type: str | None
    properties: list[tuple[str, str]] | None


def kafka_producer(config: GatewayConfig, *, suffix: str, error_cb: ErrorSink | None = None,
                   linger_ms: float | None = None) -> Producer:
    """An idempotent, acks=all producer with the config's batching (`linger_ms`: another linger) and compression."""
    kafka = config.kafka
    return keyed_producer(
        bootstrap=kafka.bootstrap, client_id=f"{config.gateway_id}-{suffix}", logger=log,
        delivery_timeout_s=kafka.delivery_timeout_s, linger_ms=kafka.linger_ms if linger_ms is None else linger_ms,
        compression=kafka.compression,
        security=kafka.security.client_settings(), on_error=error_cb,  # librdkafka's lines once each, then counted
        tuning={
            "batch.size": kafka.batch_bytes,
            "queue.buffering.max.messages": min(2 * kafka.max_inflight_records + 10_000, 2_147_483_647),
            "queue.buffering.max.kbytes": 2_097_151,
            "message.max.bytes": max(config.max_payload + 4096, 1_000_000),
            "reconnect.backoff.max.ms": 1000,  # a restarted Kafka is found within a second
        })


class MqttToKafka:
    """The up path of one gateway process; `run_once` turns the loop, `close` drains and disconnects."""

    def __init__(self, config: GatewayConfig, *, rules: UpRules, translator: Translator, dedup: Dedup,
                 metrics: GatewayMetrics, look_up: LookUp | None = None) -> None:
        self.config = config
        self.rules, self.translator, self.dedup, self.metrics = rules, translator, dedup, metrics
        self.look_up = look_up
        self.counts = metrics.counts
        self.ledger = Ledger()
        self.endpoint = f"mqtt://{config.mqtt.host}:{config.mqtt.port}"
        self._held: deque[InFlight] = deque()  # records waiting to be produced, in order
        self._order = itertools.count(1)  # InFlight.order: the order records are first handed to Kafka in
        self._given_back: list[InFlight] = []  # records to produce again once the barrier lifts
        self._barrier = False  # a record was given up: nothing is produced until everything in flight resolved
        self._purge = False  # take back what librdkafka still queues (done from run_once, not a callback)
        self._parked: deque[tuple[Any, MqttMessage]] = deque()  # messages waiting for the registry
        self._parked_until = 0.0
        self._held_until = 0.0  # a refused dead letter waits before it is tried again
        self._other_formats: set[str] = set()  # Kafka topics whose first record in an unread format was named
        self._limit = config.kafka.max_inflight_records
        chunks = config.chunks
        self._max_record = max(int(chunks.max_record_mb * 2**20), config.max_payload)
        self._kafka_chunk = chunks.kafka_chunk_bytes
        self.reassembly: Reassembler[MqttMessage] = Reassembler(
            max_bytes=int(chunks.max_mb * 2**20), max_record_bytes=self._max_record, max_age_s=chunks.max_age_s)
        self._expire_at = 0.0
        self._stopping = False
        self._kafka_down_logged = False
        # filled by the MQTT client's network thread: received messages, and None where a new connection began
        self._inbox: deque[Message | None] = deque()
        self._arrived = threading.Event()
        self._session_present: deque[bool] = deque()  # one per None in _inbox
        self._to_ack: list[MqttMessage] = []  # acked together after the callbacks: one wake-up of the network thread
        self._connections = 0
        self._turn_at = 0.0  # when the last turn began taking messages (monotonic)
        self.division = division(config, rules)
        self._filters = list(self.division.take)
        self.producer = kafka_producer(config, suffix="up", error_cb=self._kafka_error)
        # Records a reader waits for (`kafka.prompt_topics`: task status) go on a producer of their own with a short
        # linger; the rest wait up to `linger_ms` to fill batches. A topic always goes by the same one (order kept).
        self._prompt_topics = tuple(config.kafka.prompt_topics)
        self._gather_s = config.mqtt.gather_ms / 1000
        prompt = kafka_producer(config, suffix="up-prompt", error_cb=self._kafka_error,
                                linger_ms=config.kafka.prompt_linger_ms) if self._prompt_topics else None
        self._producers = [self.producer] if prompt is None else [self.producer, prompt]
        self._producer_of: dict[str, Producer] = {}  # Kafka topic -> the producer its records go by
        self.client = gateway_client(config, "up", on_message=self._queue, on_connect=self._queue_connect,
                                     receive_max=config.mqtt.receive_maximum, read_gather_s=self._gather_s)

    # --- MQTT ------------------------------------------------------------------------------------

    def connect(self) -> None:
        """Connect (persistent session, Receive Maximum) and subscribe; LinkError if unreachable or refused."""
        start_session(self.client)
        timeout_s = self.config.mqtt.connect_timeout_s
        try:
            self.client.subscribe(self._filters, qos=1, timeout_s=timeout_s)
            if self.division.give_up:  # what an earlier run of this session took and another gateway now takes
                self.client.unsubscribe(self.division.give_up, timeout_s=timeout_s)
        except LinkError:
            self.client.close()
            raise
        self.counts.mqtt_connected = True
        shown = ", ".join(self._filters[:4]) + (f", ... ({len(self._filters)} filters)" if len(self._filters) > 4
                                                else "")
        log.info("%s: connected (up), takes %s; subscribed to %s", self.endpoint, self.division.summary, shown)

    def _queue(self, message: Message) -> None:
        """The client's network thread: queue a received message for the gateway's thread."""
        self._inbox.append(message)
        if not self._arrived.is_set():
            self._arrived.set()

    def _queue_connect(self, session_present: bool) -> None:
        """The client's network thread, before any message of the new connection: mark where it begins."""
        self._session_present.append(session_present)
        self._inbox.append(None)
        self._arrived.set()

    def _pump(self, timeout: float) -> None:
        """Send the acks of the last turn, wait up to `timeout` for MQTT messages, then take up to _BURST of them."""
        if self._to_ack:
            self._send_acks()
        inbox = self._inbox
        if not inbox:
            self._arrived.wait(timeout)
        if inbox and len(inbox) < _BURST and self.counts.inflight:
            rest = self._turn_at + self._gather_s - time.monotonic()
            if rest > 0:
                time.sleep(rest)
        self._turn_at = time.monotonic()
        self._arrived.clear()
        take, now = self._on_message, time.monotonic_ns()  # one clock reading per turn: when these were taken
        for _ in range(min(len(inbox), _BURST)):
            message = inbox.popleft()
            if message is None:
                self._new_connection(self._session_present.popleft())
            else:
                take(message, now)
        connected = self.client.connected
        if connected != self.counts.mqtt_connected:
            self.counts.mqtt_connected = connected
            if connected:
                log.info("%s: connected (up) again", self.endpoint)
            else:
                log.warning("%s: disconnected (up); unacked messages come again after reconnect", self.endpoint)

    def _new_connection(self, session_present: bool) -> None:
        """Messages of the old connection are never acked (the broker sends them again); Mosquitto does not keep
        shared subscriptions over its restart, so a resumed session is subscribed again (a new one, by the client)."""
        self.ledger.new_connection()
        self.reassembly.forget()  # the broker sends the unacked chunks of partial records again, from the first
        self._connections += 1
        if self._connections == 1 or not session_present:
            return
        try:
            self.client.subscribe(self._filters, qos=1, timeout_s=self.config.mqtt.connect_timeout_s)
        except SubscribeRefused as exc:
            log.error("%s", exc)
        except LinkError as exc:
            log.warning("%s: subscribing again failed (%s); trying at the next connection", self.endpoint, exc)

    # --- messages ------------------------------------------------------------------------------

    def _on_message(self, msg: Message, received_ns: int) -> None:
        self.counts.messages += 1
        message = self.ledger.message(msg, msg.qos, received_ns)
        if self._stopping:
            message.epoch = -1  # not acked: the broker sends it again to the next gateway
            return
        if self._parked:
            self._parked.append((msg, message))
            return
        try:
            self._take(msg, message)
        except SchemaTrouble as exc:
            log.warning("%s: schema registry unavailable (%s); holding messages", self.endpoint, exc)
            self._parked.append((msg, message))
            self._parked_until = time.monotonic() + _RETRY_S
            self._set_backpressure(True)

    def _take(self, msg: Message, message: MqttMessage) -> None:
        packet = msg.packet
        topic: str = packet.topic
        payload: bytes = packet.payload
        self.counts.bytes_in += len(payload)
        if payload[:4] == CHUNK_MAGIC:
            self._take_chunk(msg, message)
            return
        route = self.rules.route(topic)
        properties: list[tuple[str, str]] | None = packet.user_properties
        if route is not None and compression_of(properties) is None:
            record = self.translator.avro_record(route, payload)  # the common case, or None
            if record is not None and len(record.value) <= self._kafka_chunk:
                self._emit_record(message, record)
                return
        content_type: str | None = packet.content_type
        translation = self._translate(route, topic, payload, content_type, properties, None)
        self._emit([message], route, topic, content_type, translation)

    def _translate(self, route: UpRoute | None, topic: str, payload: bytes, content_type: str | None,
                   properties: list[tuple[str, str]] | None, limit: int | None) -> Translation:
        if route is None:
            return unroutable(topic, payload)
        try:
            compression = compression_of(properties)
            if compression is None:
                return self.translator.translate(route, payload, content_type, properties or (), limit=limit)
            out = Translation()
            for record in records_of(payload, compression, max_size=self._max_record):
                one = self.translator.translate(route, record, content_type, properties or (), limit=self._max_record)
                out.records += one.records
                out.dead += one.dead
            return out
        except SchemaTrouble:
            raise
        except (CompressionError, FramingError) as exc:
            return Translation([], [DeadLetter("bad_compression", str(exc), topic, payload[:_DLQ_VALUE_MAX])])
        except Exception as exc:  # never die of a message: it goes to the DLQ with what went wrong
            log.exception("%s: translating a message on %s failed", self.endpoint, topic)
            return Translation([], [DeadLetter("internal_error", f"{type(exc).__name__}: {exc}", topic,
                                               payload[:_DLQ_VALUE_MAX])])

    def _take_chunk(self, msg: Message, message: MqttMessage) -> None:
        """One chunk of a large record: held (its message unacked) until the record is whole and in Kafka; a
        record dropped (chunk lost or corrupt, expired, no room) acks its messages and is counted by reason."""
        packet = msg.packet
        self.counts.chunks_in += 1
        for settled in self.reassembly.add(packet.topic, packet.payload, message, time.monotonic()):
            if settled.record is None:
                self._chunks_dropped(settled.reason, settled.ident, settled.tags)
                continue
            self.counts.chunked_records += 1
            whole = _Whole(settled.record, settled.tags, packet.topic, packet.content_type, packet.user_properties)
            if self._parked:  # records wait for the registry: this one after them
                self._parked.append((whole, message))
                continue
            try:
                self._emit_whole(whole)
            except SchemaTrouble as exc:
                log.warning("%s: schema registry unavailable (%s); holding messages", self.endpoint, exc)
                self._parked.append((whole, message))
                self._parked_until = time.monotonic() + _RETRY_S
                self._set_backpressure(True)

    def _emit_whole(self, whole: _Whole) -> None:
        """A record put together from chunks, translated and produced; SchemaTrouble: retried later, as it is."""
        route = self.rules.route(whole.topic)
        translation = self._translate(route, whole.topic, whole.record, whole.content_type, whole.properties,
                                      self._max_record)
        self._emit(whole.messages, route, whole.topic, whole.content_type, translation)

    def _chunks_dropped(self, reason: str | None, ident: tuple[str, str, int], messages: list[MqttMessage]) -> None:
        """A chunked record dropped (reason None: a chunk seen again, nothing lost): its messages are acked."""
        if reason is not None:
            self.counts.chunk_drops[reason] += 1
            what = (f"chunked record {ident[0]}/{ident[1]} seq {ident[2]}" if ident[2] >= 0
                    else f"a damaged chunk on {ident[0]} (its record unknown)")
            log.warning("%s: %s dropped (%s); %d chunked records dropped since start", self.endpoint, what, reason,
                        sum(self.counts.chunk_drops.values()))
        for message in messages:
            if self.ledger.seal(message):
                self._to_ack.append(message)

    def _expire_chunks(self) -> None:
        """Partial records that got no chunk for chunks.max_age_s are dropped (counted), once a second."""
        now = time.monotonic()
        if now >= self._expire_at:
            self._expire_at = now + 1.0
            for settled in self.reassembly.expire(now):
                self._chunks_dropped(settled.reason, settled.ident, settled.tags)

    def _emit(self, messages: list[MqttMessage], route: UpRoute | None, topic: str, content_type: str | None,
              translation: Translation) -> None:
        """Produce the records of `translation`; `messages` (one, or a chunked record's) are acked once Kafka has
        them all. A record above chunks.kafka_chunk_bytes goes to Kafka as chunks."""
        counts = self.counts
        counts.records += len(translation.records) + len(translation.dead)
        ledger, dedup, look_up = self.ledger, self.dedup, self.look_up
        first = messages[-1]
        for record in translation.records:
            head = record.head
            ident = None
            if head is not None:
                ident = head[:3]  # (robot_id, stream, seq)
                if look_up is not None and not dedup.placed(*ident):  # from another hub? what it wrote is known
                    look_up(first.received_ns, record.topic)
                verdict = dedup.admit(*ident)
                if verdict != NEW:
                    counts.duplicates += 1
                    counts.below_window += verdict == BELOW_WINDOW
                    for message in messages:
                        ledger.join(message, ident)
                    continue
            values = [record.value]
            if head is not None and len(record.value) > self._kafka_chunk:
                values = split_record(record.value, robot_id=head.robot_id, stream=head.stream, seq=head.seq,
                                      chunk_bytes=self._kafka_chunk)
                counts.chunks_out += len(values)
            for value in values:
                counts.bytes_out += len(value)
                entry = InFlight(record.topic, record.key, value, None, ident, self._delivered)
                entry.order = next(self._order)
                for message in messages:
                    ledger.expect(message, entry)
                self._send(entry)
        for dead in translation.dead:
            if self._named(dead, route):
                log.warning("%s: dead letter (%s) from %s: %s", self.endpoint, dead.reason, topic, dead.detail)
            entry = InFlight(self.config.kafka.dlq_topic, route.key if route else None,
                             dead.payload[:_DLQ_VALUE_MAX], dead.headers(content_type), None, self._delivered)
            entry.order = next(self._order)
            for message in messages:
                ledger.expect(message, entry)
            self._send(entry)
        for message in messages:
            if ledger.seal(message):
                self._to_ack.append(message)

    def _emit_record(self, message: MqttMessage, record: KafkaRecord) -> None:
        """`_emit` of the common case: one message, one record with a head, not split for Kafka."""
        counts, dedup, ledger = self.counts, self.dedup, self.ledger
        counts.records += 1
        head = record.head
        assert head is not None  # Translator.avro_record gives records with their head
        ident = (head.robot_id, head.stream, head.seq)
        if self.look_up is not None and not dedup.placed(*ident):  # from another hub? what it wrote is known
            self.look_up(message.received_ns, record.topic)
        verdict = dedup.admit(*ident)
        if verdict == NEW:
            counts.bytes_out += len(record.value)
            entry = InFlight(record.topic, record.key, record.value, None, ident, self._delivered)
            entry.order = next(self._order)
            ledger.expect(message, entry)
            self._send(entry)
        else:
            counts.duplicates += 1
            counts.below_window += verdict == BELOW_WINDOW
            ledger.join(message, ident)
        if ledger.seal(message):
            self._to_ack.append(message)

    def _send(self, entry: InFlight) -> None:
        if self._held or self._barrier or self.counts.inflight >= self._limit:
            self._held.append(entry)
            self.counts.held = len(self._held)
            self._set_backpressure(True)
            return
        self._produce(entry)

    def _producer_for(self, topic: str) -> Producer:
        """The producer of a Kafka topic's records: the prompt one for `kafka.prompt_topics`, else the batching one."""
        producer = self._producers[-1] if any(fnmatchcase(topic, p) for p in self._prompt_topics) else self.producer
        if len(self._producer_of) >= _MAX_TOPICS:
            self._producer_of.clear()
        self._producer_of[topic] = producer
        return producer

    def _produce(self, entry: InFlight) -> bool:
        producer = self._producer_of.get(entry.topic)
        if producer is None:
            producer = self._producer_for(entry.topic)
        try:
            # positional arguments (topic, value, key, partition, on_delivery): parsing keywords costs as much again
            if entry.headers is None:
                producer.produce(entry.topic, entry.value, entry.key, ANY_PARTITION, entry)
            else:
                producer.produce(entry.topic, entry.value, entry.key, ANY_PARTITION, entry, headers=entry.headers)
        except BufferError:
            self._held.appendleft(entry)
            self.counts.held = len(self._held)
            self._set_backpressure(True)
            return False
        except KafkaException as exc:  # refused before it left (too large, invalid topic, ...)
            self.counts.inflight += 1  # _refused takes it off again
            self._refused(entry, str(exc.args[0].str() if exc.args else exc))
            return not self._held
        self.counts.inflight += 1
        return True

    def _refused(self, entry: InFlight, problem: str) -> None:
        """Kafka will never take `entry`: a record becomes a dead letter (its messages wait for that one
        instead); a dead letter is retried every second, loudly, since dropping it would lose it."""
        self.counts.inflight -= 1
        if entry.headers is not None:
            log.error("kafka://%s: dead letter for %s refused (%s); retrying, MQTT messages stay unacked",
                      self.config.kafka.bootstrap, entry.topic, problem)
            self._held.appendleft(entry)
            self.counts.held = len(self._held)
            self._held_until = time.monotonic() + _RETRY_S
            self._set_backpressure(True)
            return
        log.warning("kafka://%s: record for %s refused (%s); to the DLQ", self.config.kafka.bootstrap,
                    entry.topic, problem)
        value = entry.value if len(entry.value) <= _DLQ_VALUE_MAX else entry.value[:_DLQ_VALUE_MAX]
        headers: Headers = [("reason", b"kafka_refused"), ("detail", problem.encode()),
                            ("kafka_topic", entry.topic.encode()),
                            ("truncated", str(len(value) < len(entry.value)).lower().encode())]
        dead = InFlight(self.config.kafka.dlq_topic, entry.key, value, headers, None, self._delivered)
        dead.order = entry.order
        dead.waiters, entry.waiters = entry.waiters, []
        if entry.ident is not None and self.ledger.inflight.get(entry.ident) is entry:
            self.ledger.inflight[entry.ident] = dead
        self._send(dead)

    def _delivered(self, entry: InFlight, err: KafkaError | None) -> None:
        counts = self.counts
        if err is not None and not (err.retriable() or err.code() in _GIVEN_BACK):
            self._refused(entry, err.str())
            return
        counts.inflight -= 1
        if err is not None:
            self._give_back(entry, err)
            return
        if not counts.kafka_connected:
            counts.kafka_connected = True
            log.info("kafka://%s: connected (records confirmed)", self.config.kafka.bootstrap)
        if entry.headers is None:
            counts.produced += 1
        else:
            reason = dict(entry.headers)["reason"]
            counts.dead[reason.decode() if isinstance(reason, bytes) else str(reason)] += 1
        done = self.ledger.delivered(entry)
        if done:
            self._to_ack.extend(done)

    def _named(self, dead: DeadLetter, route: UpRoute | None) -> bool:
        """Whether to log a dead letter: each one, but a record in a format the gateway does not read only the first
        time per Kafka topic (a misconfigured robot sends every record so); the rest are counted."""
        if dead.reason != "unknown_framing" or route is None:
            return True
        if route.kafka_topic in self._other_formats:
            return False
        self._other_formats.add(route.kafka_topic)
        log.warning("%s: records in a format the gateway does not read go to the DLQ; only the first one for %s is "
                    "logged, the rest are counted (dead letters)", self.endpoint, route.kafka_topic)
        return True

    def _give_back(self, entry: InFlight, err: KafkaError) -> None:
        """librdkafka gave `entry` up (or handed it back when purged): close the order barrier, keep it to
        produce again."""
        self.counts.redelivered += 1
        self._given_back.append(entry)
        self.counts.held = len(self._held) + len(self._given_back)
        if not self._barrier:
            self._barrier = self._purge = True
            log.warning("kafka://%s: Kafka gave up on a record for %s (%s); producing nothing new until every "
                        "record in flight is resolved, then producing again in order", self.config.kafka.bootstrap,
                        entry.topic, err.str())
            self._set_backpressure(True)

    def _lift_barrier(self) -> None:
        """Everything in flight is resolved: the records given back go first, in their first order."""
        back, self._given_back = self._given_back, []
        self._held = deque(sorted([*back, *self._held], key=lambda e: e.order))
        self._barrier = False
        log.info("kafka://%s: producing %d records again, in order, before newer ones", self.config.kafka.bootstrap,
                 len(back))

    def _send_acks(self) -> None:
        """Ack in one go the messages whose records Kafka confirmed (one lock, one wake-up of the network thread)
        and observe their latency with one clock reading."""
        done, self._to_ack = self._to_ack, []
        self.counts.acked += len(done)
        self.metrics.latency.observe_since(time.monotonic_ns(), [message.received_ns for message in done])
        self.client.ack_all([message.mid for message in done])

    def _kafka_error(self, err: KafkaError) -> None:
        if err.code() in (KafkaError._ALL_BROKERS_DOWN, KafkaError._TRANSPORT):
            if self.counts.kafka_connected or not self._kafka_down_logged:
                log.warning("kafka://%s: disconnected (%s); holding MQTT messages unacked",
                            self.config.kafka.bootstrap, err.str())
                self._kafka_down_logged = True
            self.counts.kafka_connected = False

    def _set_backpressure(self, on: bool) -> None:
        if on != self.counts.backpressure:
            self.counts.backpressure = on
            if on:
                log.warning("backpressure on: Kafka is slow or down (%d records unconfirmed, %d held); "
                            "MQTT messages stay unacked in the broker", self.counts.inflight, len(self._held))
            else:
                log.info("backpressure off: Kafka keeps up again")

    # --- the loop --------------------------------------------------------------------------------

    def run_once(self, timeout: float = 0.005) -> None:
        """Read MQTT, hand records to Kafka, serve delivery reports (acks), drain what was held."""
        # While records wait for Kafka, wait for MQTT messages briefly (2 ms) instead of spinning: a loop that
        # never blocks burnt most of a core at 700 msgs/s; Kafka's confirmations are served at most 2 ms late.
        self._pump(min(timeout, 0.002) if self.counts.inflight else timeout)
        for producer in self._producers:
            producer.poll(0.0)
        if self._purge:
            self._purge = False
            for producer in self._producers:
                producer.purge(in_queue=True, in_flight=False, blocking=False)  # reported as _PURGE_QUEUE
                producer.poll(0.0)
        if self._to_ack:
            self._send_acks()
        if self._barrier and not self.counts.inflight:
            self._lift_barrier()
        if self._parked and time.monotonic() >= self._parked_until:
            self._unpark()
        if self.reassembly.pending():
            self._expire_chunks()
        while self._held and not self._barrier and self.counts.inflight < self._limit \
                and time.monotonic() >= self._held_until:
            if not self._produce(self._held.popleft()):
                break
        self.counts.held = len(self._held) + len(self._given_back)
        if self.counts.backpressure and not self._held and not self._barrier and not self._parked \
                and self.counts.inflight <= self._limit // 2:
            self._set_backpressure(False)

    def _unpark(self) -> None:
        while self._parked:
            msg, message = self._parked[0]
            try:
                if isinstance(msg, _Whole):
                    self._emit_whole(msg)
                else:
                    self._take(msg, message)
            except SchemaTrouble:
                self._parked_until = time.monotonic() + _RETRY_S
                return
            self._parked.popleft()

    def close(self, timeout_s: float = 10.0) -> None:
        """Stop taking messages, let Kafka confirm what is in flight (and ack it), then disconnect."""
        self._stopping = True
        deadline = time.monotonic() + timeout_s
        while (self.counts.inflight or self._held or self._barrier) and time.monotonic() < deadline:
            self.run_once(0.01)
            if not self._held and not self._barrier:
                for producer in self._producers:  # what still lingers in a batch leaves now (a flush skips linger)
                    producer.flush(min(0.1, max(0.0, deadline - time.monotonic())))
        for producer in self._producers:
            producer.flush(max(0.0, deadline - time.monotonic()))
        left = self.counts.inflight + len(self._held) + len(self._given_back)
        if left:
            log.warning("%d records not confirmed by Kafka at stop; their MQTT messages stay unacked", left)
        self._send_acks()
        self.client.close()  # the PUBACKs queued so far leave before the DISCONNECT
