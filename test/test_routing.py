"""Routes and wire names: MQTT topics in the VDA 5050 habit, one Kafka topic per stream kind."""

from __future__ import annotations

from swarm_bridge.config import RobotBridgeConfig, validate_config
from swarm_bridge.routing import Route, kafka_key, kafka_topic, mqtt_topic, routes_for
from swarm_bridge.routing.route import discovered_routes, route_for, selector_for, stream_for


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
    assert selector_for(match).select(["/amr_007/sensors/IMU", "/amr_007/sensors/camera/raw", "/x"]) == [
        "/amr_007/sensors/IMU"]
    assert stream_for(match, "/amr_007/sensors/IMU", "amr_007") == "sensors_sensors_imu"
    assert stream_for(match, "/other/temp-1", "amr_007") == "sensors_other_temp_1"
    route = route_for(config, match, "/amr_007/sensors/IMU", "sensor_msgs/msg/Imu")
    assert str(route) == "route ros:/amr_007/sensors/IMU -> mqtt:swarm/site_a/amr_007/telemetry/sensors_sensors_imu"
