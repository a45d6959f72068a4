"""The demo fleet behind `swarm-bridge demo`: for now the smoke fleet (ROS -> MQTT and Kafka)."""

from swarm_bridge.demo.smoke import SmokeFleet, StreamResult, robot_config, ros_context

__all__ = ["SmokeFleet", "StreamResult", "robot_config", "ros_context"]
