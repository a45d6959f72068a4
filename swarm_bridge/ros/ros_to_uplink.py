"""Up direction: one raw (CDR) ROS subscription per route; each message decimated, transcoded straight from
CDR to the route's record format and framing, handed to the outbox. No rclpy message objects are built.
Without a budget a burst goes to the outbox in one call; with one, a message goes to its sink as a `Taken`: encoded
when the sink makes it, so one the bandwidth budget drops (superseded by a newer image) costs its take only and the
reader keeps up. Samples the middleware reports lost to the route's reader are counted as dropped, reason MISSED."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from rclpy.event_handler import QoSSubscriptionEventType
from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy
from rclpy.node import Node
from rclpy.type_support import check_is_valid_msg_type

from swarm_bridge.codec import CodecError
from swarm_bridge.codec.chunks import split_record
from swarm_bridge.codec.compression import COMPRESSIONS
from swarm_bridge.codec.envelope import RUN_SHIFT
from swarm_bridge.codec.rostypes import default_types
from swarm_bridge.codec.wire import WireEncoder, stamp_reader
from swarm_bridge.metrics import BridgeMetrics
from swarm_bridge.ros.qos import qos_preset
from swarm_bridge.ros.types import message_class
from swarm_bridge.ros.uplink_reader import UplinkReader
from swarm_bridge.routing import Route, kafka_key
from swarm_bridge.routing.rate import Decimator
from swarm_bridge.transport.outbox import Outbox

__all__ = ["RecordSink", "RouteCounts", "Taken", "UplinkRoute", "to_outbox"]

log = logging.getLogger(__name__)

SWEEP_PERIOD_S = 0.5  # how often the robot bridge sweeps its up routes (one timer for all of them)
DRAIN_MAX = 256  # messages one executor callback takes from its reader at most, so other routes get their turn
MISSED = "lost on ROS before the bridge took it"  # DDS says so: best-effort loss, a lost fragment, a full reader
# Types whose messages run to megabytes: read reliably, a sample behind a lost fragment waits for its repair, and so
# does every one after it (seconds of images in memory on a busy robot, the small topics behind them late).
LARGE_TYPES = frozenset({"sensor_msgs/msg/Image", "sensor_msgs/msg/PointCloud2", "sensor_msgs/msg/PointCloud",
                         "sensor_msgs/msg/CompressedImage"})


@dataclass
class RouteCounts:
    """What one route saw: messages from ROS, records handed upstream, drops by reason (never silent)."""

    received: int = 0
    sent: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    swept: int = 0  # received by a sweep, not through the executor
    chunks: int = 0  # chunks sent for records larger than the uplink's chunk_bytes
    bytes_encoded: int = 0  # record bytes before compression
    bytes_sent: int = 0  # bytes handed to the uplink (compressed, chunk headers included)


class UplinkRoute:
    """ROS topic -> uplink destination for one route.

    Records are numbered per stream: seq = run << 32 | n, where run grows at each bridge start (`Spool.start_run`:
    above the spool's last run and at least the clock's seconds) and n counts from 0 in this run; so seq only
    grows, across restarts and a lost spool too, and receivers can drop duplicates by (robot_id, stream, seq) and
    see a restart where the high bits change."""

    def __init__(self, node: Node, route: Route, *, robot_id: str, outbox: Outbox, metrics: BridgeMetrics,
                 encoder: WireEncoder, run: int = 0, chunk_bytes: int = 0, sink: RecordSink | None = None,
                 reader: UplinkReader | None = None) -> None:
        """`chunk_bytes`: records larger than this go as chunks (0: never); `sink`: where records go (default
        straight to the outbox; the budget's lanes when the robot has a budget); `reader`: the thread that reads
        the route's DDS reader (None: the node's executor calls the route per message)."""
        self.route = route
        self.counts = RouteCounts()
        self._robot_id = robot_id
        self._key = kafka_key(robot_id)
        self._sink: RecordSink = sink or to_outbox(outbox)
        self._outbox = outbox if sink is None else None  # bursts go straight to it (Outbox.submit_many)
        self._chunk_bytes = chunk_bytes
        self._compress = _compressor(route)
        self._decimator = Decimator(route.max_rate_hz)
        self._encoder = encoder
        self._stamp = stamp_reader(route.ros_type, default_types())
        self._seq = run << RUN_SHIFT
        counts = self.counts
        metrics.watch_route(str(route), lambda: {"received": counts.received, "sent": counts.sent,
                                                 "chunks": counts.chunks}, lambda: counts.dropped)
        metrics.watch_bytes(str(route), lambda: {"encoded": counts.bytes_encoded, "sent": counts.bytes_sent})
        msg_class, qos = message_class(route.ros_type), qos_preset(route.qos, depth=route.qos_depth)
        self._taking = threading.Lock()  # one taker at a time (the reader thread, the sweep): records keep order
        self._reader = reader
        self._owned: Any = None
        if reader is None:
            subscription = node.create_subscription(msg_class, route.ros_topic, self._on_message, qos, raw=True)
            self._sub_handle: Any = subscription.handle
        else:  # not the node's: the executor never sees it, the reader thread waits on it
            check_is_valid_msg_type(msg_class)  # imports the type support, as create_subscription does
            with node.handle:
                self._owned = _rclpy.Subscription(node.handle, msg_class, route.ros_topic, qos.get_c_qos_profile())
            self._sub_handle = self._owned
        # Polled, not an executor callback: with the EventsExecutor a message-lost callback deadlocked the
        # bridge under load (the middleware's receive thread and the executor waited on each other).
        self._take = self._sub_handle.take_message
        self._msg_type = msg_class
        with self._sub_handle:
            self._lost: Any = _rclpy.EventHandle(self._sub_handle,
                                                 QoSSubscriptionEventType.RCL_SUBSCRIPTION_MESSAGE_LOST)
        log.info("%s: up (%s, qos %s, priority %d%s%s)", route, route.ros_type, route.qos, route.priority,
                 f", at most {route.max_rate_hz:g} Hz" if route.max_rate_hz else "",
                 f", {route.compression} level {route.compression_level}" if self._compress else "")
        if route.ros_type in LARGE_TYPES and route.qos != "sensor_data":
            log.warning("%s: %s read with qos %s: when the robot is busy a lost fragment holds this reader's later "
                        "samples in memory until it is repaired; qos sensor_data drops that one sample instead "
                        "(counted: %s)", route, route.ros_type, route.qos, MISSED)
        if reader is not None:
            reader.add(self)

    def __str__(self) -> str:
        return str(self.route)

    @property
    def subscription_handle(self) -> Any:
        """The rclpy handle of the route's subscription (what the reader thread waits on)."""
        return self._sub_handle

    def close(self) -> None:
        """Give the subscription back (one the route made itself; the node's own go with the node)."""
        if self._owned is not None:
            with self._taking:
                self._owned.destroy_when_not_in_use()
                self._owned = None

    def drain(self) -> int:
        """The reader thread's turn: everything the DDS reader holds, in bursts; returns how many were taken."""
        taken = 0
        with self._taking, self._sub_handle:
            take, msg_type = self._take, self._msg_type
            while (got := take(msg_type, True)) is not None:
                taken += self._burst(got[0])
        return taken

    def sweep(self, limit: int = 10_000, *, wait: bool = True) -> int:
        """Take what waits in the DDS reader without an executor event (an overloaded EventsExecutor can
        lose "new data" events: those messages would sit in the reader for ever); returns how many.
        `wait=False` (the sweep timer): none while the route's reader thread is reading (they are its own) or another
        thread is taking (it takes them); the reader's lost samples are counted either way."""
        taken = 0
        handle = self._sub_handle
        if not wait and self._reader is not None and self._reader.reading:
            self._take_lost()
            return 0
        if self._taking.acquire(blocking=wait):
            try:
                while taken < limit:
                    with handle:
                        got = handle.take_message(self._msg_type, True)
                    if got is None:
                        break
                    taken += 1
                    self._handle(got[0])
            finally:
                self._taking.release()
        if taken:
            self.counts.swept += taken
            log.debug("%s: took %d messages the executor had not delivered", self.route, taken)
        self._take_lost()
        return taken

    def _take_lost(self) -> None:
        """The middleware's count of samples the route's reader lost (never got, or could not keep)."""
        with self._lost:
            status = self._lost.take_event()
        if status is not None and status.total_count_change > 0:
            self._drop(MISSED, int(status.total_count_change))

    def _on_message(self, raw: bytes) -> None:
        """The executor's callback: this message, then what else waits in the reader (up to DRAIN_MAX), so a
        burst costs one executor wake-up instead of one each; the executor's later events find the reader
        empty and call nothing."""
        with self._taking:
            self._burst(raw)

    def _burst(self, raw: bytes) -> int:
        """`raw`, then what else waits in the reader, up to DRAIN_MAX more; straight to the outbox the burst goes in
        one `submit_many`. Returns how many messages were taken."""
        take, msg_type = self._take, self._msg_type
        if self._outbox is None:  # a budget between the route and the outbox: record by record
            handle = self._handle
            handle(raw)
            for taken in range(1, DRAIN_MAX + 1):
                one = take(msg_type, True)
                if one is None:
                    return taken
                handle(one[0])
            return DRAIN_MAX + 1
        # The fast path, with _admit and _record inlined: this loop, on the reader thread, is the bridge's ceiling.
        counts, route, now, clock = self.counts, self.route, time.monotonic_ns, time.time_ns
        robot_id, stream, stamp, encode_cdr = self._robot_id, route.stream, self._stamp, self._encoder.encode_cdr
        decimator = self._decimator if self._decimator.period_ns else None
        compress, chunk_bytes = self._compress, self._chunk_bytes
        payloads: list[bytes] = []
        received: list[int] = []
        encoded = 0  # record bytes before compression
        got: Any = (raw,)
        taken = 0
        try:
            while got is not None:
                taken += 1
                received_ns = now()
                data = got[0]
                got = take(msg_type, True) if taken <= DRAIN_MAX else None
                if decimator is not None and not decimator.admit(received_ns):
                    self._drop("rate limit")
                    continue
                seq = self._seq
                self._seq = seq + 1
                try:
                    payload = encode_cdr(data, robot_id=robot_id, stream=stream, seq=seq,
                                         stamp_ns=stamp(data) or clock())
                except CodecError as exc:
                    self._drop("cannot encode")
                    log.warning("%s: dropped 1 (cannot encode: %s)", route, exc)
                    continue
                encoded += len(payload)
                if compress is not None:
                    payload = compress(payload)
                counts.sent += 1
                if chunk_bytes and len(payload) > chunk_bytes:
                    self._flush(payloads, received)  # what came before it leaves first: order holds
                    self._sink(route, self._key, Taken(partial(self._chunked, payload, seq), len(payload), chunk_bytes,
                                                       received_ns))
                else:
                    payloads.append(payload)
                    received.append(received_ns)
        finally:
            counts.received += taken
            counts.bytes_encoded += encoded
        self._flush(payloads, received)
        return taken

    def _flush(self, payloads: list[bytes], received: list[int]) -> None:
        """A burst's records to the outbox, in one call."""
        if payloads:
            route, outbox = self.route, self._outbox
            assert outbox is not None
            self.counts.bytes_sent += sum(map(len, payloads))
            outbox.submit_many(route.stream, route.destination, self._key, payloads, received,
                               priority=route.priority, qos=route.mqtt_qos, retain=route.retain)
            payloads.clear()
            received.clear()

    def _handle(self, raw: bytes) -> None:
        """One message to the sink as a `Taken` (its record made when the sink takes it)."""
        received_ns = time.monotonic_ns()
        if not self._admit(received_ns):
            return
        seq = self._seq
        self._seq += 1
        size = len(raw)
        first = min(size, self._chunk_bytes) if self._chunk_bytes else size
        self._sink(self.route, self._key, Taken(lambda: self._make(raw, seq), size, first, received_ns))

    def _admit(self, received_ns: int) -> bool:
        """Counted as received; False (counted) when the route's rate limit drops it."""
        self.counts.received += 1
        if self._decimator.period_ns and not self._decimator.admit(received_ns):
            self._drop("rate limit")
            return False
        return True

    def _record(self, raw: bytes, seq: int) -> bytes | None:
        """Encoded and compressed, counted as sent; None (counted) when it cannot be encoded."""
        counts = self.counts
        try:
            payload = self._encoder.encode_cdr(raw, robot_id=self._robot_id, stream=self.route.stream, seq=seq,
                                               stamp_ns=self._stamp(raw) or time.time_ns())
        except CodecError as exc:
            self._drop("cannot encode")
            log.warning("%s: dropped 1 (cannot encode: %s)", self.route, exc)
            return None
        counts.bytes_encoded += len(payload)
        if self._compress is not None:
            payload = self._compress(payload)
        counts.sent += 1
        return payload

    def _make(self, raw: bytes, seq: int) -> list[bytes] | None:
        """The record of one message as it leaves: encoded, compressed, split into chunks when larger than
        chunk_bytes; None (counted) when it cannot be encoded."""
        payload = self._record(raw, seq)
        if payload is None:
            return None
        if self._chunk_bytes and len(payload) > self._chunk_bytes:
            return self._chunked(payload, seq)
        self.counts.bytes_sent += len(payload)
        return [payload]

    def _chunked(self, payload: bytes, seq: int) -> list[bytes]:
        """A record larger than the uplink's chunk_bytes, as its chunks, in order (counted)."""
        parts = split_record(payload, robot_id=self._robot_id, stream=self.route.stream, seq=seq,
                             chunk_bytes=self._chunk_bytes)
        self.counts.chunks += len(parts)
        self.counts.bytes_sent += sum(map(len, parts))
        return parts

    def _drop(self, reason: str, count: int = 1) -> None:
        self.counts.dropped[reason] += count


@dataclass(slots=True)
class Taken:
    """A message taken from ROS, its record not made yet: `make()` gives the record or its chunks in order (None:
    it could not be encoded, counted on its route); `size` is the message's bytes and `first` an estimate of the
    first part's, for a budget to reckon with before the record is made."""

    make: Callable[[], list[bytes] | None]
    size: int
    first: int
    received_ns: int


RecordSink = Callable[[Route, bytes, Taken], None]
"""Where a route hands each message: (route, key, taken)."""


def to_outbox(outbox: Outbox) -> RecordSink:
    """Records made at once, straight to the outbox; a chunked record's latency is measured on its last chunk (whole
    then)."""

    def sink(route: Route, key: bytes, taken: Taken) -> None:
        parts, received_ns = taken.make(), taken.received_ns
        if parts is None:
            return
        last = len(parts) - 1
        for index, part in enumerate(parts):
            outbox.submit(route.stream, route.destination, key, part, priority=route.priority, qos=route.mqtt_qos,
                          retain=route.retain and last == 0, received_ns=received_ns if index == last else 0)

    return sink


def _compressor(route: Route) -> Callable[[bytes], bytes] | None:
    """The route's record compression (None: records go as they are)."""
    if route.compression == "none":
        return None
    codec, level = COMPRESSIONS[route.compression], route.compression_level
    return lambda data: codec.compress(data, level)
