"""Robots' poses from their own pose streams (Odometry, PoseStamped, PoseWithCovarianceStamped), told apart from
the rest of their telemetry by the Avro schema fingerprint every single-object record carries: what puts a robot
on the map when its RobotState reports no pose of its own (the demo's bags)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from swarm_bridge.codec.avro import avro_schema
from swarm_bridge.codec.framing import SINGLE_OBJECT_MAGIC, avro_fingerprint, parse_single_object, split_batch
from swarm_bridge.codec.wire import WireDecoder, wire_decoder

__all__ = ["POSE_TYPES", "Pose", "PoseReader"]

log = logging.getLogger(__name__)


def _stamped(body: Mapping[str, Any]) -> tuple[Mapping[str, Any], str]:
    return body["pose"], str(body["header"]["frame_id"])


def _with_covariance(body: Mapping[str, Any]) -> tuple[Mapping[str, Any], str]:
    return body["pose"]["pose"], str(body["header"]["frame_id"])


POSE_TYPES: dict[str, Callable[[Mapping[str, Any]], tuple[Mapping[str, Any], str]]] = {
    "nav_msgs/msg/Odometry": _with_covariance,
    "geometry_msgs/msg/PoseWithCovarianceStamped": _with_covariance,
    "geometry_msgs/msg/PoseStamped": _stamped,
}
"""ROS type -> where its message keeps the pose (a geometry_msgs/Pose) and the frame it is in."""


@dataclass(frozen=True)
class Pose:
    """Where a robot says it is: x, y in `frame`."""

    x: float
    y: float
    frame: str


class PoseReader:
    """Reads the pose of a record of any type in `POSE_TYPES` (Avro single-object, alone or the last of a batch);
    None for every other record."""

    def __init__(self) -> None:
        self._by_fingerprint: dict[int, tuple[WireDecoder, Callable[[Mapping[str, Any]], Any]]] = {}
        for ros_type, pick in POSE_TYPES.items():
            try:
                fingerprint = avro_fingerprint(avro_schema(ros_type))
                decoder = wire_decoder(ros_type, "avro", "mqtt", subject=f"pose {ros_type}")
            except Exception as exc:  # a type not installed here: its poses are not read
                log.debug("fleet page: no pose reader for %s: %s", ros_type, exc)
                continue
            self._by_fingerprint[fingerprint] = (decoder, pick)

    def pose(self, payload: bytes) -> Pose | None:
        """The pose of the payload's last record, or None when it is no pose record (raises for a broken one)."""
        if not payload:
            return None
        record = split_batch(payload)[-1]
        if not record.startswith(SINGLE_OBJECT_MAGIC):
            return None
        found = self._by_fingerprint.get(parse_single_object(record).fingerprint)
        if found is None:
            return None
        decoder, pick = found
        pose, frame = pick(decoder.decode(record).body)
        position = pose["position"]
        return Pose(float(position["x"]), float(position["y"]), frame)
