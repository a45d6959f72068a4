"""Reference task executor: the robot side of the fleet's task protocol, for demos and end-to-end tests.

Takes TaskCommand on `/<ns>/task_command`, answers with TaskStatus on `/<ns>/task_status` (accepted, running,
done; rejected without the capability) and publishes RobotState on `/<ns>/robot_state` every `state_period_s`,
so a robot bridge carries them up to the coordinator like a real robot's (`<ns>`: `robot_namespace(robot_id)`,
what `{robot_id}` becomes in the bridge's topics).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence

from rclpy.node import Node

from swarm_bridge.ros.qos import qos_preset
from swarm_bridge.ros.task_work import Report, TaskWork
from swarm_bridge.routing.naming import robot_namespace

__all__ = ["TaskExecutor"]

log = logging.getLogger(__name__)


class TaskExecutor:
    """One robot's executor on `node`: works each task for `work_s` seconds, one at a time."""

    def __init__(self, node: Node, robot_id: str, *, robot_kind: str = "amr",
                 capabilities: Sequence[str] = ("navigate",), work_s: float = 1.0,
                 state_period_s: float = 1.0) -> None:
        from swarm_bridge_msgs.msg import RobotState, TaskCommand, TaskStatus

        self.robot_id, self.robot_kind = robot_id, robot_kind
        self.work = TaskWork(frozenset(capabilities), work_s)
        self.reports: list[Report] = []
        self._node = node
        self._state_msg, self._status_msg = RobotState, TaskStatus
        reliable = qos_preset("reliable")
        ns = robot_namespace(robot_id)
        self._status = node.create_publisher(TaskStatus, f"/{ns}/task_status", reliable)
        self._state = node.create_publisher(RobotState, f"/{ns}/robot_state", reliable)
        self._commands = node.create_subscription(TaskCommand, f"/{ns}/task_command", self._on_command, reliable)
        self._tick = node.create_timer(min(0.1, work_s / 4 if work_s > 0 else 0.1), self._advance)
        self._state_timer = node.create_timer(state_period_s, self.publish_state)

    def _on_command(self, msg: object) -> None:
        reports = self.work.command(task_id=msg.task_id, action=msg.action, kind=msg.kind,  # type: ignore[attr-defined]
                                    now_s=time.monotonic())
        self._publish(reports)

    def _advance(self) -> None:
        self._publish(self.work.advance(time.monotonic()))

    def _publish(self, reports: list[Report]) -> None:
        for report in reports:
            msg = self._status_msg()
            msg.task_id, msg.robot_id, msg.state = report.task_id, self.robot_id, report.state
            msg.reason, msg.progress = report.reason, report.progress
            msg.stamp.sec, msg.stamp.nanosec = divmod(time.time_ns(), 1_000_000_000)
            self._status.publish(msg)
            self.reports.append(report)
            log.debug("%s: task %s -> state %d %s", self.robot_id, report.task_id, report.state, report.reason)
        if reports:
            self.publish_state()

    def publish_state(self) -> None:
        """Publish RobotState now: kind, capabilities, mode (idle or autonomous), current task."""
        msg = self._state_msg()
        msg.robot_id, msg.robot_kind = self.robot_id, self.robot_kind
        msg.capabilities = sorted(self.work.capabilities)
        msg.current_task_id = self.work.current
        msg.mode = msg.MODE_AUTONOMOUS if msg.current_task_id else msg.MODE_IDLE
        msg.battery_percent = math.nan
        msg.stamp.sec, msg.stamp.nanosec = divmod(time.time_ns(), 1_000_000_000)
        msg.pose.header.stamp = msg.stamp
        msg.pose.header.frame_id = "map"
        self._state.publish(msg)
