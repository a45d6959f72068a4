"""Topic mapping rules: subscriptions, MQTT topic -> Kafka topic and key, commands -> robot topics."""

from __future__ import annotations

from typing import Any

import pytest

from swarm_bridge.config import GatewayConfig
from swarm_bridge.gateway.rules import down_routes, up_rules


def _config(**extra: Any) -> GatewayConfig:
    return GatewayConfig.model_validate({"gateway_id": "gw", "fleet": "wh_a", **extra})


def test_default_rules_follow_the_wire_convention() -> None:
    rules = up_rules(_config())
    assert rules.subscriptions() == ["swarm/wh_a/+/event/+", "swarm/wh_a/+/state/+", "swarm/wh_a/+/telemetry/+",
                                     "swarm/wh_a/+/presence/status"]
    route = rules.route("swarm/wh_a/amr_7/telemetry/odometry")
    assert route is not None
    assert (route.kafka_topic, route.key, route.robot_id, route.stream, route.payload) == (
        "fleet.telemetry.odometry", b"amr_7", "amr_7", "odometry", "record")
    assert str(route) == "route mqtt:swarm/wh_a/amr_7/telemetry/odometry -> kafka:fleet.telemetry.odometry"
    presence = rules.route("swarm/wh_a/amr_7/presence/status")
    assert presence is not None and (presence.kafka_topic, presence.payload) == ("fleet.presence.status", "raw")


@pytest.mark.parametrize("topic", [
    "swarm/wh_a/amr_7/command/task_command",  # the gateway's own commands never go back up
    "swarm/other_fleet/amr_7/telemetry/odometry",
    "swarm/wh_a/amr_7/telemetry",
    "swarm/wh_a/amr_7/telemetry/odometry/extra",
    "swarm/wh_a//telemetry/odometry",
])
def test_topics_no_rule_takes_are_unroutable(topic: str) -> None:
    assert up_rules(_config()).route(topic) is None


def test_custom_rules_capture_and_the_first_match_wins() -> None:
    rules = up_rules(_config(mqtt={"topic_prefix": "site3"}, up=[
        {"mqtt": "{prefix}/{fleet}/{robot_id}/telemetry/lidar", "kafka_topic": "fleet.lidar.raw",
         "key": "{fleet}-{robot_id}"},
        {"mqtt": "{prefix}/{fleet}/{robot_id}/{channel}/{stream}", "where": {"channel": ["telemetry"]},
         "kafka_topic": "{fleet}.{stream}", "json_format": "avro"},
    ]))
    assert rules.subscriptions() == ["site3/wh_a/+/telemetry/lidar", "site3/wh_a/+/telemetry/+"]
    lidar = rules.route("site3/wh_a/r1/telemetry/lidar")
    other = rules.route("site3/wh_a/r1/telemetry/imu")
    assert lidar is not None and (lidar.kafka_topic, lidar.key) == ("fleet.lidar.raw", b"wh_a-r1")
    assert other is not None and (other.kafka_topic, other.key, other.json_format) == ("wh_a.imu", b"r1", "avro")
    assert rules.route("site3/wh_a/r1/event/imu") is None


def test_kafka_topic_patterns_find_the_topics_rules_write() -> None:
    patterns = up_rules(_config()).kafka_topic_patterns()
    def written(topic: str) -> bool:
        return any(p.match(topic.replace(".", "/")) is not None for p in patterns)
    assert written("fleet.telemetry.odometry") and written("fleet.presence.status")
    assert not written("fleet.telemetry") and not written("other.telemetry.odometry")


def test_down_routes_name_each_robots_command_topic() -> None:
    (route,) = down_routes(_config())
    assert route.kafka_topic == "fleet.command.task_command"
    assert route.mqtt_topic("amr_7") == "swarm/wh_a/amr_7/command/task_command"
    for bad in ("", "a/b", "+", "#"):
        with pytest.raises(ValueError, match="is not a robot id"):
            route.mqtt_topic(bad)
