"""The robot bridge's tasks section: the example (commented out in config/robot_bridge.yaml) is valid; mistakes are
named by key with the fix (unknown source, both from and value, a progress rule too many, routes missing)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from swarm_bridge.config import ConfigError, RobotBridgeConfig, validate_config

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "config" / "robot_bridge.yaml"


def example() -> dict[str, Any]:
    """config/robot_bridge.yaml with its commented-out tasks section switched on."""
    text = EXAMPLE.read_text()
    block = text[text.index("\n# tasks:"):]
    switched = "\n".join(re.sub(r"^# ?", "", line) for line in block.splitlines())
    return {**yaml.safe_load(text), **yaml.safe_load(switched)}


def test_the_example_tasks_section_is_valid() -> None:
    config = validate_config(example(), RobotBridgeConfig)
    assert config.tasks is not None
    navigate = config.tasks.actions["navigate"]
    assert navigate.type == "nav2_msgs/action/NavigateToPose" and navigate.progress is not None
    assert navigate.progress.rule == ("remaining", "distance_remaining")
    assert {path: v.source for path, v in navigate.goal.items()} == {
        "pose.header.frame_id": ("target.frame", ""), "pose.pose.position.x": ("target.x", ""),
        "pose.pose.position.y": ("target.y", ""), "pose.pose.orientation": ("param", "yaw")}


def _problems(doc: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as caught:
        validate_config(doc, RobotBridgeConfig, source="robot.yaml")
    return str(caught.value)


@pytest.mark.parametrize(("change", "message"), [
    ({"goal": {"pose.pose.position.x": "target.w"}},
     "robot.yaml: tasks.actions.navigate.goal.pose.pose.position.x: unknown source 'target.w'; "
     "known: target.x, target.y"),
    ({"goal": {"pose.pose.position.x": {"from": "target.x", "value": 1}}}, "give either from (a source) or value"),
    ({"goal": {"pose.pose.position.x": {"from": "target.x", "default": 1}}}, "default applies to param.<name>"),
    ({"goal": {"Pose.X": "target.x"}}, "'Pose.X': a goal field path is lower-case names joined by '.'"),
    ({"progress": {"remaining": "a", "percent": "b"}}, "give exactly one of remaining, fraction, percent"),
    ({"type": "nav2_msgs/msg/NavigateToPose"}, "tasks.actions.navigate.type: must be a ROS action type "
     "package/action/Name"),
    ({"server_timeout_s": 0}, "tasks.actions.navigate.server_timeout_s: Input should be greater than 0"),
    ({"actoin": "/x"}, "tasks.actions.navigate: unknown key 'actoin' (did you mean 'action'?)"),
])
def test_a_mistake_in_an_action_is_named_by_its_key(change: dict[str, Any], message: str) -> None:
    doc = example()
    doc["tasks"]["actions"]["navigate"].update(change)
    assert message.removeprefix("robot.yaml: ").replace("Value error, ", "") in _problems(doc).replace(
        "Value error, ", "")


def test_tasks_need_their_command_and_status_routes() -> None:
    doc = example()
    doc["routes"] = [r for r in doc["routes"] if r.get("stream") != "task_status"]
    assert ("tasks.status_topic /{robot_id}/task_status: no up route of type swarm_bridge_msgs/msg/TaskStatus on "
            "that topic; add one to routes" in _problems(doc))
    doc = example()
    doc["tasks"]["command_topic"] = "/{robot_id}/orders"
    assert "tasks.command_topic /{robot_id}/orders: no down route of type swarm_bridge_msgs/msg/TaskCommand" in \
        _problems(doc)
    doc = example()
    doc["tasks"]["actions"]["Navigate"] = doc["tasks"]["actions"].pop("navigate")
    assert "task kinds are lower-case letters, digits and '_' (got Navigate)" in _problems(doc)
