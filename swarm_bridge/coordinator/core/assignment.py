"""Who does which task: a pluggable policy picks one robot per task; `plan` runs it over the queue.

A policy is any object with `choose(task, pool, loads, now_ns) -> robot_id | None` and a `max_queue`,
chosen by name in the config (`POLICIES`). Given the same inputs it must return the same robot: tests
and replays rely on it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Protocol

from swarm_bridge.coordinator.core.fleet import WORKING_MODES, FleetView, RobotView
from swarm_bridge.coordinator.core.tasks import Task

__all__ = ["POLICIES", "AssignmentPolicy", "CostPolicy", "PlanPools", "RobotPool", "plan", "queue_order"]


class RobotPool:
    """The robots that may take tasks of one kind in one planning round (sorted by id), with a grid over
    x, y so a policy can look at them nearest first and stop early."""

    def __init__(self, robots: list[RobotView], floor: Callable[[RobotView], float] | None = None, *,
                 free: int | None = None) -> None:
        """`floor(robot)`: a lower bound of what the policy adds to travel time for that robot, which may only
        grow during the round (loads only grow; `touched` again when one falls); each cell yields the least of its
        robots'. `free`: how many are below max_queue (default all)."""
        self.robots = robots
        self.free = len(robots) if free is None else free  # robots below max_queue; `plan` keeps it up to date
        self._floor = floor
        self._cells: dict[tuple[int, int], list[RobotView]] | None = None
        self._floors: dict[tuple[int, int], float] = {}
        self._origin = (0.0, 0.0)
        self._size = 1.0
        self._span = (0, 0)

    def rings(self, x: float, y: float) -> Iterator[tuple[float, float, list[RobotView]]]:
        """(a lower bound of the x-y distance from (x, y), the cell's floor, the robots of one grid cell),
        nearest rings first; within a cell robots keep id order."""
        if self._cells is None:
            self._build()
        cells, floors = self._cells or {}, self._floors
        size, (ox, oy), (gx, gy) = self._size, self._origin, self._span
        cx, cy = math.floor((x - ox) / size), math.floor((y - oy) / size)
        last = max(cx, gx - 1 - cx, cy, gy - 1 - cy, 0)
        for r in range(last + 1):
            bound = max(0.0, (r - 1) * size)
            for key in _ring(cx, cy, r, gx, gy):
                cell = cells.get(key)
                if cell:
                    yield bound, floors.get(key, 0.0), cell

    def touched(self, robot: RobotView) -> None:
        """The robot's load grew: raise its cell's floor (a tighter bound prunes more)."""
        if self._cells is None or self._floor is None:
            return
        key = self._key(robot)
        cell = self._cells.get(key)
        if cell:
            floor = self._floor
            self._floors[key] = min(floor(r) for r in cell)

    def _key(self, robot: RobotView) -> tuple[int, int]:
        return (math.floor((robot.x - self._origin[0]) / self._size),
                math.floor((robot.y - self._origin[1]) / self._size))

    def _build(self) -> None:
        xs = [r.x for r in self.robots] or [0.0]
        ys = [r.y for r in self.robots] or [0.0]
        width, height = max(xs) - min(xs), max(ys) - min(ys)
        area = max(width * height, 1e-9)
        size = math.sqrt(area / max(1.0, len(self.robots) / 4.0)) if width > 0 and height > 0 else max(
            width, height, 1.0) / max(1.0, len(self.robots) / 4.0)
        self._size = max(size, 1e-6)
        self._origin = (min(xs), min(ys))
        cells: dict[tuple[int, int], list[RobotView]] = {}
        for robot in self.robots:
            cells.setdefault(self._key(robot), []).append(robot)
        if self._floor is not None:
            floor = self._floor
            self._floors = {key: min(floor(r) for r in robots) for key, robots in cells.items()}
        self._span = (max(k[0] for k in cells) + 1 if cells else 1, max(k[1] for k in cells) + 1 if cells else 1)
        self._cells = cells


def _ring(cx: int, cy: int, r: int, gx: int, gy: int) -> Iterator[tuple[int, int]]:
    """Cells at Chebyshev distance r from (cx, cy), clipped to the grid [0, gx) x [0, gy)."""
    if r == 0:
        yield cx, cy
        return
    x0, x1 = max(cx - r, 0), min(cx + r, gx - 1)
    for j in (cy - r, cy + r):
        if 0 <= j < gy:
            for i in range(x0, x1 + 1):
                yield i, j
    y0, y1 = max(cy - r + 1, 0), min(cy + r - 1, gy - 1)
    for i in (cx - r, cx + r):
        if 0 <= i < gx:
            for j in range(y0, y1 + 1):
                yield i, j


class AssignmentPolicy(Protocol):
    """Picks the robot for one task from a pool of capable, reachable robots; None: none fits now."""

    @property
    def max_queue(self) -> int:
        """Tasks a robot may hold at once (unless it has a `capacity` of its own); `plan` stops offering a kind once
        all its robots are full."""
        ...

    def choose(self, task: Task, pool: RobotPool, loads: Mapping[str, int], now_ns: int) -> str | None:
        ...


@dataclass(frozen=True)
class CostPolicy:
    """Least estimated cost: seconds to get there and through the robot's queue, plus battery and queue
    penalties. Skips robots that rejected the task, are full (`max_queue`), low on battery (except for
    `charge` tasks) or cannot make the deadline. Ties go to the smallest robot id.

    Every term is >= the travel time, so robots are looked at nearest first and the search stops when
    the next ring of the grid cannot beat the best cost: the same answer as scanning every robot."""

    speed_mps: float = 1.0
    task_s: float = 60.0
    battery_weight: float = 30.0
    queue_weight: float = 10.0
    min_battery_percent: float = 20.0
    max_queue: int = 3

    def choose(self, task: Task, pool: RobotPool, loads: Mapping[str, int], now_ns: int) -> str | None:
        target = task.request.target
        tx, ty, tz = target.x, target.y, target.z
        deadline = task.request.deadline_ns
        excluded = task.excluded
        charge = task.request.kind == "charge"
        speed, task_s, min_battery = self.speed_mps, self.task_s, self.min_battery_percent
        battery_weight, queue_weight, max_queue = self.battery_weight / 100.0, self.queue_weight, self.max_queue
        best, best_cost = "", math.inf
        for bound, floor, cell in pool.rings(tx, ty):
            if bound / speed > best_cost:
                break
            if bound / speed + floor > best_cost:
                continue
            for robot in cell:
                robot_id = robot.robot_id
                load = loads.get(robot_id, 0)
                if load >= (robot.capacity or max_queue) or (excluded and robot_id in excluded):
                    continue
                battery = robot.battery_percent
                if battery != battery:  # NaN: unknown, counted as half full
                    battery = 50.0
                if battery < min_battery and not charge:
                    continue
                eta_s = math.sqrt((robot.x - tx) ** 2 + (robot.y - ty) ** 2 + (robot.z - tz) ** 2) / speed \
                    + load * task_s
                if deadline and now_ns + eta_s * 1e9 > deadline:
                    continue
                cost = eta_s + battery_weight * (100.0 - battery) + queue_weight * load
                if cost < best_cost or (cost == best_cost and robot_id < best):
                    best, best_cost = robot_id, cost
        return best or None

    def floor(self, robot: RobotView, load: int) -> float:
        """What this policy adds to travel time for `robot` at `load` (full robots: infinity)."""
        if robot.full(load, self.max_queue):
            return math.inf
        battery = 50.0 if robot.battery_percent != robot.battery_percent else robot.battery_percent
        return load * (self.task_s + self.queue_weight) + self.battery_weight / 100.0 * max(0.0, 100.0 - battery)


def nearest_policy(**options: float) -> CostPolicy:
    """Distance only (no battery or queue penalty); still honours queue limits, battery floor and deadlines."""
    return CostPolicy(**{**options, "battery_weight": 0.0, "queue_weight": 0.0})  # type: ignore[arg-type]


POLICIES: dict[str, Callable[..., AssignmentPolicy]] = {"cost": CostPolicy, "nearest": nearest_policy}


def queue_order(task: Task) -> tuple[int, float, int, str]:
    """Most urgent first: higher priority, then earlier deadline, then earlier submission, then id."""
    deadline = task.request.deadline_ns or math.inf
    return (-task.request.priority, deadline, task.submitted_ns, task.task_id)


class PlanPools:
    """The pools of earlier `plan` calls, kept while the fleet has not changed (`FleetView.version`) and no member
    has gone stale: a few tasks a round then cost a few cells of the grid, not a pass over every capable robot
    (~40 ms a round at 1,000 robots, 2026-12-06). Loads that changed since are brought in (floors, `free`).
    A fleet whose robots report all the time changes between rounds: its pools are built again each round."""

    def __init__(self) -> None:
        self.pools: dict[str, RobotPool] = {}
        self.members: dict[str, frozenset[str]] = {}  # kind -> robot ids in its pool
        self.loads: dict[str, int] = {}  # the loads the pools know (plan adds its picks)
        self._built: tuple[FleetView, int, int, AssignmentPolicy] | None = None  # fleet, its version, stale, policy
        self._until_ns = 0  # the first member goes stale then

    def begin(self, fleet: FleetView, loads: Mapping[str, int], policy: AssignmentPolicy, now_ns: int,
              stale_after_ns: int) -> dict[str, int]:
        """Ready for a round: forget the pools when they are out of date, else bring their loads up to `loads`;
        returns the live loads the round counts its picks in."""
        built = self._built
        if (built is None or built[0] is not fleet or built[1:] != (fleet.version, stale_after_ns, policy)
                or now_ns >= self._until_ns):
            self.pools, self.members = {}, {}
            self.loads = dict(loads)
            self._built, self._until_ns = (fleet, fleet.version, stale_after_ns, policy), 1 << 62
            return self.loads
        mine = self.loads  # updated in place: the pools' floors read it
        if loads != mine:
            changed = [(r, mine.get(r, 0), loads.get(r, 0)) for r in mine.keys() | loads.keys()
                       if mine.get(r, 0) != loads.get(r, 0)]
            mine.clear()
            mine.update(loads)
            for robot_id, was, now in changed:
                robot = fleet.get(robot_id)
                if robot is None:
                    continue
                for capability in robot.capabilities:
                    pool = self.pools.get(capability)
                    if pool is None or robot_id not in self.members[capability]:
                        continue
                    pool.free += robot.full(was, policy.max_queue) - robot.full(now, policy.max_queue)
                    pool.touched(robot)
        return self.loads

    def pool(self, fleet: FleetView, kind: str, policy: AssignmentPolicy, now_ns: int,
             stale_after_ns: int) -> RobotPool:
        """The pool of `kind`, built now when there is none: every reachable robot in a working mode, full ones
        too (the policy passes them over; they count out of `free`), so that a load falling needs no rebuild."""
        pool = self.pools.get(kind)
        if pool is None:
            pool = self.pools[kind] = _pool(fleet, kind, self.loads, policy, now_ns, stale_after_ns, full_too=True)
            self.members[kind] = frozenset(r.robot_id for r in pool.robots)
            self._until_ns = min([self._until_ns, *(r.last_seen_ns + stale_after_ns for r in pool.robots)])
        return pool


def plan(queued: Iterable[Task], fleet: FleetView, loads: Mapping[str, int], policy: AssignmentPolicy, *,
         now_ns: int, stale_after_ns: int, limit: int | None = None,
         kept: PlanPools | None = None) -> list[tuple[Task, str]]:
    """(task, robot) pairs for queued tasks, most urgent first; loads grow as robots are picked.

    Pools hold the robots with the task's capability, reachable, in a working mode and below
    `max_queue`; a kind whose robots are all full is skipped for the rest of the round. A task avoids the
    robots it was taken from while the fleet knows another robot with its capability; when it knows none, those
    robots may take it again (else it would wait queued forever; `max_attempts` still ends it). `kept`: pools of
    earlier rounds to reuse (the same pairs as without)."""
    if kept is not None:
        loads = kept.begin(fleet, loads, policy, now_ns, stale_after_ns)
        pools = kept.pools
    else:
        loads = dict(loads)
        pools = {}
    max_queue = policy.max_queue
    out: list[tuple[Task, str]] = []
    for task in sorted(queued, key=queue_order):
        if limit is not None and len(out) >= limit:
            break
        kind = task.request.kind
        pool = pools.get(kind)
        if pool is None:
            pool = kept.pool(fleet, kind, policy, now_ns, stale_after_ns) if kept is not None else \
                pools.setdefault(kind, _pool(fleet, kind, loads, policy, now_ns, stale_after_ns))
        if pool.free <= 0:
            continue
        candidate = task
        if task.excluded and set(fleet.capable(kind)) <= set(task.excluded):
            candidate = replace(task, excluded=())
        robot_id = policy.choose(candidate, pool, loads, now_ns)
        if robot_id is None:
            continue
        loads[robot_id] = loads.get(robot_id, 0) + 1
        out.append((task, robot_id))
        robot = fleet.get(robot_id)
        for capability in robot.capabilities if robot is not None else ():
            other = pools.get(capability)
            if other is not None and robot is not None:
                other.touched(robot)
                if loads[robot_id] == (robot.capacity or max_queue):
                    other.free -= 1
    return out


def _pool(fleet: FleetView, kind: str, loads: Mapping[str, int], policy: AssignmentPolicy, now_ns: int,
          stale_after_ns: int, *, full_too: bool = False) -> RobotPool:
    """The robots that may take a task of `kind` now (`full_too`: also those at max_queue, counted out of free)."""
    max_queue = policy.max_queue
    robots = []
    free = 0
    for robot_id in fleet.capable(kind):
        robot = fleet.get(robot_id)
        if (robot is not None and robot.mode in WORKING_MODES and not robot.paused  # paused: would not drive
                and robot.reachable(now_ns, stale_after_ns)):
            full = robot.full(loads.get(robot_id, 0), max_queue)
            if full_too or not full:
                robots.append(robot)
                free += not full
    floor = getattr(policy, "floor", None)
    return RobotPool(robots, None if floor is None else lambda r: float(floor(r, loads.get(r.robot_id, 0))), free=free)
