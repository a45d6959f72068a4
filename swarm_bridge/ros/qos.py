"""Named ROS QoS presets; routes name one, nothing is implicit.

reliable keeps the last 10,000 messages: 10 s at 1 kHz, so a bridge busy draining its spool after an
outage falls behind for a moment without losing messages (measured: with 1,000 a 30 s backlog lost ~1%).
sensor_data is rclpy's (best effort, keep last 5); transient_local keeps the last 100 for late joiners.
A reliable reader this deep needs room for its whole history, or it pushes back on the robot's publishers:
the robot bridge sees to it (swarm_bridge.ros.reader_limits).
"""

from __future__ import annotations

from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
)

from swarm_bridge.ros.errors import QosPresetError

__all__ = ["qos_preset"]

_PRESETS = {
    "reliable": QoSProfile(
        history=HistoryPolicy.KEEP_LAST, depth=10000,
        reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE,
    ),
    "sensor_data": qos_profile_sensor_data,
    "transient_local": QoSProfile(
        history=HistoryPolicy.KEEP_LAST, depth=100,
        reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL,
    ),
}


def qos_preset(name: str, *, depth: int | None = None) -> QoSProfile:
    """The QoSProfile called `name`, with its history depth replaced when `depth` is given;
    QosPresetError (a ValueError) lists the valid names."""
    try:
        preset = _PRESETS[name]
    except KeyError:
        raise QosPresetError(name, list(_PRESETS)) from None
    if depth is None:
        return preset
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=preset.reliability,
                      durability=preset.durability)
