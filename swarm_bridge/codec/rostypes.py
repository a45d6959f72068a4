"""`RosTypes`: the message definitions (`rosdefs`) with their compiled CDR codecs (`cdr`), CDR <-> dict by type name.

Layers, lowest first: `rosdefs` (fields of each type) <- `cdr_gen`, `cdr` (a codec per type, from the
definitions) <- this module, which keeps one compiled codec per type for the life of a RosTypes.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from functools import cache
from typing import Any

from swarm_bridge.codec.cdr import CdrCodec
from swarm_bridge.codec.rosdefs import RosDefinitions

__all__ = ["RosTypes", "default_types"]


class RosTypes(RosDefinitions):
    """Message definitions by ROS type name (`sensor_msgs/msg/Imu`), plus CDR <-> dict for each."""

    def __init__(self, *, extra_msg_dirs: Iterable[str | os.PathLike[str]] = ()) -> None:
        super().__init__(extra_msg_dirs=extra_msg_dirs)
        self._codecs: dict[str, CdrCodec] = {}

    def cdr_to_dict(self, raw: bytes, ros_type: str) -> dict[str, Any]:
        """Raw CDR (as rclpy `raw=True` delivers it, 4-byte encapsulation header included) -> message dict."""
        return self.cdr_codec(ros_type).to_dict(raw)

    def dict_to_cdr(self, message: dict[str, Any], ros_type: str) -> bytes:
        """Message dict -> little-endian CDR bytes as rclpy's `serialize_message` produces them."""
        return self.cdr_codec(ros_type).to_cdr(message)

    def cdr_codec(self, ros_type: str) -> CdrCodec:
        """The compiled CDR codec of `ros_type`, built once."""
        codec = self._codecs.get(ros_type)
        if codec is None:
            codec = self._codecs[ros_type] = CdrCodec(ros_type, self)
        return codec


@cache
def default_types() -> RosTypes:
    """The process-wide RosTypes of the installed interfaces (built once, on first use)."""
    return RosTypes()
