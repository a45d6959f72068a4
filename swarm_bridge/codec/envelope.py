"""The envelope every record carries, whatever its format: who, which stream, which seq, when, what."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["RUN_SHIFT", "SCHEMA_VERSION", "SEQ_MASK", "Envelope"]

# Version of the envelope layout; bumped when its fields change.
SCHEMA_VERSION = 1

# A record's seq is `run << RUN_SHIFT | n`: the run of the sender (one per bridge start) and n counting from 0 in it.
RUN_SHIFT = 32
SEQ_MASK = (1 << RUN_SHIFT) - 1  # seq & SEQ_MASK: n


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
