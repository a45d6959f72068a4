"""The reference robot's task logic: accept, run one at a time, finish, reject without the capability, cancel."""

from __future__ import annotations

from typing import Any

import pytest
import rclpy

from swarm_bridge.ros.qos import qos_preset
from swarm_bridge.ros.spin import make_executor, spin_until
from swarm_bridge.ros.task_executor import TaskExecutor


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
