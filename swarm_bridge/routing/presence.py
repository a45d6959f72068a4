"""A robot's presence, the one place it is written and read: the JSON document {robot_id, state, reason} that a
robot bridge keeps retained on its presence topic (`naming.presence_topic`) and leaves as its Last Will."""

from __future__ import annotations

import json
from dataclasses import dataclass

from swarm_bridge.routing.errors import PresenceError

__all__ = ["Presence", "parse_presence", "presence_payload"]


@dataclass(frozen=True)
class Presence:
    """A presence record: `online` or `offline` (Last Will), with a reason."""

    robot_id: str
    state: str
    reason: str


def presence_payload(robot_id: str, state: str, reason: str = "") -> bytes:
    """Presence JSON as robots (and the gateway) send it."""
    return json.dumps({"robot_id": robot_id, "state": state, "reason": reason}).encode()


def parse_presence(payload: bytes) -> Presence:
    """Presence JSON {robot_id, state, reason} -> Presence; PresenceError (a ValueError) naming what is wrong."""
    doc = json.loads(payload)
    if not isinstance(doc, dict) or not isinstance(doc.get("robot_id"), str) or doc.get("state") not in (
            "online", "offline"):
        raise PresenceError("presence: expected {robot_id: str, state: online|offline, reason: str}")
    return Presence(doc["robot_id"], doc["state"], str(doc.get("reason", "")))
