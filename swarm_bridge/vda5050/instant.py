"""Instant actions a master control sends (section 6.9): cancelOrder (6.6.3), startPause and stopPause (6.8.1)."""

from __future__ import annotations

from swarm_bridge.vda5050.headers import HeaderCounter
from swarm_bridge.vda5050.models import Action, InstantActions
from swarm_bridge.vda5050.topics import VehicleId

__all__ = ["INSTANT", "instant_action"]

# The instant actions the master control sends: action type -> its blocking type (section 6.8.1).
INSTANT: dict[str, str] = {"cancelOrder": "HARD", "startPause": "HARD", "stopPause": "HARD",
                           "stateRequest": "NONE", "factsheetRequest": "NONE"}


def instant_action(vehicle: VehicleId, action_type: str, action_id: str, header: HeaderCounter,
                   now_ns: int) -> InstantActions:
    """One instant action of `INSTANT` for `vehicle`, with the caller's action id (to find its state later)."""
    blocking = INSTANT[action_type]
    return InstantActions(**header.header(vehicle, "instantActions", now_ns),
                          actions=[Action(action_type=action_type, action_id=action_id,
                                          blocking_type=blocking)])
