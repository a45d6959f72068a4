"""Down direction: records from the uplink, their signature verified (swarm_bridge.commands), decoded in the
route's format and checked (this robot, not expired, not a repeat, signed ones issued recently), published on a
ROS topic. While the topic has no matched subscriber (volatile QoS) accepted commands wait, bounded
(swarm_bridge.commands.CommandHold), and go out in order once one matches. Anything refused or given up is
counted by reason; nothing stops the route."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from rclpy.node import Node
from rclpy.qos import DurabilityPolicy

from swarm_bridge.codec import CodecError, RecordError, SchemaMismatch
from swarm_bridge.codec.chunks import Reassembler, is_chunk, joined
from swarm_bridge.codec.compression import DEFAULT_MAX_RECORD, compression_of, records_of
from swarm_bridge.codec.framing import split_batch
from swarm_bridge.codec.recognise import FormatWatch
from swarm_bridge.codec.signing import is_signed, open_signed
from swarm_bridge.codec.wire import WireDecoder
from swarm_bridge.commands import CommandGate, CommandHold, CommandVerifier, Held, Keyring, Verdict
from swarm_bridge.config.uplinks import UPLINK_KINDS
from swarm_bridge.metrics import BridgeMetrics
from swarm_bridge.ros.convert import dict_to_message
from swarm_bridge.ros.qos import qos_preset
from swarm_bridge.ros.types import message_class
from swarm_bridge.routing import Route
from swarm_bridge.transport import Uplink

__all__ = ["DownlinkCounts", "DownlinkRoute"]

log = logging.getLogger(__name__)

MALFORMED = "malformed"
WRONG_TYPE = "wrong ROS type"  # or another schema: a record this route does not carry
NOT_PUBLISHABLE = "not publishable"
FORMAT_MISMATCH = "format mismatch"  # a record in another format than the route's: named once, then counted
HOLD_FULL = "hold full"  # commands.hold_max were waiting for a ROS subscriber: the oldest gave way
STOPPED_HOLDING = "no ROS subscriber before the bridge stopped"
# How often a route holding commands looks for a matched ROS subscriber (a command arriving once one matched goes
# out at once, with what waits before it). The timer runs also while nothing is held: at 0.05 s it cost an idle
# robot bridge 0.25 % of a core.
HOLD_POLL_S = 0.25


@dataclass(frozen=True)
class _Ready:
    """An accepted command as it goes on ROS, with what is checked again when it was held."""

    message: Any
    command_id: str
    deadline_ns: int
    seq: int


@dataclass
class DownlinkCounts:
    """What one down route saw: records from the uplink, messages published on ROS, commands that waited for a
    ROS subscriber (held; published or dropped later), refusals and drops by reason."""

    received: int = 0
    published: int = 0
    held: int = 0
    refused: Counter[str] = field(default_factory=Counter)


class DownlinkRoute:
    """Uplink destination -> ROS topic for one route of one robot.

    `hold_s` > 0 and a volatile QoS: a command accepted while the publisher has no matched subscriber waits up
    to `hold_s` (at most `hold_max` of them), since DDS would drop it; transient_local keeps it for late readers
    itself. Its id is remembered once it is published, so a redelivery meanwhile is refused only then."""

    def __init__(self, node: Node, route: Route, *, robot_id: str, uplink: Uplink, metrics: BridgeMetrics,
                 decoder: WireDecoder, verifier: CommandVerifier | None = None, max_age_s: float = 300.0,
                 max_clock_skew_s: float = 30.0, hold_s: float = 10.0, hold_max: int = 1000) -> None:
        self.route = route
        self.counts = DownlinkCounts()
        self.gate = CommandGate(robot_id, max_age_s=max_age_s, max_clock_skew_s=max_clock_skew_s)
        # No verifier given: unsigned records pass, signed ones are refused (no key is trusted).
        self.verifier = verifier or CommandVerifier(Keyring(), required=False)
        self._robot_id = robot_id
        self._decoder = decoder
        self._batched = UPLINK_KINDS[route.scheme].COMMANDS_BATCHED
        self._formats = FormatWatch(
            str(route), route.format, route.scheme, f"format: of this route (stream {route.stream}) in the robot "
            "bridge config", "the coordinator (robot_format in its config; the gateway turns its Confluent Avro "
            "into Avro single-object and passes JSON through)")
        self._cls = message_class(route.ros_type)
        profile = qos_preset(route.qos, depth=route.qos_depth)
        self._publisher = node.create_publisher(self._cls, route.ros_topic, profile)
        waits = hold_s > 0 and profile.durability != DurabilityPolicy.TRANSIENT_LOCAL
        self._hold: CommandHold[_Ready] | None = CommandHold(hold_s=hold_s, max_items=hold_max) if waits else None
        self._no_subscriber = f"no ROS subscriber within {hold_s:g} s"
        self._lock = threading.Lock()  # the uplink's thread delivers, the executor's timer releases and expires
        self._waiting_since: int | None = None  # monotonic ns: since when no subscriber was there for a command
        self._drops_told: set[str] = set()  # drop reasons logged while waiting: each once per wait
        self._dropped_in_wait = 0
        self._closed = False
        self._poll = node.create_timer(HOLD_POLL_S, self._poll_hold) if self._hold is not None else None
        counts = self.counts
        metrics.watch_route(str(route), lambda: {"received": counts.received, "published": counts.published,
                                                 "held": counts.held}, lambda: counts.refused)
        self._chunks: Reassembler[None] = Reassembler(max_bytes=64 << 20, max_record_bytes=DEFAULT_MAX_RECORD)
        uplink.subscribe(route.destination, self._on_record, with_properties=True)
        log.info("%s: down (%s, qos %s%s)", route, route.ros_type, route.qos,
                 f"; commands wait up to {hold_s:g} s for a subscriber" if waits else "")

    def _on_record(self, topic: str, key: bytes | None, payload: bytes,
                   properties: list[tuple[str, str]] | None = None) -> None:
        if key is not None and key != self._robot_id.encode():
            return  # a Kafka topic shared by robots: another robot's record
        if is_chunk(payload):  # a record larger than its sender's limit: whole once its last chunk is here
            with self._lock:
                settled = self._chunks.add(topic, payload, None, time.monotonic())
                settled += self._chunks.expire(time.monotonic())
            for one in settled:
                if one.reason is not None:
                    self.counts.received += 1
                    self._refuse(one.reason, f"chunked record seq {one.ident[2]}")
            whole = joined(settled)
            if not whole:
                return
            payload = whole[0]
        compression = compression_of(properties)
        if not self._batched and compression is None:  # e.g. Kafka: records come one by one
            self._on_command(payload)
            return
        try:  # one record, or a batch of them (binary frame or JSON array), each undone from its compression
            records = records_of(payload, compression) if compression is not None else split_batch(payload)
        except CodecError as exc:
            self.counts.received += 1
            self._refuse(MALFORMED, f"cannot split or decompress: {exc}")
            return
        for record in records:
            self._on_command(record)

    def _on_command(self, payload: bytes) -> None:
        self.counts.received += 1
        signed = is_signed(payload)
        try:
            refusal, inner = self.verifier.verify(payload)
        except CodecError as exc:  # a malformed signed frame
            self._refuse(MALFORMED, f"cannot open: {exc}")
            return
        if refusal is not None:
            self.gate.note(refusal)
            self._refuse(refusal.value, f"signed by key {open_signed(payload).key_id}" if signed else "no signature")
            return
        payload = inner
        try:
            envelope = self._decoder.decode(payload)
        except CodecError as exc:
            self._undecodable(payload, exc)
            return
        if envelope.ros_type != self.route.ros_type:
            self._refuse(WRONG_TYPE, f"record of {envelope.ros_type}, route carries {self.route.ros_type}")
            return
        body = envelope.body
        addressees = {envelope.robot_id, str(body.get("robot_id") or envelope.robot_id)} - {self._robot_id}
        command_id = str(body.get("command_id") or f"{envelope.stream}:{envelope.seq}")
        deadline_ns = _deadline_ns(body.get("deadline"))
        verdict = self.gate.check(
            robot_id=min(addressees) if addressees else self._robot_id,  # any other addressee: not ours
            command_id=command_id,
            deadline_ns=deadline_ns,
            now_ns=time.time_ns(),
            issued_ns=_deadline_ns(body.get("issued_at")) if signed else None,  # only signed: it can be trusted
        )
        if verdict is not Verdict.ACCEPT:
            self._refuse(verdict.value, f"seq {envelope.seq}")
            return
        try:
            message = dict_to_message(self._cls, body)
        except Exception as exc:  # rclpy raises several types for values out of range
            self._refuse(NOT_PUBLISHABLE, str(exc))
            return  # not remembered: a redelivery of this command is accepted again
        self._deliver(_Ready(message, command_id, deadline_ns, envelope.seq))

    # --- publishing, or holding until a ROS subscriber matched ----------------------------------------------

    def _deliver(self, ready: _Ready) -> None:
        """Publish now when a subscriber is matched (after what waits, in order); else hold, or drop if stopped."""
        with self._lock:
            if self._hold is None:
                self._publish(ready)
                return
            if self._subscribed():
                self._release()
                self._publish(ready)
                return
            if self._closed:
                self._drop(STOPPED_HOLDING, [ready])
                return
            now_ns = time.monotonic_ns()
            if self._waiting_since is None:
                self._waiting_since = now_ns
                log.info("%s: no ROS subscriber matched yet: holding commands up to %g s (at most %d)", self.route,
                         self._hold.hold_s, self._hold.max_items)
            self.counts.held += 1
            pushed = self._hold.add(ready, now_ns)
            if pushed is not None:
                self._drop(HOLD_FULL, [pushed.item])

    def _poll_hold(self) -> None:
        """Timer: publish what waits once a subscriber matched; drop (counted) what waited longer than hold_s."""
        if self._hold is None or not len(self._hold):
            return
        with self._lock:
            if not len(self._hold):
                return
            if self._subscribed():
                self._release()
                return
            expired = self._hold.expired(time.monotonic_ns())
            if expired:
                self._drop(self._no_subscriber, [held.item for held in expired])

    def _release(self) -> None:
        """A subscriber matched: publish every held command, oldest first, and end the wait (logged once)."""
        if self._waiting_since is None or self._hold is None:
            return
        held: list[Held[_Ready]] = self._hold.take()
        published = sum(self._publish(h.item) for h in held)
        log.info("%s: a ROS subscriber matched after %.3f s: published %d of %d held commands%s", self.route,
                 (time.monotonic_ns() - self._waiting_since) / 1e9, published, len(held),
                 f" ({self._dropped_in_wait} dropped while none was there)" if self._dropped_in_wait else "")
        self._waiting_since = None
        self._drops_told.clear()
        self._dropped_in_wait = 0

    def _publish(self, ready: _Ready) -> bool:
        """Publish one accepted command, checked again (it may have waited): deadline, and that no copy of it was
        published meanwhile; its id is remembered only once published."""
        if ready.deadline_ns and ready.deadline_ns <= time.time_ns():
            self._refuse(Verdict.EXPIRED.value, f"seq {ready.seq}, while waiting for a ROS subscriber")
            return False
        if self.gate.delivered(ready.command_id):
            self._refuse(Verdict.DUPLICATE.value, f"seq {ready.seq}, a copy was published while it waited")
            return False
        try:
            self._publisher.publish(ready.message)
        except Exception as exc:  # rclpy raises several types for values out of range
            self._refuse(NOT_PUBLISHABLE, str(exc))
            return False  # not remembered: a redelivery of this command is accepted again
        self.gate.remember(ready.command_id)
        self.counts.published += 1
        return True

    def _subscribed(self) -> bool:
        return self._publisher.get_subscription_count() > 0

    def _drop(self, reason: str, given_up: list[_Ready]) -> None:
        """Count commands given up; the first drop of each reason in a wait is logged, later ones only counted."""
        self.counts.refused[reason] += len(given_up)
        self._dropped_in_wait += len(given_up)
        if reason not in self._drops_told:
            self._drops_told.add(reason)
            log.warning("%s: dropped %d command(s) (%s): %s; more for this reason are only counted until a "
                        "subscriber matches",
                        self.route, len(given_up), reason, ", ".join(r.command_id for r in given_up[:5]))

    def close(self) -> None:
        """The bridge stops: publish what waits if a subscriber is there now, else drop it (counted: the uplink
        already had it acknowledged); commands arriving later are dropped the same way."""
        with self._lock:
            self._closed = True
            if self._hold is None or not len(self._hold):
                return
            if self._subscribed():
                self._release()
            else:
                self._drop(STOPPED_HOLDING, [held.item for held in self._hold.take()])

    def _undecodable(self, payload: bytes, exc: CodecError) -> None:
        """Refuse a record that did not decode: a format mismatch is named once (ERROR), then only counted."""
        mismatch = self._formats.mismatch(payload, where=f"record {self.counts.received} received")
        if mismatch is not None:
            self.counts.refused[FORMAT_MISMATCH] += 1
            if mismatch.first:
                log.error("%s", mismatch)
            return
        if isinstance(exc, (SchemaMismatch, RecordError)):
            wrong = isinstance(exc, SchemaMismatch) or exc.field == "ros_type"
            self._refuse(WRONG_TYPE if wrong else MALFORMED, f"cannot decode: {exc}")
            return
        self._refuse(MALFORMED, f"cannot decode: {exc}")

    def _refuse(self, reason: str, detail: str) -> None:
        self.counts.refused[reason] += 1
        log.warning("%s: refused 1 (%s: %s)", self.route, reason, detail)


def _deadline_ns(value: Any) -> int:
    """A builtin_interfaces/Time as a dict -> ns; anything else (absent, malformed) -> 0 (no deadline; as
    issued_at of a signed command: stale)."""
    if isinstance(value, dict) and isinstance(value.get("sec"), int) and isinstance(value.get("nanosec"), int):
        return int(value["sec"]) * 1_000_000_000 + int(value["nanosec"])
    return 0
