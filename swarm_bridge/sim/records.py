"""The records simulated robots make: telemetry built fast (`StreamTemplate`: the robot bridge's own Avro
single-object record of a stream's default message, with only the envelope head (seq, stamp) rewritten per
record), RobotState and TaskStatus records (`RobotRecords`, `robot_state_body`, `status_body`; as robots on a
site's broker send them `SiteRobotRecords`, on Kafka `KafkaRobotRecords`), and `read_head`."""

# An Avro record is envelope-first (robot_id, stream, seq, stamp_ns, ros_type, schema_version, body;
# `swarm_bridge.codec.avro`), so the bytes after stamp_ns never change for one stream: `StreamTemplate`
# keeps them and writes the head in front. It checks at build time that it gives byte for byte what the
# robot bridge's encoder (`wire_encoder(..., "avro", "mqtt", ...)`) gives.

from __future__ import annotations

import re
import time
from typing import Any, NamedTuple

from swarm_bridge.codec.envelope import Envelope
from swarm_bridge.codec.errors import RecordError
from swarm_bridge.codec.framing import zigzag_varint as avro_long  # an Avro long is a zigzag varint
from swarm_bridge.codec.records import RecordFormat
from swarm_bridge.codec.registry import topic_name
from swarm_bridge.codec.wire import WireDecoder, WireEncoder, registry_ids, wire_decoder, wire_encoder
from swarm_bridge.config.coordinator import CoordinatorRecordFormat
from swarm_bridge.coordinator.core.records import ROBOT_STATE, STATES, TASK_COMMAND, TASK_STATUS, ros_time
from swarm_bridge.coordinator.core.tasks import TaskState
from swarm_bridge.coordinator.kafka.records import kafka_decoder, kafka_encoder
from swarm_bridge.coordinator.site.wire import FORMATS, SiteTopics, codec_for
from swarm_bridge.sim.robots import StreamSpec, stream_encoder

__all__ = ["KafkaRobotRecords", "RecordHead", "RobotRecords", "SiteRobotRecords", "StreamTemplate", "avro_long",
           "read_head", "robot_state_body", "status_body"]

_HEADER = 10  # C3 01 + 8-byte fingerprint


def _avro_string(text: str) -> bytes:
    data = text.encode()
    return avro_long(len(data)) + data


class RecordHead(NamedTuple):
    """The envelope head of a record: robot, stream, seq and the robot's send stamp (ns)."""

    robot_id: str
    stream: str
    seq: int
    stamp_ns: int


def _long_at(data: bytes, pos: int) -> tuple[int, int]:
    raw = shift = 0
    for i in range(10):
        if pos + i >= len(data):
            break
        byte = data[pos + i]
        raw |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return (raw >> 1) ^ -(raw & 1), pos + i + 1
        shift += 7
    raise RecordError(f"bad varint at byte {pos}")


_TWO_VARINTS = re.compile(rb"([\x80-\xff]{0,9}[\x00-\x7f])([\x80-\xff]{0,9}[\x00-\x7f])")  # seq, stamp_ns


def _varint(data: bytes, start: int, end: int) -> int:
    """The zigzag varint in data[start:end] (a whole one, as `_TWO_VARINTS` found it)."""
    raw = shift = 0
    for byte in data[start:end]:
        raw |= (byte & 0x7F) << shift
        shift += 7
    return (raw >> 1) ^ -(raw & 1)


def read_head(body: bytes, start: int = 0) -> RecordHead:
    """The head of the Avro record body at `start` of `body` (no framing: e.g. 5 for a Confluent-framed value);
    RecordError if it is cut off. Robot ids and stream names under 64 bytes (one-byte lengths) are read in one
    pass, as the probe reads every record of a run; anything else field by field."""
    try:
        size = body[start]
        if not size & 0x81:
            robot_end = start + 1 + (size >> 1)
            size = body[robot_end]
            if not size & 0x81:
                seq_at = robot_end + 1 + (size >> 1)
                longs = _TWO_VARINTS.match(body, seq_at)
                if longs is not None:
                    return RecordHead(body[start + 1:robot_end].decode(), body[robot_end + 1:seq_at].decode(),
                                      _varint(body, seq_at, longs.end(1)), _varint(body, longs.end(1), longs.end()))
    except (IndexError, UnicodeDecodeError):
        pass
    return _read_head(body[start:] if start else body)


def _read_head(body: bytes) -> RecordHead:
    size, pos = _long_at(body, 0)
    robot_id = body[pos:pos + size].decode()
    size, pos = _long_at(body, pos + size)
    stream = body[pos:pos + size].decode()
    seq, pos = _long_at(body, pos + size)
    stamp, _ = _long_at(body, pos)
    return RecordHead(robot_id, stream, seq, stamp)


class StreamTemplate:
    """One robot's one stream: `record(seq, stamp_ns)` gives the framed record its bridge would send."""

    def __init__(self, spec: StreamSpec, robot_id: str, topic: str) -> None:
        self.encoder, self.cdr = stream_encoder(spec, topic)
        self.robot_id, self.stream = robot_id, spec.name
        self._who = _avro_string(robot_id) + _avro_string(spec.name)
        sample = self._encoded(1, 1)
        self._frame = sample[:_HEADER]
        self._tail = sample[_HEADER + len(self._who) + 2:]  # seq 1 and stamp 1 are one byte each
        for seq, stamp in ((1 << 32 | 5, 1_700_000_000_123_456_789), (7 << 32 | 123_456, 3)):
            if self.record(seq, stamp) != self._encoded(seq, stamp):
                raise RecordError(f"{spec.ros_type}: fast record differs from the robot bridge's encoder")

    def _encoded(self, seq: int, stamp_ns: int) -> bytes:
        return self.encoder.encode_cdr(self.cdr, robot_id=self.robot_id, stream=self.stream, seq=seq,
                                       stamp_ns=stamp_ns)

    def record(self, seq: int, stamp_ns: int) -> bytes:
        return b"".join((self._frame, self._who, avro_long(seq), avro_long(stamp_ns), self._tail))


class RobotRecords:
    """A robot's records built from dicts (RobotState, TaskStatus) and its command decoder, MQTT framing."""

    def __init__(self, *, kind: str, capabilities: list[str]) -> None:
        self.kind, self.capabilities = kind, capabilities
        self.state: WireEncoder = wire_encoder(ROBOT_STATE, "avro", "mqtt",
                                               subject=topic_name("fleet.state.robot_state", ROBOT_STATE))
        self.status: WireEncoder = wire_encoder(TASK_STATUS, "avro", "mqtt",
                                                subject=topic_name("fleet.event.task_status", TASK_STATUS))
        self.commands: WireDecoder = wire_decoder(TASK_COMMAND, "avro", "mqtt",
                                                  subject=topic_name("fleet.command.task_command", TASK_COMMAND))

    def state_record(self, robot_id: str, *, seq: int, x: float, y: float, battery: float,
                     stamp_ns: int | None = None) -> bytes:
        """The robot's RobotState (idle, its kind's capabilities) with `seq`, stamped now."""
        now = stamp_ns or time.time_ns()
        body = robot_state_body(robot_id, self.kind, self.capabilities, x=x, y=y, battery=battery, now_ns=now)
        return self.state.encode(Envelope(robot_id, "robot_state", seq, now, ROBOT_STATE, body))

    def status_record(self, robot_id: str, task_id: str, state: TaskState, *, seq: int) -> bytes:
        """A TaskStatus the robot answers a command with."""
        now = time.time_ns()
        body = status_body(robot_id=robot_id, task_id=task_id, state=STATES.index(state),
                           progress=1.0 if state is TaskState.DONE else 0.0, now_ns=now)
        return self.status.encode(Envelope(robot_id, "task_status", seq, now, TASK_STATUS, body))


def robot_state_body(robot_id: str, kind: str, capabilities: list[str], *, x: float, y: float, battery: float,
                     mode: int = 1, current_task_id: str = "", now_ns: int = 0) -> dict[str, Any]:
    """A RobotState message dict (simulated robots, tests)."""
    return {"robot_id": robot_id, "robot_kind": kind, "capabilities": capabilities, "mode": mode,
            "pose": {"header": {"stamp": ros_time(now_ns), "frame_id": "map"},
                     "pose": {"position": {"x": x, "y": y, "z": 0.0},
                              "orientation": {"x": 0.0, "y": 0.0, "z": 0.0, "w": 1.0}}},
            "battery_percent": battery, "charging": False, "current_task_id": current_task_id,
            "stamp": ros_time(now_ns)}


def status_body(*, robot_id: str, task_id: str, state: int, reason: str = "", progress: float = 0.0,
                now_ns: int) -> dict[str, Any]:
    """A TaskStatus message dict as a robot sends it (`state` = TaskStatus.STATE_*)."""
    return {"task_id": task_id, "robot_id": robot_id, "state": state, "reason": reason, "progress": progress,
            "stamp": ros_time(now_ns)}


class SiteRobotRecords:
    """The records of robots on a site's MQTT broker, as their bridges make them: RobotState and TaskStatus in
    `fmt`, and the TaskCommands they read (Avro or JSON, by their first bytes); the robot side of `SiteRecords`."""

    def __init__(self, topics: SiteTopics, *, fmt: CoordinatorRecordFormat = "avro") -> None:
        self.topics, self.fmt = topics, fmt
        self._state = wire_encoder(ROBOT_STATE, fmt, "mqtt", subject=topics.every_robot("state", "robot_state"))
        self._status = wire_encoder(TASK_STATUS, fmt, "mqtt", subject=topics.every_robot("event", "task_status"))
        commands = topics.every_robot("command", "task_command")
        self._commands: dict[str, WireDecoder] = {
            f: wire_decoder(TASK_COMMAND, f, "mqtt", subject=commands) for f in FORMATS}

    def command_fields(self, payload: bytes) -> dict[str, Any]:
        """A TaskCommand record (unsigned) -> its message dict."""
        return codec_for(self._commands, payload).decode(payload).body

    def state_record(self, body: dict[str, Any], *, seq: int, now_ns: int) -> bytes:
        """A RobotState record as a robot's bridge sends it."""
        return self._state.encode(Envelope(str(body["robot_id"]), "robot_state", seq, now_ns, ROBOT_STATE, body))

    def status_record(self, *, robot_id: str, task_id: str, state: int, seq: int, now_ns: int, reason: str = "",
                      progress: float = 0.0) -> bytes:
        """A TaskStatus record (`state` = TaskStatus.STATE_*) as a robot's bridge sends it."""
        body = status_body(robot_id=robot_id, task_id=task_id, state=state, reason=reason, progress=progress,
                           now_ns=now_ns)
        return self._status.encode(Envelope(robot_id, "task_status", seq, now_ns, TASK_STATUS, body))


class KafkaRobotRecords:
    """The records of robots on Kafka (Confluent framing, subjects by `subject_name_strategy`): RobotState and
    TaskStatus as they send them, the TaskCommands they read; the robot side of `FleetRecords`. `close()` releases
    the registry client."""

    def __init__(self, *, fmt: RecordFormat, registry: str, state_topic: str, status_topic: str,
                 commands_topic: str, subject_name_strategy: str = "topic_name") -> None:
        self.registry = ids = registry_ids(registry)
        strategy = subject_name_strategy
        self._state = kafka_encoder(ROBOT_STATE, state_topic, fmt=fmt, ids=ids, subject_name_strategy=strategy)
        self._status = kafka_encoder(TASK_STATUS, status_topic, fmt=fmt, ids=ids, subject_name_strategy=strategy)
        self._commands = kafka_decoder(TASK_COMMAND, commands_topic, fmt=fmt, ids=ids, subject_name_strategy=strategy)

    def close(self) -> None:
        self.registry.close()

    def command_fields(self, payload: bytes) -> dict[str, Any]:
        """A TaskCommand record (unsigned) -> its message dict."""
        return self._commands.decode(payload).body

    def state_record(self, body: dict[str, Any], *, seq: int, now_ns: int) -> bytes:
        """A RobotState record as a robot sends it."""
        return self._state.encode(Envelope(str(body["robot_id"]), "robot_state", seq, now_ns, ROBOT_STATE, body))

    def status_record(self, *, robot_id: str, task_id: str, state: TaskState, seq: int, now_ns: int,
                      reason: str = "", progress: float = 0.0) -> bytes:
        """A TaskStatus record as a robot sends it."""
        body = status_body(robot_id=robot_id, task_id=task_id, state=STATES.index(state), reason=reason,
                           progress=progress, now_ns=now_ns)
        return self._status.encode(Envelope(robot_id, "task_status", seq, now_ns, TASK_STATUS, body))
