"""The coordinator's wire records: RobotState and TaskStatus in, TaskCommand out (Avro or JSON, Confluent
framing on Kafka). Built once per process from the config; presence JSON is routing/presence.py."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from swarm_bridge.codec.envelope import Envelope
from swarm_bridge.codec.recognise import FormatMismatch, FormatWatch
from swarm_bridge.codec.records import RecordFormat
from swarm_bridge.codec.wire import WireDecoder, WireEncoder, registry_ids, route_subject, wire_decoder, wire_encoder
from swarm_bridge.commands import CommandSigner
from swarm_bridge.coordinator.dispatch import Command
from swarm_bridge.coordinator.tasks import TaskState

__all__ = ["ROBOT_STATE", "TASK_COMMAND", "TASK_STATUS", "FleetRecords", "StatusReport", "command_body",
           "status_body"]

ROBOT_STATE = "swarm_bridge_msgs/msg/RobotState"
TASK_STATUS = "swarm_bridge_msgs/msg/TaskStatus"
TASK_COMMAND = "swarm_bridge_msgs/msg/TaskCommand"
_STATES = list(TaskState)  # index = TaskStatus.STATE_*


@dataclass(frozen=True)
class StatusReport:
    """A robot's TaskStatus, as the dispatch wants it."""

    robot_id: str
    task_id: str
    state: TaskState
    reason: str
    progress: float


class FleetRecords:
    """Encoders and decoders of one fleet's Kafka records (subjects named by `subject_name_strategy`); holds one
    registry client, released by `close()`."""

    def __init__(self, *, fmt: RecordFormat, registry: str, state_topic: str, status_topic: str,
                 commands_topic: str, signer: CommandSigner | None = None,
                 subject_name_strategy: str = "topic_name") -> None:
        self.signer = signer
        self.registry = ids = registry_ids(registry)

        def enc(ros_type: str, topic: str) -> WireEncoder:
            subject = route_subject(subject_name_strategy, topic, ros_type)
            return wire_encoder(ros_type, fmt, "kafka", subject=subject, register=ids)

        def dec(ros_type: str, topic: str) -> WireDecoder:
            subject = route_subject(subject_name_strategy, topic, ros_type)
            return wire_decoder(ros_type, fmt, "kafka", subject=subject, lookup=ids)

        self.state_encoder, self.state_decoder = enc(ROBOT_STATE, state_topic), dec(ROBOT_STATE, state_topic)
        self.status_encoder, self.status_decoder = enc(TASK_STATUS, status_topic), dec(TASK_STATUS, status_topic)
        self.command_encoder = enc(TASK_COMMAND, commands_topic)
        self.command_decoder = dec(TASK_COMMAND, commands_topic)
        self._seq = 0
        self._watches = {topic: FormatWatch(
            f"coordinator reading kafka:{topic}", fmt, "kafka", "robot_format (coordinator config)",
            f"the robot bridges (format: of their {stream} route in the robot bridge config; the gateway keeps "
            "Avro as Avro and JSON as JSON unless its up rule says json_format: avro)")
            for topic, stream in ((state_topic, "robot_state"), (status_topic, "task_status"))}

    def mismatch(self, topic: str, payload: bytes, where: str) -> FormatMismatch | None:
        """After a robot's record on `topic` failed to decode: the format mismatch it is, if it is one (counted)."""
        watch = self._watches.get(topic)
        return None if watch is None else watch.mismatch(payload, where=where)

    def close(self) -> None:
        """Release the registry client (its HTTP session, for a Confluent-API registry)."""
        self.registry.close()

    def status(self, payload: bytes) -> StatusReport:
        body = self.status_decoder.decode(payload).body
        return StatusReport(str(body["robot_id"]), str(body["task_id"]), _STATES[int(body["state"])],
                            str(body["reason"]), float(body["progress"]))

    def command(self, command: Command, now_ns: int) -> bytes:
        """A Command -> TaskCommand record bytes (seq counts this process's commands), signed when a signer
        is set."""
        self._seq += 1
        record = self.command_encoder.encode(Envelope(command.robot_id, "task_command", self._seq, now_ns,
                                                      TASK_COMMAND, command_body(command, now_ns)))
        return record if self.signer is None else self.signer.sign(record)

    def status_record(self, *, robot_id: str, task_id: str, state: TaskState, seq: int, now_ns: int,
                      reason: str = "", progress: float = 0.0) -> bytes:
        """A TaskStatus record as a robot sends it (simulated robots, tests)."""
        body = status_body(robot_id=robot_id, task_id=task_id, state=_STATES.index(state), reason=reason,
                           progress=progress, now_ns=now_ns)
        return self.status_encoder.encode(Envelope(robot_id, "task_status", seq, now_ns, TASK_STATUS, body))

    def state_record(self, body: dict[str, Any], *, seq: int, now_ns: int) -> bytes:
        """A RobotState record as a robot sends it (simulated robots, tests)."""
        return self.state_encoder.encode(Envelope(str(body["robot_id"]), "robot_state", seq, now_ns, ROBOT_STATE,
                                                  body))


def _time(ns: int) -> dict[str, int]:
    return {"sec": ns // 1_000_000_000, "nanosec": ns % 1_000_000_000}


def command_body(command: Command, now_ns: int) -> dict[str, Any]:
    """The TaskCommand message dict of a Command (the same on Kafka and MQTT)."""
    request = command.task.request
    target = request.target
    return {
        "task_id": command.task.task_id, "command_id": command.command_id, "robot_id": command.robot_id,
        "shard": command.shard, "action": command.action, "priority": request.priority, "kind": request.kind,
        "target_pose": {"header": {"stamp": _time(now_ns), "frame_id": target.frame_id},
                        "pose": {"position": {"x": target.x, "y": target.y, "z": target.z},
                                 "orientation": {"x": 0.0, "y": 0.0, "z": 0.0, "w": 1.0}}},
        "parameters": [{"key": k, "value": v} for k, v in request.parameters],
        "deadline": _time(request.deadline_ns), "issued_at": _time(now_ns),
    }


def status_body(*, robot_id: str, task_id: str, state: int, reason: str = "", progress: float = 0.0,
                now_ns: int) -> dict[str, Any]:
    """A TaskStatus message dict as a robot sends it (`state` = TaskStatus.STATE_*)."""
    return {"task_id": task_id, "robot_id": robot_id, "state": state, "reason": reason, "progress": progress,
            "stamp": _time(now_ns)}
