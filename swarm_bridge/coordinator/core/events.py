"""Task state, event-sourced: every change is a `TaskEvent` on a compacted Kafka topic keyed by task id,
and `TaskBook` folds them back (the highest version of each task wins, so replays and duplicates are harmless).

Wire (value, UTF-8 JSON): `{"event": <what happened>, "task": {...every Task field...}}`. A task lives in
the partition of its home shard (its robot's shard, or its own id's while it has no robot); when it moves,
the old partition gets a tombstone (null value) so compaction forgets it there.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache

from swarm_bridge.coordinator.core.tasks import ACTIVE, Target, Task, TaskRequest, TaskState
from swarm_bridge.routing.sharding import shard_of

__all__ = ["SUBMITTED", "TaskBook", "TaskEvent", "decode_event", "encode_event", "event_name", "home_shard"]

SUBMITTED = "submitted"
"""The first event of every task that was queued: nothing of the task was written before it."""


@dataclass(frozen=True)
class TaskEvent:
    """What happened (`submitted`, `assigned`, `accepted`, `requeued`, `done`, ...) and the task after it."""

    event: str
    task: Task


def home_shard(task: Task, shards: int) -> int:
    """The shard that owns a task: its robot's while it has one, else its own id's."""
    return _shard(task.robot_id or task.task_id, shards)


@lru_cache(maxsize=1 << 16)
def _shard(key: str, shards: int) -> int:
    return shard_of(key, shards)


def encode_event(event: TaskEvent) -> bytes:
    """TaskEvent -> compact JSON bytes."""
    t, r = event.task, event.task.request
    target = r.target
    doc = {"event": event.event, "task": {
        "request": {"task_id": r.task_id, "kind": r.kind,
                    "target": {"x": target.x, "y": target.y, "z": target.z, "frame_id": target.frame_id},
                    "priority": r.priority, "deadline_ns": r.deadline_ns, "parameters": r.parameters,
                    "requested_by": r.requested_by},
        "state": t.state.value, "submitted_ns": t.submitted_ns, "updated_ns": t.updated_ns, "robot_id": t.robot_id,
        "command_id": t.command_id, "attempts": t.attempts, "excluded": t.excluded, "reason": t.reason,
        "progress": t.progress, "version": t.version, "history": t.history,
        "cancel_reason": t.cancel_reason, "cancel_ns": t.cancel_ns}}
    return json.dumps(doc, separators=(",", ":")).encode("utf-8")


def decode_event(payload: bytes) -> TaskEvent:
    """JSON bytes -> TaskEvent; ValueError (or KeyError, TypeError) for a record that is not one."""
    doc = json.loads(payload)
    raw = doc["task"]
    req = raw["request"]
    request = TaskRequest(req["task_id"], req["kind"], Target(**req["target"]), req["priority"], req["deadline_ns"],
                          tuple((str(k), str(v)) for k, v in req["parameters"]), req["requested_by"])
    task = Task(request, TaskState(raw["state"]), raw["submitted_ns"], raw["updated_ns"], raw["robot_id"],
                raw["command_id"], raw["attempts"], tuple(raw["excluded"]), raw["reason"], raw["progress"],
                raw["version"], tuple(raw["history"]), str(raw.get("cancel_reason", "")), int(raw.get("cancel_ns", 0)))
    return TaskEvent(str(doc["event"]), task)


class TaskBook:
    """Every task by id (latest version), with the queued and active ones indexed and each robot's load."""

    def __init__(self) -> None:
        self._tasks: dict[str, Task] = {}
        self.queued: set[str] = set()
        self.active: set[str] = set()
        self.loads: dict[str, int] = {}
        self.changes = 0  # counts applied versions

    def __len__(self) -> int:
        return len(self._tasks)

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._tasks

    def __iter__(self) -> Iterator[Task]:
        return iter(self._tasks.values())

    def get(self, task_id: str) -> Task | None:
        return self._tasks.get(task_id)

    def apply(self, task: Task) -> bool:
        """Take `task` if it is newer than what the book holds; False for an old or repeated version."""
        old = self._tasks.get(task.task_id)
        if old is not None and old.version >= task.version:
            return False
        if old is not None:
            self._unindex(old)
        self.changes += 1
        self._tasks[task.task_id] = task
        if task.state is TaskState.QUEUED:
            self.queued.add(task.task_id)
        elif task.state in ACTIVE:
            self.active.add(task.task_id)
            self.loads[task.robot_id] = self.loads.get(task.robot_id, 0) + 1
        return True

    def fold(self, events: Iterable[TaskEvent]) -> int:
        """Apply many events; how many changed the book."""
        return sum(self.apply(e.task) for e in events)

    def counts(self) -> dict[str, int]:
        """Tasks per state (every state listed)."""
        out = {state.value: 0 for state in TaskState}
        for task in self._tasks.values():
            out[task.state.value] += 1
        return out

    def on_robot(self, robot_id: str) -> list[Task]:
        """Active tasks of one robot."""
        return [t for t in (self._tasks[i] for i in self.active) if t.robot_id == robot_id]

    def _unindex(self, task: Task) -> None:
        self.queued.discard(task.task_id)
        if task.task_id in self.active:
            self.active.discard(task.task_id)
            left = self.loads.get(task.robot_id, 0) - 1
            if left > 0:
                self.loads[task.robot_id] = left
            else:
                self.loads.pop(task.robot_id, None)


def event_name(old: Task | None, new: Task) -> str:
    """The event that turned `old` into `new`: `submitted`, `requeued`, or the new state's name."""
    if old is None:
        return SUBMITTED if new.state is TaskState.QUEUED else new.state.value
    if new.state is TaskState.QUEUED:
        return "requeued"
    return new.state.value
