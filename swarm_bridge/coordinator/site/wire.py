"""The single-site coordinator's MQTT wire, without sockets: topic names, and the records in and out.

Robots publish `{prefix}/{fleet}/{robot_id}/state/robot_state` (RobotState), `.../event/task_status`
(TaskStatus) and the retained `.../presence/status` (presence JSON, Last Will `offline`); the coordinator
sends `.../command/task_command` (TaskCommand). Records are Avro single-object (`C3 01`) or JSON, told
apart by their first bytes (`codec.recognise`), and may come several to a payload (a record batch). Task
requests are JSON on `{prefix}/{fleet}/coordinator/tasks/submit`, cancels (`{task_id, reason}`) on
`.../coordinator/tasks/cancel`; each answer goes to `.../coordinator/tasks/result/{task_id}`. Pause and resume
requests for VDA 5050 vehicles (`coordinator.core.pause`) come on `.../coordinator/vehicles/pause`, answered on
`.../coordinator/vehicles/result/{reply}`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

from swarm_bridge.codec.envelope import Envelope
from swarm_bridge.codec.framing import split_batch
from swarm_bridge.codec.recognise import FormatMismatch, FormatWatch, expected_shape, recognise
from swarm_bridge.codec.wire import WireDecoder, WireEncoder, wire_decoder, wire_encoder
from swarm_bridge.commands import CommandSigner
from swarm_bridge.config.coordinator import CoordinatorRecordFormat
from swarm_bridge.coordinator.core.dispatch import Command
from swarm_bridge.coordinator.core.errors import RecordBodyError
from swarm_bridge.coordinator.core.records import (
    ROBOT_STATE,
    TASK_COMMAND,
    TASK_STATUS,
    StatusReport,
    command_body,
    status_report,
)
from swarm_bridge.routing.naming import mqtt_topic, presence_topic

__all__ = ["FORMATS", "SiteRecords", "SiteTopics", "TopicKind", "codec_for", "pause_payload", "result_payload",
           "result_topic_level"]

TopicKind = Literal["state", "status", "presence", "submit", "cancel", "pause"]
FORMATS: tuple[CoordinatorRecordFormat, ...] = get_args(CoordinatorRecordFormat)  # what robots may send on MQTT


@dataclass(frozen=True)
class SiteTopics:
    """Every MQTT topic of one fleet at one site, and which kind an incoming topic is."""

    prefix: str
    fleet: str

    @property
    def subscriptions(self) -> dict[str, TopicKind]:
        """Topic filters the coordinator subscribes to, with what arrives on each."""
        return {self.every_robot("state", "robot_state"): "state", self.every_robot("event", "task_status"): "status",
                self.every_robot("presence", "status"): "presence", self.submit: "submit", self.cancel: "cancel",
                self.pause: "pause"}

    @property
    def submit(self) -> str:
        return f"{self.prefix}/{self.fleet}/coordinator/tasks/submit"

    @property
    def cancel(self) -> str:
        """Cancel requests (JSON {task_id, reason}), answered on the task's result topic."""
        return f"{self.prefix}/{self.fleet}/coordinator/tasks/cancel"

    @property
    def pause(self) -> str:
        """Pause and resume requests (JSON, `coordinator.core.pause.pause_doc`), answered on `pause_result`."""
        return f"{self.prefix}/{self.fleet}/coordinator/vehicles/pause"

    def pause_result(self, reply: str) -> str:
        return f"{self.prefix}/{self.fleet}/coordinator/vehicles/result/{reply}"

    @property
    def status(self) -> str:
        """The retained fleet status (JSON) the coordinator publishes for `swarm-bridge fleet status`."""
        return f"{self.prefix}/{self.fleet}/coordinator/status"

    def result(self, task_id: str) -> str:
        return f"{self.prefix}/{self.fleet}/coordinator/tasks/result/{task_id}"

    def robot(self, robot_id: str, channel: str, stream: str) -> str:
        return mqtt_topic(self.prefix, self.fleet, robot_id, channel, stream)

    def every_robot(self, channel: str, stream: str) -> str:
        """The subscription filter of one stream of every robot: `{prefix}/{fleet}/+/{channel}/{stream}`."""
        return f"{self.prefix}/{self.fleet}/+/{channel}/{stream}"

    def command(self, robot_id: str) -> str:
        return self.robot(robot_id, "command", "task_command")

    def presence(self, robot_id: str) -> str:
        return presence_topic(self.prefix, self.fleet, robot_id)

    def robot_of(self, topic: str) -> str:
        """The robot id level of a robot topic (empty when the topic is not one of this fleet's)."""
        parts = topic.split("/")
        if len(parts) != 5 or parts[0] != self.prefix or parts[1] != self.fleet:
            return ""
        return parts[2]


def result_topic_level(task_id: str) -> bool:
    """Whether a task id can be a topic level (no wildcards or separators); valid task ids always can."""
    return bool(task_id) and not any(c in task_id for c in "/+#\0")


class SiteRecords:
    """Decoders and encoders of the records the coordinator reads and writes on MQTT: RobotState and TaskStatus
    in (Avro or JSON, by their first byte), TaskCommand out in `fmt`, signed when a signer is given."""

    def __init__(self, topics: SiteTopics, *, fmt: CoordinatorRecordFormat = "avro",
                 signer: CommandSigner | None = None) -> None:
        self.topics, self.fmt, self.signer = topics, fmt, signer

        def dec(ros_type: str, stream: str) -> dict[str, WireDecoder]:
            subject = topics.every_robot("state" if stream == "robot_state" else "event", stream)
            return {f: wire_decoder(ros_type, f, "mqtt", subject=subject) for f in FORMATS}

        self._state = dec(ROBOT_STATE, "robot_state")
        self._status = dec(TASK_STATUS, "task_status")
        commands = topics.every_robot("command", "task_command")
        self._command_out: dict[str, WireEncoder] = {
            f: wire_encoder(TASK_COMMAND, f, "mqtt", subject=commands) for f in FORMATS}
        self._seq = 0
        self._watches = {kind: FormatWatch(
            f"site coordinator reading mqtt:{topics.every_robot(channel, stream)}", fmt, "mqtt",
            "robot_format (coordinator config)", f"the robot bridge (format: of its {stream} route in the robot "
            "bridge config)") for kind, channel, stream in (("state", "state", "robot_state"),
                                                            ("status", "event", "task_status"))}

    def mismatch(self, kind: str, payload: bytes, where: str) -> FormatMismatch | None:
        """Whether a robot's state or status payload is in another format than robot_format (counted): it is read
        all the same, but that robot's commands go out in robot_format."""
        watch = self._watches.get(kind)
        return None if watch is None else watch.mismatch(payload, where=where)

    @property
    def command_content_type(self) -> str:
        return self._command_out[self.fmt].content_type

    # -- in ---------------------------------------------------------------------------------------------

    def states(self, payload: bytes) -> list[dict[str, Any]]:
        """RobotState bodies of one payload (one record or a batch); raises for anything malformed."""
        return [codec_for(self._state, record).decode(record).body for record in split_batch(payload)]

    def statuses(self, payload: bytes) -> list[StatusReport]:
        """TaskStatus reports of one payload (one record or a batch); raises for anything malformed."""
        return [status_report(codec_for(self._status, record).decode(record).body)
                for record in split_batch(payload)]

    # -- out --------------------------------------------------------------------------------------------

    def command(self, command: Command, now_ns: int) -> bytes:
        """A Command -> TaskCommand record bytes for MQTT (seq counts this process's commands)."""
        self._seq += 1
        record = self._command_out[self.fmt].encode(Envelope(command.robot_id, "task_command", self._seq, now_ns,
                                                             TASK_COMMAND, command_body(command, now_ns)))
        return record if self.signer is None else self.signer.sign(record)


def codec_for(by_format: Mapping[str, Any], record: bytes) -> Any:
    """The codec of a record's format, recognised by its first bytes (`codec.recognise`); RecordBodyError
    naming what was expected when it is of no format in `by_format`."""
    shape = recognise(record, unwrap=False)
    codec = None if shape is None or shape.format is None else by_format.get(shape.format)
    if codec is None:
        readable = " or ".join(str(expected_shape(fmt, "mqtt")) for fmt in by_format)
        raise RecordBodyError(f"not a record this coordinator reads ({readable}): it is "
                              f"{shape or 'of no known format'}, starting {record[:4].hex(' ') or '(empty)'}")
    return codec


def result_payload(task_id: str, *, accepted: bool, state: str, reason: str, duplicate: bool) -> bytes:
    """The answer to one submission, as JSON."""
    return json.dumps({"task_id": task_id, "accepted": accepted, "state": state, "reason": reason,
                       "duplicate": duplicate}).encode()


def pause_payload(robot_id: str, *, accepted: bool, action: str, reason: str) -> bytes:
    """The answer to one pause request, as JSON: the instant action sent, or why not."""
    return json.dumps({"robot_id": robot_id, "accepted": accepted, "action": action, "reason": reason}).encode()
