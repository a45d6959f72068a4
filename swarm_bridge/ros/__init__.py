"""rclpy adapters: the only package that imports rclpy. Nodes, routes' ROS ends, QoS presets."""

from swarm_bridge.ros.robot_bridge import RobotBridge
from swarm_bridge.ros.types import RosTypeError, message_class

__all__ = ["RobotBridge", "RosTypeError", "message_class"]
