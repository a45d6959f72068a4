"""Down direction: records from the uplink, their signature verified (swarm_bridge.commands), decoded in the
route's format and checked (this robot, not expired, not a repeat, signed ones issued recently), published on a
ROS topic. Anything refused is counted by reason; nothing stops the route."""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from rclpy.node import Node

from swarm_bridge.codec import CodecError, FramingError, RecordError, SchemaMismatch
from swarm_bridge.codec.framing import split_batch
from swarm_bridge.codec.recognise import FormatWatch
from swarm_bridge.codec.signing import is_signed, open_signed
from swarm_bridge.codec.wire import WireDecoder
from swarm_bridge.commands import CommandGate, CommandVerifier, Keyring, Verdict
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


@dataclass
class DownlinkCounts:
    """What one down route saw: records from the uplink, messages published on ROS, refusals by reason."""

    received: int = 0
    published: int = 0
    refused: Counter[str] = field(default_factory=Counter)


class DownlinkRoute:
    """Uplink destination -> ROS topic for one route of one robot."""

    def __init__(self, node: Node, route: Route, *, robot_id: str, uplink: Uplink, metrics: BridgeMetrics,
                 decoder: WireDecoder, verifier: CommandVerifier | None = None, max_age_s: float = 300.0,
                 max_clock_skew_s: float = 30.0) -> None:
        self.route = route
        self.counts = DownlinkCounts()
        self.gate = CommandGate(robot_id, max_age_s=max_age_s, max_clock_skew_s=max_clock_skew_s)
        # No verifier given: unsigned records pass, signed ones are refused (no key is trusted).
        self.verifier = verifier or CommandVerifier(Keyring(), required=False)
        self._robot_id = robot_id
        self._decoder = decoder
        self._formats = FormatWatch(
            str(route), route.format, route.scheme, f"format: of this route (stream {route.stream}) in the robot "
            "bridge config", "the coordinator (robot_format in its config; the gateway turns its Confluent Avro "
            "into Avro single-object and passes JSON through)")
        self._cls = message_class(route.ros_type)
        self._publisher = node.create_publisher(self._cls, route.ros_topic,
                                                qos_preset(route.qos, depth=route.qos_depth))
        counts = self.counts
        metrics.watch_route(str(route), lambda: {"received": counts.received, "published": counts.published},
                            lambda: counts.refused)
        uplink.subscribe(route.destination, self._on_record)
        log.info("%s: down (%s, qos %s)", route, route.ros_type, route.qos)

    def _on_record(self, _topic: str, key: bytes | None, payload: bytes) -> None:
        if key is not None and key != self._robot_id.encode():
            return  # a Kafka topic shared by robots: another robot's record
        if self.route.scheme != "mqtt":  # Kafka records come one by one
            self._on_command(payload)
            return
        try:
            records = split_batch(payload)  # one record, or a batch of them (binary frame or JSON array)
        except FramingError as exc:
            self.counts.received += 1
            self._refuse(MALFORMED, f"cannot split: {exc}")
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
        verdict = self.gate.check(
            robot_id=min(addressees) if addressees else self._robot_id,  # any other addressee: not ours
            command_id=command_id,
            deadline_ns=_deadline_ns(body.get("deadline")),
            now_ns=time.time_ns(),
            issued_ns=_deadline_ns(body.get("issued_at")) if signed else None,  # only signed: it can be trusted
        )
        if verdict is not Verdict.ACCEPT:
            self._refuse(verdict.value, f"seq {envelope.seq}")
            return
        try:
            self._publisher.publish(dict_to_message(self._cls, body))
        except Exception as exc:  # rclpy raises several types for values out of range
            self._refuse(NOT_PUBLISHABLE, str(exc))
            return  # not remembered: a redelivery of this command is accepted again
        self.gate.remember(command_id)
        self.counts.published += 1

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
