"""The reference robot's task logic: accept, run one at a time, finish, reject without the capability, cancel."""

from __future__ import annotations

from typing import Any

import pytest
import rclpy

from swarm_bridge.ros.qos import qos_preset
from swarm_bridge.ros.spin import make_executor, spin_until
from swarm_bridge.ros.task_executor import TaskExecutor
from swarm_bridge.ros.task_work import (
    ACCEPTED,
    ACTION_ASSIGN,
    ACTION_CANCEL,
    CANCELLED,
    DONE,
    REJECTED,
    RUNNING,
    TaskWork,
)


def _assign(work: TaskWork, task_id: str, now: float, kind: str = "navigate") -> list[tuple[str, int]]:
    return [(r.task_id, r.state) for r in work.command(task_id=task_id, action=ACTION_ASSIGN, kind=kind, now_s=now)]


def test_tasks_run_one_at_a_time_in_arrival_order() -> None:
    work = TaskWork(frozenset({"navigate"}), work_s=2.0)
    assert _assign(work, "t1", 0.0) == [("t1", ACCEPTED), ("t1", RUNNING)]
    assert _assign(work, "t2", 0.5) == [("t2", ACCEPTED)]
    assert work.current == "t1"
    assert work.advance(1.9) == []
    assert [(r.task_id, r.state) for r in work.advance(2.0)] == [("t1", DONE), ("t2", RUNNING)]
    assert [(r.task_id, r.state) for r in work.advance(4.1)] == [("t2", DONE)]
    assert work.current == ""


def test_a_task_outside_the_capabilities_is_rejected_with_the_reason() -> None:
    work = TaskWork(frozenset({"navigate", "inspect"}))
    reports = work.command(task_id="t1", action=ACTION_ASSIGN, kind="fly", now_s=0.0)
    assert [(r.state, r.reason) for r in reports] == [(REJECTED, "no capability 'fly' (has inspect, navigate)")]
    assert work.current == ""


def test_a_repeated_assignment_changes_nothing_and_cancel_stops_running_or_queued() -> None:
    work = TaskWork(frozenset({"navigate"}), work_s=5.0)
    _assign(work, "t1", 0.0)
    _assign(work, "t2", 0.0)
    assert _assign(work, "t1", 1.0) == [] and _assign(work, "t2", 1.0) == []
    cancelled = work.command(task_id="t2", action=ACTION_CANCEL, kind="", now_s=1.0)
    assert [(r.task_id, r.state) for r in cancelled] == [("t2", CANCELLED)]
    assert [(r.task_id, r.state) for r in work.command(task_id="t1", action=ACTION_CANCEL, kind="", now_s=1.0)] \
        == [("t1", CANCELLED)]
    assert work.command(task_id="nope", action=ACTION_CANCEL, kind="", now_s=1.0) == []
    assert work.advance(10.0) == [] and work.current == ""


@pytest.mark.integration
def test_the_executor_answers_commands_on_ros_and_publishes_its_state(ros_context: Any) -> None:
    from swarm_bridge_msgs.msg import RobotState, TaskCommand, TaskStatus

    robot = rclpy.create_node("executor_amr_1", context=ros_context)
    fleet = rclpy.create_node("fleet_side", context=ros_context)
    executor = TaskExecutor(robot, "amr_1", capabilities=("navigate", "inspect"), work_s=0.2, state_period_s=0.2)
    statuses: list[tuple[str, int, str]] = []
    states: list[tuple[str, str]] = []
    fleet.create_subscription(TaskStatus, "/amr_1/task_status",
                              lambda m: statuses.append((m.task_id, m.state, m.reason)), qos_preset("reliable"))
    fleet.create_subscription(RobotState, "/amr_1/robot_state",
                              lambda m: states.append((m.robot_id, m.current_task_id)), qos_preset("reliable"))
    commands = fleet.create_publisher(TaskCommand, "/amr_1/task_command", qos_preset("reliable"))
    spin = make_executor(ros_context)
    assert spin_until(spin, [robot, fleet], done=lambda: commands.get_subscription_count() > 0 and bool(states),
                      timeout_s=30)
    commands.publish(TaskCommand(task_id="t1", robot_id="amr_1", action=TaskCommand.ACTION_ASSIGN, kind="inspect"))
    commands.publish(TaskCommand(task_id="t2", robot_id="amr_1", action=TaskCommand.ACTION_ASSIGN, kind="fly"))
    assert spin_until(spin, [], done=lambda: ("t1", TaskStatus.STATE_DONE, "") in statuses, timeout_s=30)
    assert [s for s in statuses if s[0] == "t1"] == [
        ("t1", TaskStatus.STATE_ACCEPTED, ""), ("t1", TaskStatus.STATE_RUNNING, ""), ("t1", TaskStatus.STATE_DONE, "")]
    assert ("t2", TaskStatus.STATE_REJECTED, "no capability 'fly' (has inspect, navigate)") in statuses
    assert ("amr_1", "t1") in states and states[-1] == ("amr_1", "")
    assert len(executor.reports) == 4
    robot.destroy_node()
    fleet.destroy_node()
