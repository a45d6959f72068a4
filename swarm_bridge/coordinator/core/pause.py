"""Pause and resume requests for VDA 5050 vehicles, the same in both modes: the request document, read and checked,
and why a robot cannot be paused (a refusal names the robot, the reason and the fix).

Mode kafka: the request goes on the submit topic, key robot id, partition its shard (the instance owning the robot's
shard turns it into instantActions startPause/stopPause). Mode mqtt: on the site's pause topic, answered on
`.../coordinator/vehicles/result/{reply}`."""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from swarm_bridge.coordinator.core.errors import CoordinatorError
from swarm_bridge.coordinator.core.fleet import FleetView

__all__ = ["PAUSE_KEY", "MalformedPause", "PauseRefusal", "PauseRequest", "config_refusal", "parse_pause",
           "pause_doc", "pause_refusal"]

PAUSE_KEY = "pause"
"""A JSON object with this key is a pause request: {"pause": robot_id, "paused": bool, "reason": str, "reply": str}
(paused false: resume; reply: the answer's topic level, mode mqtt)."""
_MARK = f'"{PAUSE_KEY}"'.encode()


class MalformedPause(CoordinatorError, ValueError):
    """A pause request that is not {"pause": robot_id, "paused": bool, ...}; names the field and what it got."""

    def __init__(self, field: str, problem: str) -> None:
        self.field, self.problem = field, problem
        super().__init__(f"pause request: {field}: {problem}")


@dataclass(frozen=True)
class PauseRequest:
    """Pause (`paused`) or resume one vehicle; `reply` names the answer topic level (mode mqtt; empty: none)."""

    robot_id: str
    paused: bool
    reason: str = ""
    reply: str = ""

    @property
    def action(self) -> str:
        """The instant action it becomes."""
        return "startPause" if self.paused else "stopPause"


@dataclass(frozen=True)
class PauseRefusal:
    """Why a robot cannot be paused: `kind` (the drop reason it is counted under) and `detail` (robot, why, fix)."""

    kind: str
    detail: str

    def __str__(self) -> str:
        return self.detail


def pause_doc(robot_id: str, paused: bool, reason: str = "", reply: str = "") -> dict[str, Any]:
    """The request as it goes on the wire (`PAUSE_KEY`)."""
    return {PAUSE_KEY: robot_id, "paused": paused, "reason": reason, "reply": reply}


def parse_pause(payload: bytes) -> PauseRequest | None:
    """The pause request in `payload`; None when it is none (a task submission or a cancel: no `PAUSE_KEY`), so
    the hot path of submissions parses no JSON twice. MalformedPause for a pause request with a bad field."""
    if _MARK not in payload:
        return None
    try:
        doc = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None  # not a pause request: a submission, rejected with its reason there
    if not isinstance(doc, dict) or PAUSE_KEY not in doc:
        return None
    robot_id, paused = doc[PAUSE_KEY], doc.get("paused", True)
    reason, reply = doc.get("reason") or "", doc.get("reply") or ""
    if not isinstance(robot_id, str) or not robot_id:
        raise MalformedPause(PAUSE_KEY, f"expected the robot id manufacturer/serialNumber, got {robot_id!r:.80}")
    for field, value, kind in (("paused", paused, bool), ("reason", reason, str), ("reply", reply, str)):
        if not isinstance(value, kind):
            raise MalformedPause(field, f"expected a {kind.__name__}, got {value!r:.80}")
    return PauseRequest(robot_id, paused, reason, reply)


def config_refusal(robot_id: str, manufacturers: Mapping[str, str] | None) -> PauseRefusal | None:
    """Why `robot_id` can be no VDA 5050 vehicle of a coordinator whose vda5050.manufacturers is `manufacturers`
    (None: no vda5050 section), from the config alone; None when it can be one."""
    if manufacturers is None:
        return PauseRefusal("no vda5050 section", f"{robot_id}: this coordinator drives no VDA 5050 vehicles (its "
                            "config has no vda5050: section); pause is a VDA 5050 instant action (startPause)")
    manufacturer, _, serial = robot_id.partition("/")
    if not manufacturer or not serial or "/" in serial:
        return PauseRefusal("not a vehicle id", f"{robot_id}: not a VDA 5050 vehicle id; give it as "
                            "MANUFACTURER/SERIAL (e.g. acme/agv1), as `fleet status` lists it")
    if manufacturer not in manufacturers:
        return PauseRefusal("unknown manufacturer", f"{robot_id}: manufacturer {manufacturer!r} is not in "
                            f"vda5050.manufacturers ({', '.join(sorted(manufacturers))}); this coordinator "
                            "drives no vehicle of it")
    return None


def pause_refusal(robot_id: str, manufacturers: Mapping[str, str] | None, vehicles: Collection[str],
                  fleet: FleetView) -> PauseRefusal | None:
    """Why `robot_id` cannot be paused now (None: it can): not a VDA 5050 vehicle by the config, a swarm_bridge
    robot, or a vehicle that has reported no state yet. `vehicles`: the ids of the vehicles whose state was seen."""
    if robot_id in vehicles:
        return None
    robot = fleet.get(robot_id)
    if robot is not None and robot.kind:
        return PauseRefusal("not a vda5050 vehicle", f"{robot_id}: a swarm_bridge robot, not a VDA 5050 vehicle; "
                            "pause is a VDA 5050 instant action (startPause): cancel its task instead")
    refusal = config_refusal(robot_id, manufacturers)
    if refusal is not None:
        return refusal
    return PauseRefusal("unknown vehicle", f"{robot_id}: no VDA 5050 vehicle of this id has reported a state; known: "
                        f"{', '.join(sorted(vehicles)) or 'none'}")
