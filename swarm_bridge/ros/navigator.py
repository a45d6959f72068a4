"""A simulated navigator, harness not product: a NavigateToPose action server (the motion is swarm_bridge.sim.
navigation's) that drives a pose over time, gives up beyond its map, honours cancel, and publishes RobotState, so
a robot bridge with tasks through actions has a robot to drive in tests and the demo."""

from __future__ import annotations

import itertools
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.node import Node

from swarm_bridge.ros.qos import qos_preset
from swarm_bridge.routing.naming import robot_namespace
from swarm_bridge.sim.navigation import NONE, UNKNOWN, Base

__all__ = ["GoalRecord", "SimNavigator"]

log = logging.getLogger(__name__)

STEP_S = 0.05


@dataclass
class GoalRecord:
    """What happened to one goal: where it went, whether a cancel was asked, how it ended (GoalStatus name)."""

    goal_id: str
    x: float
    y: float
    cancel_requested: bool = False
    ended: str = ""


@dataclass
class _Running:
    handle: Any
    record: GoalRecord
    future: Any
    started: float
    remaining: float
    last_feedback: float = 0.0


class SimNavigator:
    """`/<ns>/navigate_to_pose` on `node` for robot `robot_id` (`<ns>`: its ROS namespace), and RobotState on
    `/<ns>/robot_state` every `state_period_s`. `feedback_period_s` None: no feedback at all (a quiet server)."""

    def __init__(self, node: Node, robot_id: str, *, speed_mps: float = 2.0, half_size_m: float = 50.0,
                 feedback_period_s: float | None = 0.1, robot_kind: str = "amr",
                 capabilities: Sequence[str] = ("navigate",), state_period_s: float = 0.5,
                 action: str | None = None) -> None:
        from nav2_msgs.action import NavigateToPose
        from swarm_bridge_msgs.msg import RobotState

        ns = robot_namespace(robot_id)
        self.robot_id, self.robot_kind, self.capabilities = robot_id, robot_kind, list(capabilities)
        self.base = Base(speed_mps=speed_mps, half_size_m=half_size_m)
        self.feedback_period_s = feedback_period_s
        self.silent = False  # True: no RobotState (the coordinator then takes the robot for lost)
        self.goals: list[GoalRecord] = []
        self._action = NavigateToPose
        self._state_msg = RobotState
        self._node = node
        self._running: dict[int, _Running] = {}
        self._ids = itertools.count()
        self.action_name = action or f"/{ns}/navigate_to_pose"
        self._server = ActionServer(node, NavigateToPose, self.action_name, self._execute,
                                    goal_callback=self._on_goal, cancel_callback=self._on_cancel)
        self._state = node.create_publisher(RobotState, f"/{ns}/robot_state", qos_preset("reliable"))
        self._tick = node.create_timer(STEP_S, self._step)
        self._state_timer = node.create_timer(state_period_s, self.publish_state)

    def _on_goal(self, request: Any) -> GoalResponse:
        refusal = self.base.refusal(request.pose.header.frame_id)
        if refusal:
            log.info("%s: goal refused: %s", self.action_name, refusal)
            return GoalResponse.REJECT
        return GoalResponse.ACCEPT

    def _on_cancel(self, handle: Any) -> CancelResponse:
        for running in self._running.values():
            if running.handle.goal_id.uuid.tobytes() == handle.goal_id.uuid.tobytes():
                running.record.cancel_requested = True
        return CancelResponse.ACCEPT

    async def _execute(self, handle: Any) -> Any:
        """Runs until the timer completes this goal's future (arrived, given up, cancelled, or preempted)."""
        for other in list(self._running.values()):  # a new goal preempts the one running, as Nav2 does
            self._end(other, "ABORTED", UNKNOWN, "preempted by a new goal")
        pose = handle.request.pose.pose.position
        record = GoalRecord(bytes(handle.goal_id.uuid).hex(), pose.x, pose.y)
        self.goals.append(record)
        executor = self._node.executor
        future = executor.create_future() if executor is not None and hasattr(executor, "create_future") else None
        if future is None:
            from rclpy.task import Future

            future = Future()
        now = time.monotonic()
        self._running[next(self._ids)] = _Running(handle, record, future, now, math.hypot(pose.x - self.base.x,
                                                                                          pose.y - self.base.y))
        return await future

    def _step(self) -> None:
        now = time.monotonic()
        for key, running in list(self._running.items()):
            if key not in self._running:
                continue
            if running.handle.is_cancel_requested:
                self._end(running, "CANCELED", NONE, "cancelled")
                continue
            goal = running.handle.request.pose.pose.position
            leg = self.base.step(goal.x, goal.y, STEP_S)
            running.remaining = leg.remaining
            if leg.failed:
                self._end(running, "ABORTED", UNKNOWN, leg.failed)
            elif leg.arrived:
                self._end(running, "SUCCEEDED", NONE, "")
            elif self.feedback_period_s is not None and now - running.last_feedback >= self.feedback_period_s:
                running.last_feedback = now
                self._feedback(running, now)

    def _feedback(self, running: _Running, now: float) -> None:
        fb = self._action.Feedback()
        fb.current_pose.header.frame_id = self.base.frame
        fb.current_pose.pose.position.x, fb.current_pose.pose.position.y = self.base.x, self.base.y
        fb.current_pose.pose.orientation.z = math.sin(self.base.yaw / 2)
        fb.current_pose.pose.orientation.w = math.cos(self.base.yaw / 2)
        fb.navigation_time.sec, fb.navigation_time.nanosec = _duration(now - running.started)
        left = running.remaining / self.base.speed_mps if self.base.speed_mps > 0 else 0.0
        fb.estimated_time_remaining.sec, fb.estimated_time_remaining.nanosec = _duration(left)
        fb.distance_remaining = float(running.remaining)
        running.handle.publish_feedback(fb)

    def _end(self, running: _Running, how: str, code: int, message: str) -> None:
        for key, value in list(self._running.items()):
            if value is running:
                del self._running[key]
        {"SUCCEEDED": running.handle.succeed, "CANCELED": running.handle.canceled,
         "ABORTED": running.handle.abort}[how]()
        running.record.ended = how
        result = self._action.Result()
        result.error_code, result.error_msg = code, message
        running.future.set_result(result)
        log.info("%s: goal %s %s%s", self.action_name, running.record.goal_id[:8], how,
                 f" ({message})" if message else "")
        self.publish_state()

    def publish_state(self) -> None:
        """Publish RobotState now (unless `silent`): kind, capabilities, pose, autonomous while a goal runs."""
        if self.silent:
            return
        msg = self._state_msg()
        msg.robot_id, msg.robot_kind = self.robot_id, self.robot_kind
        msg.capabilities = list(self.capabilities)
        msg.mode = msg.MODE_AUTONOMOUS if self._running else msg.MODE_IDLE
        msg.battery_percent = math.nan
        msg.stamp.sec, msg.stamp.nanosec = divmod(time.time_ns(), 1_000_000_000)
        msg.pose.header.stamp = msg.stamp
        msg.pose.header.frame_id = self.base.frame
        msg.pose.pose.position.x, msg.pose.pose.position.y = self.base.x, self.base.y
        self._state.publish(msg)

    def close(self) -> None:
        self._server.destroy()


def _duration(seconds: float) -> tuple[int, int]:
    whole = int(max(0.0, seconds))
    return whole, int((max(0.0, seconds) - whole) * 1e9)
