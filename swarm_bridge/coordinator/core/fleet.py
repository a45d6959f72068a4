"""The fleet view: what the coordinator knows of each robot, from RobotState records and presence."""

from __future__ import annotations

import math
from collections.abc import Iterator, KeysView, Mapping
from dataclasses import dataclass, replace
from enum import IntEnum
from typing import Any

__all__ = ["FleetView", "RobotMode", "RobotView"]


class RobotMode(IntEnum):
    """RobotState.MODE_* values."""

    UNKNOWN = 0
    IDLE = 1
    AUTONOMOUS = 2
    MANUAL = 3
    CHARGING = 4
    ERROR = 5
    EMERGENCY_STOP = 6


# Modes in which a robot takes new tasks.
WORKING_MODES = frozenset({RobotMode.IDLE, RobotMode.AUTONOMOUS, RobotMode.CHARGING})


@dataclass(frozen=True)
class RobotView:
    """One robot: kind, capabilities, mode, position, battery, current task, when last heard, presence, paused."""

    robot_id: str
    kind: str = ""
    capabilities: frozenset[str] = frozenset()
    mode: RobotMode = RobotMode.UNKNOWN
    x: float = 0.0
    y: float = 0.0
    z: float = 0.0
    battery_percent: float = math.nan
    charging: bool = False
    current_task_id: str = ""
    last_seen_ns: int = 0
    online: bool = True
    presence_reason: str = ""
    capacity: int = 0  # tasks it holds at once (a VDA 5050 vehicle: 1 order); 0: the policy's max_queue
    offline_grace_ns: int = 0  # how long after it was last heard it keeps its tasks while offline (a VDA 5050
    # vehicle whose connection broke drives its order on, section 6.2); 0: its tasks move at once
    paused: bool = False  # a VDA 5050 vehicle's `state.paused` (startPause): it holds its order, no driving

    def full(self, load: int, max_queue: int) -> bool:
        """Whether it holds as many tasks as it may (its own capacity, else the policy's max_queue)."""
        return load >= (self.capacity or max_queue)

    def reachable(self, now_ns: int, stale_after_ns: int) -> bool:
        """Online by presence and heard from within `stale_after_ns`."""
        return self.online and now_ns - self.last_seen_ns < stale_after_ns


_SECOND_NS = 1_000_000_000  # robots are filed by the second they were last heard in


class FleetView:
    """Robots by id, by capability (ids sorted, so every scan is in the same order), and by when they were last
    heard and whether they are offline, so the unreachable ones are found without walking the fleet."""

    def __init__(self) -> None:
        self._robots: dict[str, RobotView] = {}
        self._by_capability: dict[str, list[str]] = {}
        self._heard: dict[int, set[str]] = {}  # second last heard in -> robot ids
        self._offline: set[str] = set()
        self.changes = 0  # counts changes that can make a robot newly able to take a task
        self.version = 0  # counts every change (position, battery, pause too): what planning pools were built from

    def __len__(self) -> int:
        return len(self._robots)

    def __iter__(self) -> Iterator[RobotView]:
        return iter(self._robots[r] for r in sorted(self._robots))

    def get(self, robot_id: str) -> RobotView | None:
        return self._robots.get(robot_id)

    def capable(self, capability: str) -> list[str]:
        """Ids of the robots with `capability`, sorted."""
        return self._by_capability.get(capability, [])

    def ids(self) -> KeysView[str]:
        """Every robot's id (a live view)."""
        return self._robots.keys()

    def unreachable(self, now_ns: int, stale_after_ns: int) -> set[str]:
        """Ids of the robots not `reachable` now: offline, or not heard from within `stale_after_ns`. Looks only
        at the offline ones and those last heard in a second before the cut, not at the whole fleet."""
        cut = now_ns - stale_after_ns
        found = set(self._offline)
        for second, ids in self._heard.items():
            if second * _SECOND_NS > cut:
                continue  # everyone in it was heard after the cut
            if (second + 1) * _SECOND_NS <= cut:
                found |= ids
            else:
                found.update(i for i in ids if self._robots[i].last_seen_ns <= cut)
        return found

    def reachable_count(self, now_ns: int, stale_after_ns: int) -> int:
        """How many robots are `reachable` now."""
        return len(self._robots) - len(self.unreachable(now_ns, stale_after_ns))

    def put(self, robot: RobotView) -> None:
        """Add or replace a robot, keeping the capability, last-heard and offline indexes."""
        robot_id = robot.robot_id
        old = self._robots.get(robot_id)
        self._robots[robot_id] = robot
        self.version += 1
        second = robot.last_seen_ns // _SECOND_NS
        if old is None or old.last_seen_ns // _SECOND_NS != second:
            if old is not None:
                was = old.last_seen_ns // _SECOND_NS
                self._heard[was].discard(robot_id)
                if not self._heard[was]:
                    del self._heard[was]
            self._heard.setdefault(second, set()).add(robot_id)
        if not robot.online:
            self._offline.add(robot_id)
        elif old is not None and not old.online:
            self._offline.discard(robot_id)
        if old is None or (old.online, old.mode, old.capabilities) != (robot.online, robot.mode, robot.capabilities):
            self.changes += 1
        if old is not None and old.capabilities == robot.capabilities:
            return
        for capability in old.capabilities if old is not None else ():
            self._by_capability[capability].remove(robot.robot_id)
        for capability in robot.capabilities:
            ids = self._by_capability.setdefault(capability, [])
            ids.append(robot.robot_id)
            ids.sort()

    def on_state(self, body: Mapping[str, Any], now_ns: int) -> RobotView:
        """Fold one RobotState message (as a dict) in; the robot was last seen at the newest of its records."""
        robot_id = str(body["robot_id"])
        old = self._robots.get(robot_id) or RobotView(robot_id)
        position = body["pose"]["pose"]["position"]
        try:
            mode = RobotMode(int(body["mode"]))
        except ValueError:
            mode = RobotMode.UNKNOWN
        robot = replace(old, kind=str(body["robot_kind"]), capabilities=frozenset(body["capabilities"]), mode=mode,
                        x=float(position["x"]), y=float(position["y"]), z=float(position["z"]),
                        battery_percent=float(body["battery_percent"]), charging=bool(body["charging"]),
                        current_task_id=str(body["current_task_id"]),
                        last_seen_ns=max(old.last_seen_ns, now_ns))  # topics are read in no set order
        self.put(robot)
        return robot

    def on_presence(self, robot_id: str, state: str, reason: str, now_ns: int) -> RobotView:
        """Fold a presence record (`online` / `offline`, from the robot or its Last Will) in."""
        old = self._robots.get(robot_id) or RobotView(robot_id)
        online = state == "online"
        robot = replace(old, online=online, presence_reason=reason,
                        last_seen_ns=max(old.last_seen_ns, now_ns) if online else old.last_seen_ns)
        self.put(robot)
        return robot
