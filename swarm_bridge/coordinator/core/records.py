"""The fleet records the coordinator reads and writes, as message dicts: their ROS types, a TaskStatus read
into a `StatusReport`, a `Command` written as a TaskCommand body (the same on Kafka and MQTT)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from swarm_bridge.coordinator.core.dispatch import Command
from swarm_bridge.coordinator.core.errors import RecordBodyError
from swarm_bridge.coordinator.core.tasks import TaskState

__all__ = ["ROBOT_STATE", "STATES", "TASK_COMMAND", "TASK_STATUS", "StatusReport", "command_body", "ros_time",
           "status_report"]

ROBOT_STATE = "swarm_bridge_msgs/msg/RobotState"
TASK_STATUS = "swarm_bridge_msgs/msg/TaskStatus"
TASK_COMMAND = "swarm_bridge_msgs/msg/TaskCommand"
STATES = tuple(TaskState)  # index = TaskStatus.STATE_*


@dataclass(frozen=True)
class StatusReport:
    """A robot's TaskStatus, as the dispatch wants it."""

    robot_id: str
    task_id: str
    state: TaskState
    reason: str
    progress: float


def status_report(body: Mapping[str, Any]) -> StatusReport:
    """A TaskStatus message dict -> StatusReport; RecordBodyError when its state is no TaskStatus.STATE_* value."""
    state = int(body["state"])
    if not 0 <= state < len(STATES):
        raise RecordBodyError(f"task_status: state {state} is not a TaskStatus.STATE_* value")
    return StatusReport(str(body["robot_id"]), str(body["task_id"]), STATES[state], str(body["reason"]),
                        float(body["progress"]))


def ros_time(ns: int) -> dict[str, int]:
    """A builtin_interfaces/Time dict of ns since the epoch."""
    return {"sec": ns // 1_000_000_000, "nanosec": ns % 1_000_000_000}


def command_body(command: Command, now_ns: int) -> dict[str, Any]:
    """The TaskCommand message dict of a Command (the same on Kafka and MQTT)."""
    request = command.task.request
    target = request.target
    return {
        "task_id": command.task.task_id, "command_id": command.command_id, "robot_id": command.robot_id,
        "shard": command.shard, "action": command.action, "priority": request.priority, "kind": request.kind,
        "target_pose": {"header": {"stamp": ros_time(now_ns), "frame_id": target.frame_id},
                        "pose": {"position": {"x": target.x, "y": target.y, "z": target.z},
                                 "orientation": {"x": 0.0, "y": 0.0, "z": 0.0, "w": 1.0}}},
        "parameters": [{"key": k, "value": v} for k, v in request.parameters],
        "deadline": ros_time(request.deadline_ns), "issued_at": ros_time(now_ns),
    }
