"""Uplink kinds as one table: the config's discriminated union and the transport's UPLINKS agree; a key of another
kind is named with its fix, unless it holds that kind's default (the example config lists every key)."""

from __future__ import annotations

from typing import Any

import pytest

from swarm_bridge.config import ConfigError, RobotBridgeConfig, validate_config
from swarm_bridge.config.uplinks import UPLINK_KINDS, KafkaUplink, MqttUplink
from swarm_bridge.routing.route import DESTINATIONS
from swarm_bridge.transport.uplinks import UPLINKS

ROUTE = {"topic": "/odom", "type": "nav_msgs/msg/Odometry", "channel": "telemetry", "stream": "odometry",
         "qos": "sensor_data", "format": "json"}


def _config(**uplink: Any) -> dict[str, Any]:
    return {"robot_id": "amr_007", "fleet": "f", "uplink": uplink, "routes": [ROUTE]}


def test_every_kind_has_a_config_model_a_link_and_destinations() -> None:
    assert set(UPLINK_KINDS) == set(UPLINKS) == set(DESTINATIONS) == {"mqtt", "kafka"}
    assert all(UPLINKS[kind].config is model for kind, model in UPLINK_KINDS.items())


def test_kind_picks_the_model() -> None:
    assert isinstance(validate_config(_config(kind="mqtt", port=1883), RobotBridgeConfig).uplink, MqttUplink)
    uplink = validate_config(_config(kind="kafka", port=9092), RobotBridgeConfig).uplink
    assert isinstance(uplink, KafkaUplink) and uplink.batch_limit == 1


def test_a_key_of_another_kind_is_named_with_its_fix() -> None:
    with pytest.raises(ConfigError) as info:
        validate_config(_config(kind="kafka", port=9092, keepalive_s=10), RobotBridgeConfig)
    assert ("uplink: keepalive_s is a key of MQTT uplinks; uplink.kind is kafka (remove it, or set uplink.kind: "
            "mqtt)") in str(info.value)


def test_keys_of_another_kind_at_their_default_are_ignored() -> None:
    """A robot switching kind keeps the example config's every-key listing."""
    data = _config(kind="kafka", port=9092, username=None, tls=None, keepalive_s=30, batch_max_records=64,
                   hold_unsubscribed=False)
    assert validate_config(data, RobotBridgeConfig).uplink.kind == "kafka"
    data = _config(kind="mqtt", port=1883, security={"security_protocol": "PLAINTEXT"})
    assert validate_config(data, RobotBridgeConfig).uplink.kind == "mqtt"


def test_a_missing_kind_says_the_kinds_and_still_checks_shared_keys() -> None:
    with pytest.raises(ConfigError) as info:
        validate_config(_config(port=0), RobotBridgeConfig)
    assert [str(p) for p in info.value.problems] == ["uplink.kind: Field required (one of mqtt, kafka)",
                                                     "uplink.port: Input should be greater than or equal to 1 (got 0)"]
