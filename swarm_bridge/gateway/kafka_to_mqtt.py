"""The down direction: Kafka command topics (consumer group) -> each robot's MQTT command topic at QoS 1.

A command's offset is committed only after the MQTT broker acknowledged its publish (PUBACK), in offset
order per partition, so a crash re-sends rather than loses. The commands queued at a turn are published together,
and the acknowledged offsets are committed without waiting for the broker's answer, at most every
`COMMIT_EVERY_S` (a crash re-sends that much more; the robots drop a command id seen before), and waiting for it
when partitions are revoked or the gateway stops: a blocking commit per command held each command one Kafka
round trip behind the one before it. Each command's format is reframed for MQTT by its
entry in COMMANDS_DOWN: Confluent Avro becomes Avro single-object; Confluent Protobuf the bare record with its
MQTT 5 content type; JSON passes through. A VDA 5050 down rule's records (Confluent Avro of the VDA 5050 records,
or JSON) go out as the JSON the spec wants (`vda5050_publish`). A command larger than `chunks.command_chunk_bytes`
goes as chunks (docs/wire.md#chunks; seq: its Kafka offset), put together by the robot, its offset committed once
every chunk is acknowledged; VDA 5050 orders go whole (their vehicles do not know chunks). Runs in a thread of its
own; the MQTT client (transport/mqtt_client.py) has its network thread, which hands each PUBACK back through a queue.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from swarm_bridge.codec.chunks import split_record
from swarm_bridge.codec.errors import CodecError, UnknownSchema
from swarm_bridge.codec.formats.protobuf import RECORD_INDEXES
from swarm_bridge.codec.framing import frame_single_object, parse_confluent, proto_mqtt_properties
from swarm_bridge.codec.protobuf_schema import record_message_name
from swarm_bridge.codec.recognise import expected_shape, recognise
from swarm_bridge.codec.signing import is_signed, open_signed, wrap_signed
from swarm_bridge.codec.wire import AVRO_CONTENT_TYPE
from swarm_bridge.config.gateway import GatewayConfig
from swarm_bridge.gateway.metrics import GatewayCounts, GatewayMetrics
from swarm_bridge.gateway.mqtt_session import gateway_client, start_session
from swarm_bridge.gateway.mqtt_to_kafka import kafka_producer
from swarm_bridge.gateway.rules import DownRoute
from swarm_bridge.gateway.schemas import SchemaBook, SchemaTrouble
from swarm_bridge.gateway.split import UnlistedRobots
from swarm_bridge.transport import mqtt_client
from swarm_bridge.transport.kafka_clients import (
    TIMESTAMP_CREATE_TIME,
    KafkaException,
    KafkaMessage,
    TopicPartition,
    kafka_consumer,
)
from swarm_bridge.transport.mqtt_errors import InflightFull, MqttDisconnected, PacketTooLarge, SubscribeRefused
from swarm_bridge.vda5050.errors import MessageInvalid
from swarm_bridge.vda5050.kafka import json_value

__all__ = ["KafkaToMqtt", "command_publish"]

log = logging.getLogger(__name__)

BROKER_DROPPED_TOPIC = "$SYS/broker/publish/messages/dropped"  # Mosquitto: messages dropped by queue limits


COMMIT_EVERY_S = 0.1
"""At most this often an asynchronous offset commit of the acknowledged commands (plus one at revoke and stop)."""
_BATCH = 500  # commands taken from the consumer in one turn at most

CommandPublish = tuple[bytes, str, list[tuple[str, str]]]  # (MQTT payload, content type, user properties)


def _avro_down(value: bytes, schemas: SchemaBook) -> CommandPublish:
    """Confluent Avro -> Avro single-object (the fingerprint of the registry's schema), with its ROS type."""
    frame = parse_confluent(value)
    fingerprint, ros_type = schemas.single_object(frame.schema_id)
    props = [("ros_type", ros_type)] if ros_type else []
    return frame_single_object(fingerprint, frame.payload), AVRO_CONTENT_TYPE, props


def _protobuf_down(value: bytes, schemas: SchemaBook) -> CommandPublish:
    """Confluent Protobuf -> the record alone, with the content type and user properties naming its message."""
    frame = parse_confluent(value, message_indexes=True)
    if frame.message_indexes != RECORD_INDEXES:
        raise CodecError(f"Protobuf command names message {frame.message_indexes} of its file; a swarm_bridge record "
                         f"is message {RECORD_INDEXES}")
    ros_type = schemas.proto_ros_type(frame.schema_id)
    props = proto_mqtt_properties(record_message_name(ros_type), 1, ros_type=ros_type)
    return frame.payload, props.content_type, list(props.user_properties)


def _json_down(value: bytes, _schemas: SchemaBook) -> CommandPublish:
    """JSON travels the same on both transports."""
    return value, "application/json", []


COMMANDS_DOWN: dict[str, Callable[[bytes, SchemaBook], CommandPublish]] = {
    "avro": _avro_down, "protobuf": _protobuf_down, "json": _json_down}
"""Record format of a command on Kafka (in its Kafka shape, `codec.formats`) -> how it becomes an MQTT publish; a
format that carries commands down adds its entry here."""


def vda5050_publish(value: bytes, vehicle: str, schemas: SchemaBook, topic: str | None = None) -> CommandPublish:
    """A VDA 5050 message (order, instantActions) for `vehicle` (manufacturer/serialNumber, the record key) as JSON:
    Confluent Avro of its VDA 5050 record (the writer's schema from the registry) as the message's JSON, a JSON
    message unchanged; `topic`: the VDA 5050 topic the rule publishes on (an Avro record of another is refused).
    MessageInvalid (a ValueError) when it does not read or names another vehicle; SchemaTrouble to retry."""
    try:
        _topic, doc = schemas.vda5050.read(value, topic)
    except UnknownSchema as exc:
        raise MessageInvalid(topic or "down", "", str(exc)) from None
    named = f"{doc.get('manufacturer')}/{doc.get('serialNumber')}"
    if named != vehicle:
        raise MessageInvalid(topic or "down", "serialNumber", f"the message is for {named}, its record key {vehicle}")
    return (value if value[:1] == b"{" else json_value(doc)), "application/json", []


def command_publish(value: bytes, schemas: SchemaBook) -> CommandPublish:
    """A command record's value -> (MQTT payload, content type, user properties); CodecError if unreadable.
    A signed command is re-framed inside its signed frame: the signature covers the unframed body, so it holds."""
    if is_signed(value):
        key_id, signature, inner = open_signed(value)
        payload, content_type, props = command_publish(inner, schemas)
        return wrap_signed(key_id, signature, payload), content_type, props
    shape = recognise(value, unwrap=False)
    fmt = shape.format or "" if shape is not None else ""
    down = COMMANDS_DOWN.get(fmt)
    if down is not None and shape == expected_shape(fmt, "kafka"):
        return down(value, schemas)
    what = f"it is {shape}" if shape is not None else f"it starts {value[:4].hex(' ') or '(empty)'}"
    readable = " or ".join(str(expected_shape(fmt, "kafka")) for fmt in COMMANDS_DOWN)
    raise CodecError(f"command record: {what}; on Kafka the gateway reads {readable}")


DOWN_PAYLOADS: dict[str, Callable[[bytes, str, SchemaBook, DownRoute], CommandPublish]] = {
    "command": lambda value, _key, schemas, _route: command_publish(value, schemas),
    "vda5050": lambda value, key, schemas, route: vda5050_publish(value, key, schemas, route.vda5050_topic),
}
"""A down rule's `payload` -> how one record (value, key) becomes an MQTT publish."""

CHUNKED_DOWN = {"command": True, "vda5050": False}
"""A down rule's `payload` -> whether a command too large for one publish may go as chunks (its reader puts them
together: a robot bridge's command route does, a VDA 5050 vehicle does not)."""


class _Partition:
    """Offsets of one partition published and not yet committed, in order, with their done flags."""

    def __init__(self) -> None:
        self.offsets: deque[list[int]] = deque()  # slots: [offset, done, read at, acked at] (ns)


class KafkaToMqtt:
    """Consumes the down rules' Kafka topics and publishes each command to its robot's MQTT topic."""

    def __init__(self, config: GatewayConfig, *, routes: list[DownRoute], schemas: SchemaBook,
                 counts: GatewayCounts, metrics: GatewayMetrics | None = None,
                 unlisted: UnlistedRobots | None = None) -> None:
        """`metrics`: where the command hops are timed (read from Kafka, acked by MQTT); none: not timed.
        `unlisted`: a split's watch for robots no group lists (the down client reads their presence, QoS 0)."""
        self.config, self.schemas, self.counts, self.metrics = config, schemas, counts, metrics
        self.unlisted = unlisted
        self.routes = {route.kafka_topic: route for route in routes}
        self.endpoint = f"mqtt://{config.mqtt.host}:{config.mqtt.port}"
        self._acks: queue.SimpleQueue[list[int]] = queue.SimpleQueue()  # slots whose PUBACK came
        self._pending = 0  # commands published and not yet acknowledged
        self._partitions: dict[tuple[str, int], _Partition] = {}
        self._stop = threading.Event()
        self._paused = False
        self._was_connected = False
        self._thread: threading.Thread | None = None
        self._dlq: Any = None
        self._broker_dropped_seen: int | None = None
        self._committed_at = 0.0  # monotonic time of the last offset commit
        self.client: mqtt_client.MqttClient | None = None  # made by start(), when there are routes
        self.consumer: Any = None
        for route in routes:
            if route.qos == 2:
                log.warning("%s: qos 2 is sent as QoS 1 (the gateway's MQTT client speaks QoS 0 and 1); the offset is "
                            "committed after the PUBACK, so each command still arrives at least once. Fix: qos: 1",
                            route)

    @property
    def pending(self) -> int:
        """Commands published and not yet acknowledged by the MQTT broker: the down path's backlog."""
        return self._pending

    def _on_message(self, message: mqtt_client.Message) -> None:
        """The client's network thread: the broker's $SYS drop count, and with a split the robots' presence."""
        if message.topic == BROKER_DROPPED_TOPIC:
            self._broker_dropped(message.payload)
        elif self.unlisted is not None:
            self.unlisted.seen(message.topic, message.payload)

    def _broker_dropped(self, payload: bytes) -> None:
        """The broker's count of messages it dropped (queue limits): a loss past the gateway, said loudly."""
        try:
            dropped = int(payload)
        except ValueError:
            return
        counts = self.counts
        if self._broker_dropped_seen is None and dropped:
            log.warning("%s: the broker reports %d messages dropped since it started (queue or in-flight limits, "
                        "e.g. while no gateway took them)", self.endpoint, dropped)
        elif self._broker_dropped_seen is not None and dropped > self._broker_dropped_seen:
            log.warning("%s: the broker dropped %d messages since its last report (%d since it started): queue or "
                        "in-flight limits (max_queued_messages, max_queued_bytes) were reached, e.g. while the "
                        "gateway held messages for Kafka", self.endpoint, dropped - self._broker_dropped_seen,
                        dropped)
        self._broker_dropped_seen = dropped
        counts.broker_dropped = dropped

    def _note_connection(self, client: mqtt_client.MqttClient) -> None:
        """Log a change of the MQTT connection once (the client reconnects by itself)."""
        connected = client.connected
        if connected == self._was_connected:
            return
        self._was_connected = connected
        if connected:
            log.info("%s: connected (down), commands from %s", self.endpoint, ", ".join(sorted(self.routes)))
        else:
            log.warning("%s: disconnected (down); commands wait, offsets stay uncommitted", self.endpoint)

    def start(self) -> None:
        """Connect to MQTT (persistent session) and start consuming; LinkError if MQTT is unreachable."""
        if not self.routes:
            return
        client = self.client = gateway_client(self.config, "down", on_message=self._on_message,
                                              max_inflight=min(self.config.kafka.max_inflight_commands, 65535))
        start_session(client)
        self._note_connection(client)
        try:
            client.subscribe([BROKER_DROPPED_TOPIC], qos=0, timeout_s=self.config.mqtt.connect_timeout_s)
        except SubscribeRefused as exc:
            log.warning("%s; the broker's drop count is not reported (swarm_gateway_broker_dropped_messages)", exc)
        if self.unlisted is not None:
            try:
                client.subscribe([self.unlisted.filter], qos=0, timeout_s=self.config.mqtt.connect_timeout_s)
            except SubscribeRefused as exc:
                log.warning("%s; robots that no split group lists are not named", exc)
        self.consumer = kafka_consumer({
            **self.config.kafka.security.client_settings(),
            "bootstrap.servers": self.config.kafka.bootstrap,
            "group.id": self.config.kafka.command_group,
            "client.id": f"{self.config.gateway_id}-down",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            # A command topic made or grown after this start (a coordinator started later grows it to one
            # partition per shard) is seen within 10 s instead of librdkafka's 5 min.
            "topic.metadata.refresh.interval.ms": 10_000,
            "on_commit": self._on_commit,
        }, log)
        self.consumer.subscribe(sorted(self.routes), on_revoke=self._revoked)
        self._thread = threading.Thread(target=self._run, name="kafka-to-mqtt", daemon=True)
        self._thread.start()

    def _on_commit(self, error: Any, _partitions: list[TopicPartition]) -> None:
        """An asynchronous commit's answer: a failure is logged (the group keeps its last committed offsets, so
        after a crash or rebalance the commands since then are sent again; a later commit moves past them)."""
        if error is not None:
            log.warning("kafka -> mqtt: commit failed (%s); the commands since the last committed offset may be "
                        "sent again", error)

    def _revoked(self, _consumer: Any, partitions: list[TopicPartition]) -> None:
        self._commit(final=True)
        for tp in partitions:
            self._partitions.pop((tp.topic, tp.partition), None)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._turn()
            except Exception:  # a command must never stop the down path
                log.exception("kafka -> mqtt: unexpected error; continuing")
                time.sleep(0.5)

    def _turn(self) -> None:
        self._settle()
        if self.client is not None:
            self._note_connection(self.client)
        busy = self._pending >= self.config.kafka.max_inflight_commands
        assignment = self.consumer.assignment() if busy != self._paused else []
        if busy and not self._paused:
            self.consumer.pause(assignment)
            self._paused = True
        elif not busy and self._paused:
            self.consumer.resume(assignment)
            self._paused = False
        for msg in self._take(max(1, min(_BATCH, self.config.kafka.max_inflight_commands - self._pending))):
            if msg.error() is None:
                self._forward(msg)

    def _take(self, most: int) -> list[KafkaMessage]:
        """The commands queued now (up to `most`); when none is, wait up to 50 ms for the first. (`consume` with
        a timeout waits all of it unless `most` arrive: a fixed wait on every command.)"""
        msgs: list[KafkaMessage] = self.consumer.consume(most, 0)
        if not msgs:
            msgs = self.consumer.consume(1, 0.05)
            if msgs and most > 1:
                msgs += self.consumer.consume(most - 1, 0)
        return msgs

    def _forward(self, msg: KafkaMessage) -> None:
        where = (msg.topic() or "", msg.partition() or 0)
        read_ns = time.time_ns()
        slot = [msg.offset() or 0, 0, read_ns, 0]
        kind, stamp_ms = msg.timestamp()
        if self.metrics is not None and kind == TIMESTAMP_CREATE_TIME and stamp_ms > 0:
            self.metrics.command_wait.observe_since(read_ns, (stamp_ms * 1_000_000,))
        self._partitions.setdefault(where, _Partition()).offsets.append(slot)
        route = self.routes[where[0]]
        value = msg.value() or b""
        while not self._stop.is_set():
            try:
                key = (msg.key() or b"").decode("utf-8")
                topic = route.mqtt_topic(key)
                payload, content_type, user_props = DOWN_PAYLOADS[route.payload](value, key, self.schemas, route)
                parts = self._parts(payload, route, topic, key, msg.offset() or 0)
                break
            except SchemaTrouble as exc:
                log.warning("kafka -> mqtt: schema registry unavailable (%s); retrying", exc)
                time.sleep(1.0)
            except (CodecError, ValueError) as exc:  # UnicodeDecodeError is a ValueError
                self._dead_letter(msg, route, str(exc))
                slot[1] = 1
                return
        else:
            return
        self._publish(msg, route, topic, parts, content_type, user_props, slot)

    def _parts(self, payload: bytes, route: DownRoute, topic: str, robot_id: str, offset: int) -> list[bytes]:
        """The command whole, or its chunks when it is larger than `chunks.command_chunk_bytes` and its reader puts
        chunks together (seq: its Kafka offset; stream: the topic's last level). FramingError: it cannot be split."""
        limit = self.config.chunks.command_chunk_bytes
        if len(payload) <= limit or not CHUNKED_DOWN[route.payload]:
            return [payload]
        return split_record(payload, robot_id=robot_id, stream=topic.rsplit("/", 1)[-1], seq=offset,
                            chunk_bytes=limit)

    def _publish(self, msg: KafkaMessage, route: DownRoute, topic: str, parts: list[bytes], content_type: str,
                 user_props: list[tuple[str, str]], slot: list[int]) -> None:
        """Publish the command (or its chunks, in order) at QoS 1; `slot` is done at the PUBACK of the last of them
        to be acknowledged. Waits while the in-flight window is full."""
        assert self.client is not None
        left = len(parts)

        def acked(_delivered: bool, _reason: int) -> None:  # network thread; a refusal is logged by the client
            nonlocal left
            left -= 1
            if left == 0:
                slot[3] = time.time_ns()
                self._acks.put(slot)

        for part in parts:
            while True:
                if self._stop.is_set():
                    return  # closing: the offset stays uncommitted, the command comes again
                try:
                    self.client.publish(topic, part, qos=1, content_type=content_type,
                                        user_properties=user_props or None, on_done=acked, timeout_s=1.0)
                    break
                except InflightFull:
                    continue  # the broker's Receive Maximum: wait for PUBACKs
                except PacketTooLarge as exc:
                    self._dead_letter(msg, route, str(exc))
                    slot[1] = 1
                    return
                except MqttDisconnected:
                    return  # closing: the offset stays uncommitted, the command comes again
        self._pending += 1

    def _dead_letter(self, msg: KafkaMessage, route: DownRoute, detail: str) -> None:
        log.warning("%s: command at %s[%d]@%d to the DLQ: %s", route, msg.topic(), msg.partition(), msg.offset(),
                    detail)
        if self._dlq is None:
            self._dlq = kafka_producer(self.config, suffix="down-dlq")
        headers = [("reason", b"bad_command"), ("detail", detail.encode()),
                   ("kafka_topic", (msg.topic() or "").encode()), ("kafka_offset", str(msg.offset()).encode())]
        self._dlq.produce(self.config.kafka.dlq_topic, msg.value() or b"", msg.key(), headers=headers)
        while self._dlq.flush(1.0) and not self._stop.is_set():
            log.warning("kafka -> mqtt: DLQ record not confirmed yet; waiting")
        self.counts.commands_dead += 1

    def _settle(self) -> None:
        """Mark acked publishes done and commit each partition up to its first unacked command."""
        acked = 0
        while True:
            try:
                slot = self._acks.get_nowait()
            except queue.Empty:
                break
            slot[1] = 1
            acked += 1
            if self.metrics is not None:
                self.metrics.command_publish.observe_since(slot[3], (slot[2],))
        self._pending -= acked
        self.counts.commands += acked
        self._commit()

    def _commit(self, *, final: bool = False) -> None:
        """Commit each partition up to its first unacknowledged command: asynchronously and at most every
        `COMMIT_EVERY_S`, or now and waiting for the answer when `final` (revoke, stop)."""
        if not final and time.monotonic() - self._committed_at < COMMIT_EVERY_S:
            return
        offsets = []
        for (topic, partition), part in self._partitions.items():
            last = None
            while part.offsets and part.offsets[0][1]:
                last = part.offsets.popleft()[0]
            if last is not None:
                offsets.append(TopicPartition(topic, partition, last + 1))
        if offsets:
            self._committed_at = time.monotonic()
            try:
                self.consumer.commit(offsets=offsets, asynchronous=not final)
            except KafkaException as exc:
                log.warning("kafka -> mqtt: commit failed (%s); the commands may be sent again", exc)

    def close(self, timeout_s: float = 5.0) -> None:
        """Wait a little for outstanding PUBACKs, commit, stop."""
        if self._thread is None:
            return
        assert self.client is not None
        deadline = time.monotonic() + timeout_s
        while self._pending > self._acks.qsize() and time.monotonic() < deadline and self.client.connected:
            time.sleep(0.05)
        self._stop.set()
        self._thread.join(timeout=10)
        self._settle()
        self._commit(final=True)
        self.consumer.close()
        self.client.close()  # commands still unacknowledged: their offsets stay uncommitted
