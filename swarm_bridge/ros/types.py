"""Find the generated Python class of a ROS message type named like `geometry_msgs/msg/Pose`."""

from __future__ import annotations

import importlib
from typing import Any

from swarm_bridge.errors import SwarmBridgeError

__all__ = ["RosTypeError", "message_class"]


class RosTypeError(SwarmBridgeError, LookupError):
    """A ROS type name that does not resolve to an installed message class."""

    def __init__(self, ros_type: str, problem: str, *, form: str = "package/msg/Name") -> None:
        self.ros_type = ros_type
        package = ros_type.split("/", 1)[0]
        super().__init__(
            f"ROS type '{ros_type}': {problem}. Fix: check the spelling ({form}) or install the"
            f" interfaces package (pip: ros-{package.replace('_', '-')}, or build it in your workspace)"
        )


def message_class(ros_type: str) -> Any:
    """`sensor_msgs/msg/Imu` -> `sensor_msgs.msg.Imu` (imported on first use)."""
    parts = ros_type.split("/")
    if len(parts) != 3 or parts[1] != "msg" or not all(parts):
        raise RosTypeError(ros_type, "not of the form package/msg/Name")
    package, _, name = parts
    try:
        module = importlib.import_module(f"{package}.msg")
    except ImportError as exc:
        raise RosTypeError(ros_type, f"package '{package}' is not installed ({exc})") from None
    cls = getattr(module, name, None)
    if cls is None or not hasattr(cls, "get_fields_and_field_types"):
        raise RosTypeError(ros_type, f"package '{package}' has no message '{name}'")
    return cls
