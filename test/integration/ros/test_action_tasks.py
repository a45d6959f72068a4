"""Tasks through ROS 2 actions end to end: the site coordinator on a real Mosquitto assigns, a real robot bridge
turns the TaskCommand into a NavigateToPose goal for a real rclpy action server (the simulated navigator), and
the goal's acceptance, feedback and end come back as the task's states: done, failed, rejected, cancelled, and
the bridge stopped (or killed and restarted) while a goal runs."""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from action_robot import ActionRobot
from site_harness import wait_for

from swarm_bridge.brokers import Mosquitto
from swarm_bridge.coordinator.core.tasks import TERMINAL, TaskState


@pytest.fixture()
def robot_factory(mosquitto: Mosquitto, tmp_path: Path, ros_context: Any,
                  ros_env: dict[str, str]) -> Iterator[Callable[..., ActionRobot]]:
    robots: list[ActionRobot] = []

    def make(**options: Any) -> ActionRobot:
        robot = ActionRobot(mosquitto, tmp_path / f"robot{len(robots)}", ros_context, ros_env, **options)
        robots.append(robot)
        return robot

    yield make
    for robot in robots:
        robot.close()


def _ended(robot: ActionRobot, task_id: str, timeout_s: float = 60) -> None:
    wait_for(lambda: robot.task(task_id).state in TERMINAL, timeout_s, f"task {task_id} to end")


def test_a_navigate_task_runs_as_a_goal_reports_progress_and_is_done(
        robot_factory: Callable[..., ActionRobot]) -> None:
    robot = robot_factory(speed_mps=2.0)
    robot.submit("go-1", target={"x": 8.0, "y": 6.0}, parameters={"yaw": "1.5707963"})
    seen: list[tuple[TaskState, float]] = []

    def progress() -> bool:
        task = robot.task("go-1")
        seen.append((task.state, task.progress))
        return task.state in TERMINAL

    wait_for(progress, 60, "go-1 to end")
    task = robot.task("go-1")
    assert task.state is TaskState.DONE and task.progress == 1.0, (task, robot.log())
    (goal,) = robot.navigator.goals
    assert (goal.x, goal.y, goal.ended) == (8.0, 6.0, "SUCCEEDED")
    assert abs(robot.navigator.base.x - 8.0) < 1e-6 and abs(robot.navigator.base.y - 6.0) < 1e-6
    running = [p for state, p in seen if state is TaskState.RUNNING]
    assert any(0.0 < p < 1.0 for p in running), seen  # feedback (distance remaining) became progress
    assert running == sorted(running)


def test_a_goal_the_server_aborts_fails_the_task_with_the_status_and_the_result(
        robot_factory: Callable[..., ActionRobot]) -> None:
    robot = robot_factory(speed_mps=4.0, half_size_m=5.0)
    robot.submit("far-1", target={"x": 9.0, "y": 0.0})
    _ended(robot, "far-1")
    task = robot.task("far-1")
    assert task.state is TaskState.FAILED, (task, robot.log())
    assert task.reason.startswith(f"action /{robot.robot_id}/navigate_to_pose ended ABORTED: error_code 9000, "
                                  "error_msg \"no path to (9, 0): beyond the map's edge"), task.reason
    assert [g.ended for g in robot.navigator.goals] == ["ABORTED"]


def test_a_refused_goal_and_a_task_missing_a_parameter_are_rejected_with_the_reason(
        robot_factory: Callable[..., ActionRobot]) -> None:
    robot = robot_factory(coordinator={"tasks": {"max_attempts": 1}})
    robot.submit("odom-1", target={"x": 1.0, "frame_id": "odom"})  # the navigator takes goals in map only
    robot.submit("dock-1", kind="dock", target={"x": 1.0})  # dock's goal needs the parameter tree
    _ended(robot, "odom-1")
    _ended(robot, "dock-1")
    refused, missing = robot.task("odom-1"), robot.task("dock-1")
    assert refused.state is TaskState.FAILED and missing.state is TaskState.FAILED  # no other robot to try
    assert (f"rejected by {robot.robot_id}: action server /{robot.robot_id}/navigate_to_pose rejected the goal"
            in refused.reason), refused.reason
    assert (f"rejected by {robot.robot_id}: task kind dock: goal field behavior_tree: the task has no parameter "
            "'tree'" in missing.reason), missing.reason
    assert "tasks.actions.dock.goal.behavior_tree.default" in missing.reason  # says how to fix it
    assert robot.navigator.goals == []  # neither goal ran


def test_a_cancel_from_the_coordinator_cancels_the_goal_and_the_outcome_goes_up(
        robot_factory: Callable[..., ActionRobot]) -> None:
    robot = robot_factory(speed_mps=0.5, coordinator={"tasks": {"robot_offline_after_s": 3, "max_attempts": 2}})
    robot.submit("slow-1", target={"x": 40.0})
    wait_for(lambda: robot.task("slow-1").state is TaskState.RUNNING, 60, "slow-1 running")
    # No RobotState for robot_offline_after_s: the coordinator takes the task back and sends the robot a CANCEL.
    robot.navigator.silent = True
    wait_for(lambda: bool(robot.navigator.goals) and robot.navigator.goals[0].ended != "", 60,
             "the goal to end on the server")
    (goal,) = robot.navigator.goals
    assert goal.cancel_requested and goal.ended == "CANCELED", robot.log()
    task = robot.task("slow-1")
    assert task.state is TaskState.QUEUED and f"robot {robot.robot_id} silent for 3 s" in task.reason
    # The robot's CANCELLED report reaches the coordinator after the task moved on: counted there as stale.
    wait_for(lambda: robot.coordinator.summary()["dropped"].get("stale status", 0) >= 1, 30,
             "the robot's CANCELLED report")
    assert "task slow-1 -> cancelled (cancelled by the coordinator (action" in robot.log()


def test_a_goal_running_when_the_bridge_stops_is_cancelled_and_reported_failed(
        robot_factory: Callable[..., ActionRobot]) -> None:
    robot = robot_factory(speed_mps=0.5)
    robot.submit("long-1", target={"x": 30.0})
    wait_for(lambda: robot.task("long-1").state is TaskState.RUNNING and robot.task("long-1").progress > 0, 60,
             "long-1 running")
    assert robot.stop_bridge(signal.SIGTERM) == 0, robot.log()
    _ended(robot, "long-1", 30)
    task = robot.task("long-1")
    assert task.state is TaskState.FAILED, (task, robot.log())
    assert task.reason == "bridge stopped while the goal was running; it was cancelled on the action server"
    assert 0 < task.progress < 1
    (goal,) = robot.navigator.goals
    assert goal.cancel_requested and goal.ended == "CANCELED"


def test_a_goal_left_by_a_killed_bridge_is_reported_and_cancelled_at_its_restart(
        robot_factory: Callable[..., ActionRobot]) -> None:
    robot = robot_factory(speed_mps=0.5, coordinator={"tasks": {"max_attempts": 1}})
    robot.submit("kill-1", target={"x": 30.0})
    wait_for(lambda: robot.task("kill-1").state is TaskState.RUNNING, 60, "kill-1 running")
    robot.stop_bridge(signal.SIGKILL)  # no chance to report or cancel anything
    (goal,) = robot.navigator.goals
    assert goal.ended == ""  # the navigator drives on, unsupervised
    robot.start_bridge()
    wait_for(lambda: goal.ended != "", 60, "the left goal to be cancelled")
    assert goal.cancel_requested and goal.ended == "CANCELED", robot.log()
    wait_for(lambda: "task kill-1 -> failed (bridge restarted" in robot.log(), 30, "the restart's report")
    _ended(robot, "kill-1", 60)  # failed: by the report, or as the robot went offline (its Last Will) first
    task = robot.task("kill-1")
    assert task.state is TaskState.FAILED
    # The restart's report reached the coordinator: it ended the task, or came after the offline robot's end.
    wait_for(lambda: "bridge restarted" in robot.task("kill-1").reason
             or robot.coordinator.summary()["dropped"].get("stale status", 0) >= 1, 30, "the restart's report")


def test_tasks_a_killed_bridge_held_run_again_under_their_new_commands_and_old_reports_do_not_end_them(
        robot_factory: Callable[..., ActionRobot]) -> None:
    """The robot's Last Will tells the coordinator at once; it gives both tasks out again (this robot being the only
    one) under new commands, which the restarted bridge takes. Its reports on the dead run's attempts would end the
    new ones (a report names the task, not the attempt), so they are left out; the dead run's goal is cancelled."""
    robot = robot_factory(speed_mps=1.0)
    robot.submit("held-1", target={"x": 4.0})
    wait_for(lambda: robot.task("held-1").state is TaskState.RUNNING, 60, "held-1 running")
    robot.submit("held-2", target={"x": 1.0})
    wait_for(lambda: "task held-2 -> accepted (queued behind task held-1)" in robot.log(), 30, "held-2 queued")
    robot.stop_bridge(signal.SIGKILL)
    robot.start_bridge()
    _ended(robot, "held-1", 90)
    _ended(robot, "held-2", 60)
    log = robot.log()
    for task_id in ("held-1", "held-2"):
        task = robot.task(task_id)
        assert task.state is TaskState.DONE and task.attempts == 2, (task, log[-3000:])
    assert "bridge restarted" not in log, log[-3000:]
    first_goal = robot.navigator.goals[0]  # the dead run's: cancelled by the restart, or preempted by the new goal
    assert first_goal.ended in ("CANCELED", "ABORTED"), log[-3000:]  # never driven to its end
