"""The envelope every record carries, whatever its format: who, which stream, which seq, when, what."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["SCHEMA_VERSION", "Envelope"]

# Version of the envelope layout; bumped when its fields change.
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Envelope:
    """One record: robot_id, stream, per-stream seq, source stamp (ns), ROS type, schema version, body."""

    robot_id: str
    stream: str
    seq: int
    stamp_ns: int
    ros_type: str
    body: dict[str, Any] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION
