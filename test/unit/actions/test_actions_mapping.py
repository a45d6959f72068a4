"""A task's goal from the declared mapping: sources, defaults, conversions to the goal field's type, yaw to a
quaternion; mistakes in the mapping named by config key, a task missing a parameter rejected with the fix."""

from __future__ import annotations

import math
from typing import Any

import pytest

from swarm_bridge.actions import GoalError, GoalMapping, MappingError, TaskInput, task_input
from swarm_bridge.actions.mapping import quaternion_of, yaw_of
from swarm_bridge.config.tasks import ActionTaskConfig

# NavigateToPose's goal as field_types (ros/action_tasks.py) lists it, without the ROS install.
GOAL_FIELDS = {
    "pose": "geometry_msgs/PoseStamped", "pose.header": "std_msgs/Header",
    "pose.header.stamp": "builtin_interfaces/Time",
    "pose.header.stamp.sec": "int32", "pose.header.stamp.nanosec": "uint32", "pose.header.frame_id": "string",
    "pose.pose": "geometry_msgs/Pose", "pose.pose.position": "geometry_msgs/Point", "pose.pose.position.x": "double",
    "pose.pose.position.y": "double", "pose.pose.position.z": "double",
    "pose.pose.orientation": "geometry_msgs/Quaternion", "pose.pose.orientation.x": "double",
    "pose.pose.orientation.y": "double", "pose.pose.orientation.z": "double", "pose.pose.orientation.w": "double",
    "behavior_tree": "string",
}
NAVIGATE = {"action": "/{robot_id}/navigate_to_pose", "type": "nav2_msgs/action/NavigateToPose",
            "goal": {"pose.header.frame_id": "target.frame", "pose.pose.position.x": "target.x",
                     "pose.pose.position.y": "target.y",
                     "pose.pose.orientation": {"from": "param.yaw", "default": 0.0}}}


def mapping(goal: dict[str, Any] | None = None, fields: dict[str, str] | None = None) -> GoalMapping:
    config = ActionTaskConfig.model_validate({**NAVIGATE, "goal": goal if goal is not None else NAVIGATE["goal"]})
    return GoalMapping("navigate", config, fields or GOAL_FIELDS)


def test_the_goal_is_built_from_the_target_and_the_parameters() -> None:
    task = TaskInput("t1", "navigate", x=3.0, y=-2.5, frame="map", parameters={"yaw": "1.5707963267948966"})
    goal = mapping().goal(task)
    assert goal["pose"]["header"] == {"frame_id": "map"}
    assert goal["pose"]["pose"]["position"] == {"x": 3.0, "y": -2.5}
    orientation = goal["pose"]["pose"]["orientation"]
    assert orientation["z"] == pytest.approx(math.sqrt(0.5)) and orientation["w"] == pytest.approx(math.sqrt(0.5))


def test_a_missing_parameter_takes_its_default_or_rejects_the_task_with_the_fix() -> None:
    assert mapping().goal(TaskInput("t1", "navigate"))["pose"]["pose"]["orientation"] == quaternion_of(0.0)
    strict = mapping({"behavior_tree": "param.tree"})
    with pytest.raises(GoalError) as caught:
        strict.goal(TaskInput("t2", "navigate", parameters={"speed": "2"}))
    assert str(caught.value) == (
        "task kind navigate: goal field behavior_tree: the task has no parameter 'tree' (it has: speed); give it in "
        "the task's parameters or a default in the bridge config (tasks.actions.navigate.goal.behavior_tree.default)")


def test_a_parameter_that_does_not_convert_rejects_the_task() -> None:
    with pytest.raises(GoalError, match=r"pose.pose.orientation: param.yaw = 'north' does not fit the "
                                        r"geometry_msgs/Quaternion field"):
        mapping().goal(TaskInput("t3", "navigate", parameters={"yaw": "north"}))


def test_constants_and_the_task_itself_are_sources() -> None:
    goal = mapping({"behavior_tree": {"value": "bt.xml"}, "pose.header.frame_id": "task.id",
                    "pose.pose.position.z": "task.priority"}).goal(TaskInput("t4", "navigate", priority=7))
    assert goal == {"behavior_tree": "bt.xml", "pose": {"header": {"frame_id": "t4"}, "pose": {"position": {"z": 7.0}}}}


@pytest.mark.parametrize(("goal", "message"), [
    ({"pose.pose.postion.x": "target.x"}, "tasks.actions.navigate.goal.pose.pose.postion.x: "
     "nav2_msgs/action/NavigateToPose has no goal field pose.pose.postion.x; did you mean pose.pose.orientation.x, "
     "pose.pose.position.x?"),
    ({"speed": "param.speed"}, "has no goal field speed; goal fields: behavior_tree, pose"),
    ({"pose.pose": "target.x"}, "a geometry_msgs/Pose field cannot be filled from one value"),
    ({"pose.pose.position.x": "target.frame"}, "target.frame is a string, the field is double"),
    ({"pose.pose.position.x": {"from": "param.x", "default": "near"}}, "goal.pose.pose.position.x.default: 'near' "
     "does not fit the double field"),
])
def test_a_mapping_that_does_not_fit_the_goal_type_is_named_by_its_key(goal: dict[str, Any], message: str) -> None:
    with pytest.raises(MappingError) as caught:
        mapping(goal)
    assert message in str(caught.value)


def test_a_task_command_dict_becomes_a_task_input() -> None:
    q = quaternion_of(0.75)
    body = {"task_id": "t5", "kind": "navigate", "priority": 3,
            "target_pose": {"header": {"frame_id": "map"}, "pose": {"position": {"x": 1.0, "y": 2.0, "z": 0.5},
                                                                    "orientation": q}},
            "parameters": [{"key": "yaw", "value": "0.1"}]}
    task = task_input(body)
    assert (task.task_id, task.kind, task.priority, task.x, task.y, task.z, task.frame) == (
        "t5", "navigate", 3, 1.0, 2.0, 0.5, "map")
    assert task.yaw == pytest.approx(0.75) and dict(task.parameters) == {"yaw": "0.1"}
    assert yaw_of(0.0, 0.0, 0.0, 1.0) == 0.0
