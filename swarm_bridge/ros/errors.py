"""Errors of the ROS side a user can meet: an unknown QoS preset, a command body that does not fit its message."""

from __future__ import annotations

from swarm_bridge.errors import SwarmBridgeError

__all__ = ["MessageFieldError", "QosPresetError"]


class QosPresetError(SwarmBridgeError, ValueError):
    """A QoS preset name that does not exist; lists the valid ones."""

    def __init__(self, name: str, valid: list[str]) -> None:
        self.name, self.valid = name, tuple(valid)
        super().__init__(f"QoS preset '{name}' is not valid. Valid presets are: {', '.join(valid)}")


class MessageFieldError(SwarmBridgeError, ValueError):
    """A dict that does not fit a ROS message: names the field path (`Type.field.sub`) and the problem."""
