"""Routes and wire names: MQTT topics in the VDA 5050 habit, one Kafka topic per stream kind."""

from __future__ import annotations

from pathlib import Path

import pytest

from swarm_bridge.config import ConfigError, RobotBridgeConfig, load_config, validate_config
from swarm_bridge.routing import Route, kafka_key, kafka_topic, mqtt_topic, routes_for
from swarm_bridge.routing.naming import robot_namespace
from swarm_bridge.routing.route import discovered_routes, route_for, selector_for, stream_for

REPO = Path(__file__).resolve().parents[3]


def _config(kind: str) -> RobotBridgeConfig:
    return validate_config({
        "robot_id": "amr_007", "fleet": "site_a",
        "uplink": {"kind": kind, "port": 1883, "topic_prefix": "acme"},
        "routes": [{"topic": "/amr_007/odom", "type": "nav_msgs/msg/Odometry", "channel": "telemetry",
                    "stream": "odometry", "qos": "sensor_data", "format": "json", "mqtt_qos": 0}],
    }, RobotBridgeConfig)


def test_wire_names() -> None:
    assert mqtt_topic("acme", "site_a", "amr_007", "state", "robot_state") == "acme/site_a/amr_007/state/robot_state"
    assert kafka_topic("telemetry", "odometry") == "fleet.telemetry.odometry"
    assert kafka_key("amr_007") == b"amr_007"


def test_mqtt_route_names_both_ends() -> None:
    (route,) = routes_for(_config("mqtt"))
    assert route == Route(ros_topic="/amr_007/odom", ros_type="nav_msgs/msg/Odometry", qos="sensor_data",
                          stream="odometry", channel="telemetry", scheme="mqtt",
                          destination="acme/site_a/amr_007/telemetry/odometry", format="json", mqtt_qos=0)
    assert str(route) == "route ros:/amr_007/odom -> mqtt:acme/site_a/amr_007/telemetry/odometry"


def test_kafka_route_uses_stream_kind_topic() -> None:
    (route,) = routes_for(_config("kafka"))
    assert str(route) == "route ros:/amr_007/odom -> kafka:fleet.telemetry.odometry"


def test_match_routes_wait_for_the_graph_and_name_streams_per_topic() -> None:
    config = validate_config({
        "robot_id": "amr_007", "fleet": "site_a", "uplink": {"kind": "mqtt", "port": 1883},
        "routes": [
            {"match": {"allow": ["/amr_007/sensors/.*"], "deny": [".*/camera/.*"]}, "channel": "telemetry",
             "stream": "sensors", "qos": "sensor_data", "format": "avro"},
            {"topic": "/amr_007/odom", "channel": "telemetry", "stream": "odometry", "qos": "sensor_data",
             "format": "avro"},
        ],
    }, RobotBridgeConfig)
    assert routes_for(config) == []  # neither is known before the graph is seen
    assert len(discovered_routes(config)) == 2
    match = config.routes[0]
    assert selector_for(match, "amr_007").select(["/amr_007/sensors/IMU", "/amr_007/sensors/camera/raw", "/x"]) == [
        "/amr_007/sensors/IMU"]
    assert stream_for(match, "/amr_007/sensors/IMU", "amr_007") == "sensors_sensors_imu"
    assert stream_for(match, "/other/temp-1", "amr_007") == "sensors_other_temp_1"
    route = route_for(config, match, "/amr_007/sensors/IMU", "sensor_msgs/msg/Imu")
    assert str(route) == "route ros:/amr_007/sensors/IMU -> mqtt:swarm/site_a/amr_007/telemetry/sensors_sensors_imu"


@pytest.mark.parametrize(("robot_id", "namespace"), [
    ("amr_007", "amr_007"), ("amr-7", "amr_7"), ("007", "_007"), ("9-lives", "_9_lives"), ("_x", "_x")])
def test_every_valid_robot_id_has_a_valid_ros_namespace(robot_id: str, namespace: str) -> None:
    from rclpy.validate_full_topic_name import validate_full_topic_name
    from rclpy.validate_namespace import validate_namespace

    assert robot_namespace(robot_id) == namespace
    validate_namespace(f"/{namespace}")
    validate_full_topic_name(f"/{namespace}/task_command")


@pytest.mark.parametrize(("robot_id", "namespace"), [("amr_042", "amr_042"), ("amr-7", "amr_7"), ("007", "_007")])
def test_shipped_config_topics_follow_the_robot_id(robot_id: str, namespace: str) -> None:
    """config/robot_bridge.yaml with --robot-id: every ROS topic is in the robot's namespace, never amr_007's."""
    shipped = load_config(REPO / "config/robot_bridge.yaml", RobotBridgeConfig)
    config = validate_config({**shipped.model_dump(), "robot_id": robot_id}, RobotBridgeConfig)
    routes = {r.stream: r for r in routes_for(config)}
    assert {s: r.ros_topic for s, r in routes.items()} == {
        "robot_state": f"/{namespace}/robot_state", "task_status": f"/{namespace}/task_status",
        "odometry": f"/{namespace}/odom", "task_command": f"/{namespace}/task_command"}
    assert str(routes["task_command"]) == (f"route mqtt:swarm/warehouse_a/{robot_id}/command/task_command -> "
                                           f"ros:/{namespace}/task_command")
    (match,) = [rc for rc in config.routes if rc.match is not None]
    selector = selector_for(match, robot_id)
    assert selector.select([f"/{namespace}/sensors/temp", "/amr_007/sensors/temp"]) == [f"/{namespace}/sensors/temp"]
    assert stream_for(match, f"/{namespace}/sensors/temp", robot_id) == "sensors_sensors_temp"


def test_a_topic_placeholder_other_than_robot_id_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"routes\[0\]\.topic: .*the only placeholder a topic may hold is "
                                          r"\{robot_id\}"):
        validate_config({"robot_id": "amr_007", "fleet": "f", "uplink": {"kind": "mqtt", "port": 1883},
                         "routes": [{"topic": "/{robot}/odom", "type": "nav_msgs/msg/Odometry",
                                     "channel": "telemetry", "stream": "odometry", "qos": "sensor_data",
                                     "format": "json"}]}, RobotBridgeConfig)
