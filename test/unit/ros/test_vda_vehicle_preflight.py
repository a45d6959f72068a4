"""The vda5050 section's actions are checked against the installed action types before any socket opens, each
problem named by its vda5050 key."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import yaml

from swarm_bridge.config import RobotBridgeConfig, validate_config
from swarm_bridge.ros.vda_vehicle import check_vehicle

EXAMPLE = Path(__file__).resolve().parents[3] / "config" / "robot_bridge.yaml"


def example() -> dict[str, Any]:
    """config/robot_bridge.yaml with its commented-out vda5050 section switched on."""
    text = EXAMPLE.read_text()
    block = text[text.index("\n# vda5050:"):text.index("\n# tasks:")]
    return {**yaml.safe_load(text), **yaml.safe_load("\n".join(re.sub(r"^# ?", "", line)
                                                               for line in block.splitlines()))}


def test_the_example_fits_and_a_wrong_goal_field_is_named_by_its_vda5050_key() -> None:
    assert check_vehicle(validate_config(example(), RobotBridgeConfig)) == []
    doc = copy.deepcopy(example())
    doc["vda5050"]["node"]["goal"]["pose.pose.positon.x"] = "target.x"
    doc["vda5050"]["actions"]["dock"]["type"] = "nav2_msgs/action/Teleport"
    problems = dict(check_vehicle(validate_config(doc, RobotBridgeConfig)))
    assert "did you mean" in problems["vda5050.node.goal.pose.pose.positon.x"]
    assert "Teleport" in problems["vda5050.actions.dock.type"]
