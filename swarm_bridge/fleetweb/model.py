"""The fleet page's model, pure: robots, presence, poses, battery, tasks, per-stream rates and drops, folded from
the records the coordinator reads, in bounded memory; `snapshot()` is what the page shows (a JSON-ready dict).

Robots are folded by the coordinator's own `FleetView` and their presence is its `reachable()`, so the page's
online count is the coordinator's. Tasks come as the coordinator's `Task` versions (Kafka: the event topic) or as
its retained status plus the robots' TaskStatus reports (a single site on MQTT); finished tasks are kept up to a
limit, their counts by state are kept whole.
"""

from __future__ import annotations

import math
from collections import Counter, OrderedDict, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from swarm_bridge.coordinator.core.fleet import FleetView, RobotView
from swarm_bridge.coordinator.core.tasks import ACTIVE, TERMINAL, Task, TaskState
from swarm_bridge.fleetweb.gateways import GatewayBoard
from swarm_bridge.routing.gateway_health import GatewayHealth

__all__ = ["FleetPage", "PageLimits", "RateMeter", "TaskRow"]

_RANK = {"queued": 0, "assigned": 1, "accepted": 2, "running": 3}
_STATES = tuple(state.value for state in TaskState)


@dataclass(frozen=True)
class PageLimits:
    """How much the page keeps: robots, open and finished tasks, streams, history per task, and the rate window."""

    robots: int = 5000
    open_tasks: int = 2000
    finished_tasks: int = 200
    forgotten_tasks: int = 50_000  # ids (and versions) of finished tasks no longer shown, so a re-read adds nothing
    streams: int = 5000
    history: int = 12
    latencies: int = 256  # per stream, for its p99
    rate_window_s: int = 10
    shown_tasks: int = 100
    shown_streams: int = 200
    drop_reasons: int = 100
    gateways: int = 200


class RateMeter:
    """Records per second over the last `window_s` whole seconds, in `window_s` buckets (constant memory)."""

    def __init__(self, window_s: int) -> None:
        self.window_s = window_s
        self._counts = [0] * window_s
        self._seconds = [-1] * window_s

    def add(self, now_ns: int, n: int = 1) -> None:
        second = now_ns // 1_000_000_000
        slot = second % self.window_s
        if self._seconds[slot] != second:
            self._seconds[slot], self._counts[slot] = second, 0
        self._counts[slot] += n

    def rate(self, now_ns: int) -> float:
        """Mean records/s over the whole seconds before the current one."""
        second = now_ns // 1_000_000_000
        total = sum(c for c, s in zip(self._counts, self._seconds, strict=True)
                    if second - self.window_s <= s < second)
        return total / self.window_s


@dataclass
class _Stream:
    rate: RateMeter
    total: int = 0
    bytes: int = 0
    last_ns: int = 0
    latencies_ms: deque[float] = field(default_factory=deque)


@dataclass
class TaskRow:
    """One task as the page shows it: state, robot, progress, and the states it went through (bounded)."""

    task_id: str
    kind: str = ""
    state: str = "queued"
    robot_id: str = ""
    progress: float = 0.0
    attempts: int = 0
    reason: str = ""
    version: int = 0
    updated_ns: int = 0
    history: deque[tuple[str, int]] = field(default_factory=deque)

    def move(self, state: str, now_ns: int) -> None:
        """Enter `state` (a new history entry when it changed)."""
        if not self.history or self.history[-1][0] != state:
            self.history.append((state, now_ns))
        self.state, self.updated_ns = state, now_ns


class FleetPage:
    """What the fleet page shows, fed record by record; every collection is bounded by `limits`."""

    def __init__(self, *, fleet: str, stale_after_ns: int, limits: PageLimits | None = None) -> None:
        self.fleet_name, self.stale_after_ns = fleet, stale_after_ns
        self.limits = limits or PageLimits()
        self.fleet = FleetView()
        self.frames: dict[str, str] = {}
        self.poses: dict[str, tuple[float, float, str]] = {}  # from the robot's own pose stream, when it has one
        self.drops: Counter[str] = Counter()
        self.coordinator_drops: dict[str, int] = {}
        self.coordinator_counts: dict[str, int] | None = None  # a site coordinator's own counts, when it says them
        self.source: dict[str, Any] = {}
        self.broker: dict[str, str] = {}  # the broker's health, by the source's fixed table of facts
        self.gateways = GatewayBoard(limit=self.limits.gateways)  # their health records; the source sets its note
        self.records = 0
        self.last_record_ns = 0
        self._open: OrderedDict[str, TaskRow] = OrderedDict()
        self._finished: OrderedDict[str, TaskRow] = OrderedDict()
        self._forgotten: OrderedDict[str, tuple[int, str]] = OrderedDict()  # id -> (version, state)
        self._counts: Counter[str] = Counter()
        self._streams: dict[tuple[str, str], _Stream] = {}

    # -- robots -----------------------------------------------------------------------------------------

    def on_state(self, body: Mapping[str, Any], now_ns: int) -> None:
        """A RobotState message (dict), as the coordinator folds it; its frame is kept as reported."""
        robot_id = str(body["robot_id"])
        if not self._room_for(robot_id):
            return
        self.fleet.on_state(body, now_ns)
        header = body.get("pose", {}).get("header", {})
        self.frames[robot_id] = str(header.get("frame_id", "")) if isinstance(header, Mapping) else ""

    def on_pose(self, robot_id: str, x: float, y: float, frame: str) -> None:
        """A pose from the robot's own pose stream (odometry): where the map puts it, in place of RobotState's."""
        if robot_id in self.poses or len(self.poses) < self.limits.robots:
            self.poses[robot_id] = (x, y, frame)

    def on_presence(self, robot_id: str, state: str, reason: str, now_ns: int) -> None:
        """A presence record (the robot's, or its Last Will)."""
        if self._room_for(robot_id):
            self.fleet.on_presence(robot_id, state, reason, now_ns)

    def _room_for(self, robot_id: str) -> bool:
        if self.fleet.get(robot_id) is not None or len(self.fleet) < self.limits.robots:
            return True
        self.drop("robot over the page's limit")
        return False

    # -- tasks ------------------------------------------------------------------------------------------

    def on_task(self, task: Task, now_ns: int) -> None:
        """A task version from the coordinator's event log (an old or repeated version changes nothing)."""
        task_id = task.task_id
        row = self._open.get(task_id) or self._finished.get(task_id)
        known, counted = (row.version, row.state) if row is not None else self._forgotten.get(task_id, (0, ""))
        if task.version <= known:
            return
        if row is None:
            self._forgotten.pop(task_id, None)
            row = TaskRow(task_id, history=deque(maxlen=self.limits.history))
        if counted:
            self._counts[counted] -= 1
        self._counts[task.state.value] += 1
        row.kind, row.robot_id, row.attempts, row.reason = task.request.kind, task.robot_id, task.attempts, task.reason
        row.progress, row.version = task.progress, task.version
        row.move(task.state.value, task.updated_ns or now_ns)
        self._file(row)

    def on_report(self, *, robot_id: str, task_id: str, state: TaskState, progress: float, reason: str,
                  now_ns: int) -> None:
        """A robot's TaskStatus report (a single site): its task's state and progress as the robot says them."""
        row = self._open.get(task_id) or self._finished.get(task_id)
        if row is None:
            if task_id in self._forgotten:
                return
            row = TaskRow(task_id, robot_id=robot_id, history=deque(maxlen=self.limits.history))
        if row.state in _TERMINAL_NAMES or (row.robot_id and row.robot_id != robot_id):
            return
        row.robot_id, row.progress = robot_id, progress
        if reason:
            row.reason = reason
        row.move(state.value, now_ns)
        self._file(row)

    def on_site_status(self, doc: Mapping[str, Any], now_ns: int) -> None:
        """The retained status a site coordinator publishes: its task counts, drops and open tasks."""
        summary = doc.get("summary", {})
        tasks = summary.get("tasks")
        if isinstance(tasks, Mapping):
            self.coordinator_counts = {str(k): int(v) for k, v in tasks.items()}
        dropped = summary.get("dropped")
        if isinstance(dropped, Mapping):
            self.coordinator_drops = {str(k): int(v) for k, v in dropped.items()}
        at_ns = int(doc.get("at_ns", now_ns))
        for raw in doc.get("open_tasks", []):
            task_id = str(raw["task_id"])
            row = self._open.get(task_id) or self._finished.get(task_id)
            if row is None:
                if task_id in self._forgotten:
                    continue
                row = TaskRow(task_id, history=deque(maxlen=self.limits.history))
            elif row.state in _TERMINAL_NAMES or (row.updated_ns > at_ns and _RANK.get(row.state, 0) >
                                                  _RANK.get(str(raw["state"]), 0)):
                continue  # a robot's report newer than this status
            row.kind, row.robot_id = str(raw.get("kind", row.kind)), str(raw.get("robot_id") or "")
            row.attempts, row.reason = int(raw.get("attempts", 0)), str(raw.get("reason") or "")
            if str(raw["state"]) == "queued":
                row.progress = 0.0
            row.move(str(raw["state"]), max(at_ns, row.updated_ns))
            self._file(row)

    def _file(self, row: TaskRow) -> None:
        """Put a row where its state belongs (open or finished), within the limits."""
        if row.state in _TERMINAL_NAMES:
            self._open.pop(row.task_id, None)
            self._finished[row.task_id] = row
            self._finished.move_to_end(row.task_id)
            while len(self._finished) > self.limits.finished_tasks:
                _old_id, old = self._finished.popitem(last=False)
                self._forget(old)
            return
        self._finished.pop(row.task_id, None)
        self._open[row.task_id] = row
        self._open.move_to_end(row.task_id)
        while len(self._open) > self.limits.open_tasks:
            _old_id, old = self._open.popitem(last=False)
            self._forget(old)
            self.drop("open task over the page's limit")

    def _forget(self, row: TaskRow) -> None:
        self._forgotten[row.task_id] = (row.version, row.state)
        while len(self._forgotten) > self.limits.forgotten_tasks:
            self._forgotten.popitem(last=False)

    def task(self, task_id: str) -> TaskRow | None:
        return self._open.get(task_id) or self._finished.get(task_id)

    def task_counts(self) -> dict[str, int]:
        """Tasks per state: the site coordinator's own counts when it gave them, else those of the event log."""
        if self.coordinator_counts is not None:
            return {state: self.coordinator_counts.get(state, 0) for state in _STATES}
        return {state: self._counts.get(state, 0) for state in _STATES}

    # -- streams ----------------------------------------------------------------------------------------

    def on_record(self, robot_id: str, stream: str, size: int, now_ns: int, *, stamp_ns: int = 0) -> None:
        """One record of a robot's stream arrived (`stamp_ns`: when the robot stamped it, for latency)."""
        self.heard(now_ns)
        key = (robot_id, stream)
        entry = self._streams.get(key)
        if entry is None:
            if len(self._streams) >= self.limits.streams:
                self.drop("stream over the page's limit")
                return
            entry = self._streams[key] = _Stream(RateMeter(self.limits.rate_window_s),
                                                 latencies_ms=deque(maxlen=self.limits.latencies))
        entry.rate.add(now_ns)
        entry.total += 1
        entry.bytes += size
        entry.last_ns = now_ns
        if stamp_ns > 0:
            entry.latencies_ms.append(max(0.0, (now_ns - stamp_ns) / 1e6))

    def on_broker(self, fact: str, value: str) -> None:
        """One fact of the broker's health (clients connected, messages dropped, brokers up, ...)."""
        self.broker[fact] = value[:200]

    def on_gateway(self, health: GatewayHealth, sent_ns: int) -> None:
        """A gateway's health record, sent at `sent_ns`."""
        if not self.gateways.on_health(health, sent_ns):
            self.drop("gateway over the page's limit")

    def heard(self, now_ns: int) -> None:
        """A record came from the source (the page shows how many, and how long ago the last)."""
        self.records += 1
        self.last_record_ns = now_ns

    def drop(self, reason: str) -> None:
        """A record the page could not read, counted by reason (past `drop_reasons` reasons, as "other")."""
        if reason not in self.drops and len(self.drops) >= self.limits.drop_reasons:
            reason = "other"
        self.drops[reason] += 1

    # -- the page ---------------------------------------------------------------------------------------

    def snapshot(self, now_ns: int) -> dict[str, Any]:
        """Everything the page shows, as plain JSON-ready values."""
        loads: Counter[str] = Counter(r.robot_id for r in self._open.values()
                                      if r.robot_id and r.state in _ACTIVE_NAMES)
        doing = {r.robot_id: r for r in self._open.values() if r.robot_id and r.state in _UNDER_WAY}
        robots = [self._robot(r, now_ns, loads, doing) for r in self.fleet]
        shown = list(reversed(self._open.values()))[: self.limits.shown_tasks]
        shown += list(reversed(self._finished.values()))[: max(0, self.limits.shown_tasks - len(shown))]
        streams = sorted(self._streams.items(), key=lambda kv: (-kv[1].rate.rate(now_ns), kv[0]))
        drops = dict(sorted(self.drops.items()))
        drops.update({f"coordinator: {k}": v for k, v in sorted(self.coordinator_drops.items())})
        return {
            "at_ns": now_ns, "fleet": self.fleet_name,
            "source": {**self.source, "records": self.records,
                       "last_record_age_s": None if not self.last_record_ns
                       else round((now_ns - self.last_record_ns) / 1e9, 1)},
            "offline_after_s": self.stale_after_ns / 1e9,
            "summary": {"robots": len(robots), "online": sum(r["online"] for r in robots),
                        "tasks": self.task_counts()},
            "robots": robots,
            "tasks": [_task(row, now_ns) for row in shown],
            "streams": [_stream(key, entry, now_ns) for key, entry in streams[: self.limits.shown_streams]],
            "stream_count": len(self._streams),
            "drops": drops,
            "broker": dict(self.broker),
            "gateways": {"note": self.gateways.note, "rows": self.gateways.rows(now_ns)},
        }

    def _robot(self, robot: RobotView, now_ns: int, loads: Counter[str],
               doing: Mapping[str, TaskRow]) -> dict[str, Any]:
        """A robot's row; its task is the one it reports, else the one the task log says it runs (a VDA 5050
        vehicle reports orders, not tasks)."""
        task = self.task(robot.current_task_id) if robot.current_task_id else doing.get(robot.robot_id)
        online = robot.reachable(now_ns, self.stale_after_ns)
        x, y, frame = self.poses.get(robot.robot_id) or (robot.x, robot.y, self.frames.get(robot.robot_id, ""))
        return {
            "robot_id": robot.robot_id, "kind": robot.kind, "online": online,
            "presence": "online" if online else ("offline" if not robot.online else "silent"),
            "presence_reason": robot.presence_reason, "mode": robot.mode.name.lower(), "paused": robot.paused,
            "battery_percent": None if not math.isfinite(robot.battery_percent) else round(robot.battery_percent, 1),
            "charging": robot.charging, "x": _finite(x), "y": _finite(y), "frame": frame,
            "last_seen_s": None if not robot.last_seen_ns else round((now_ns - robot.last_seen_ns) / 1e9, 1),
            "current_task_id": robot.current_task_id or (task.task_id if task else ""),
            "task_state": task.state if task else "",
            "task_progress": _finite(task.progress) if task else None, "tasks": loads.get(robot.robot_id, 0),
        }


_TERMINAL_NAMES = frozenset(state.value for state in TERMINAL)
_ACTIVE_NAMES = frozenset(state.value for state in ACTIVE)
_UNDER_WAY = frozenset({TaskState.ACCEPTED.value, TaskState.RUNNING.value})


def _finite(value: float) -> float | None:
    """A number JSON can carry, None for NaN and the infinities (a robot may report any float)."""
    return value if math.isfinite(value) else None


def _task(row: TaskRow, now_ns: int) -> dict[str, Any]:
    return {"task_id": row.task_id, "kind": row.kind, "state": row.state, "robot_id": row.robot_id,
            "progress": _finite(round(row.progress, 3)), "attempts": row.attempts, "reason": row.reason,
            "history": [state for state, _at in row.history],
            "age_s": round((now_ns - row.updated_ns) / 1e9, 1) if row.updated_ns else None}


def _stream(key: tuple[str, str], entry: _Stream, now_ns: int) -> dict[str, Any]:
    latencies = sorted(entry.latencies_ms)
    p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))] if latencies else None
    return {"robot_id": key[0], "stream": key[1], "rate_hz": round(entry.rate.rate(now_ns), 2), "total": entry.total,
            "bytes": entry.bytes, "p99_ms": None if p99 is None else round(p99, 1),
            "last_s": round((now_ns - entry.last_ns) / 1e9, 1)}
