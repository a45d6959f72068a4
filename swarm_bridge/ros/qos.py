"""Named ROS QoS presets; routes name one, nothing is implicit."""

from __future__ import annotations

from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
)

__all__ = ["qos_preset"]

_PRESETS = {
    "reliable": QoSProfile(
        history=HistoryPolicy.KEEP_LAST, depth=1000,
        reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE,
    ),
    "sensor_data": qos_profile_sensor_data,
    "transient_local": QoSProfile(
        history=HistoryPolicy.KEEP_LAST, depth=100,
        reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL,
    ),
}


def qos_preset(name: str) -> QoSProfile:
    """The QoSProfile called `name`; ValueError lists the valid names."""
    try:
        return _PRESETS[name]
    except KeyError:
        raise ValueError(f"QoS preset '{name}' is not valid. Valid presets are: {', '.join(_PRESETS)}") from None
