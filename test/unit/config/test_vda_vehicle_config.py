"""The robot bridge's vda5050 section: the example (commented out in config/robot_bridge.yaml) is valid; mistakes
are named by key (unknown key, a serialNumber VDA 5050 forbids, a state period over 30 s, no broker on Kafka)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from swarm_bridge.config import ConfigError, RobotBridgeConfig, validate_config

EXAMPLE = Path(__file__).resolve().parents[3] / "config" / "robot_bridge.yaml"


def example() -> dict[str, Any]:
    """config/robot_bridge.yaml with its commented-out vda5050 section switched on."""
    text = EXAMPLE.read_text()
    block = text[text.index("\n# vda5050:"):text.index("\n# tasks:")]
    switched = "\n".join(re.sub(r"^# ?", "", line) for line in block.splitlines())
    return {**yaml.safe_load(text), **yaml.safe_load(switched)}


def _problems(doc: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as caught:
        validate_config(doc, RobotBridgeConfig, source="robot.yaml")
    return str(caught.value)


def test_the_example_vda5050_section_is_valid_and_uses_the_mqtt_uplinks_broker() -> None:
    config = validate_config(example(), RobotBridgeConfig)
    vda = config.vda5050
    assert vda is not None and vda.manufacturer == "acme" and vda.serial_number == "amr-007"
    assert vda.node.type == "nav2_msgs/action/NavigateToPose" and set(vda.actions) == {"dock"}
    assert config.vda5050_broker() == (config.uplink.host, config.uplink.port)


@pytest.mark.parametrize(("change", "expected"), [
    ({"serial_number": "amr/7"}, "vda5050.serial_number"),
    ({"state_period_s": 60}, "vda5050.state_period_s"),
    ({"keepalive": 15}, "did you mean 'keepalive_s'"),
    ({"actions": {"cancelOrder": {"action": "/x", "type": "nav2_msgs/action/NavigateToPose"}}}, "cancelOrder"),
])
def test_mistakes_are_named_by_key(change: dict[str, Any], expected: str) -> None:
    doc = example()
    doc["vda5050"] = {**doc["vda5050"], **change}
    assert expected in _problems(doc)


def test_a_kafka_uplink_needs_the_vda5050_broker_named() -> None:
    doc = example()
    doc["uplink"] = {"kind": "kafka", "host": "127.0.0.1", "port": 9092}
    assert "vda5050.host" in _problems(doc)
    doc["vda5050"] = {**doc["vda5050"], "host": "10.0.0.5", "port": 1883}
    assert validate_config(doc, RobotBridgeConfig).vda5050_broker() == ("10.0.0.5", 1883)
