"""Task state, event-sourced: every change is a `TaskEvent` on a compacted Kafka topic keyed by task id,
and `TaskBook` folds them back (the highest version of each task wins, so replays and duplicates are harmless).

Wire (value, UTF-8 JSON): `{"event": <what happened>, "task": {...every Task field...}}`. A task lives in
the partition of its home shard (its robot's shard, or its own id's while it has no robot); when it moves,
the old partition gets a tombstone (null value) so compaction forgets it there.
"""

from __future__ import annotations

import heapq
import json
from collections import deque
from collections.abc import Callable, Iterable, Iterator, KeysView
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
    """Every task by id (latest version), with the queued and active ones indexed, each robot's load and the
    count per state kept as tasks change (a gauge reads them without walking the book).

    Ended tasks may be forgotten (`forget_ended`): only their id stays (about 100 bytes each, out of the garbage
    collector's way), so a resubmission is still a duplicate and an event of them read again (a
    replay) still changes nothing; `get` no longer finds them, `forgotten` says which they were."""

    def __init__(self, due: Callable[[Task], int | None] | None = None) -> None:
        """`due`: when a version of a task falls due (`due_ns`); with it, `falling_due` says which tasks
        to look at, without walking the book."""
        self._tasks: dict[str, Task] = {}
        self.queued: set[str] = set()
        self.active: set[str] = set()
        self.loads: dict[str, int] = {}
        self._on_robot: dict[str, set[str]] = {}  # robot id -> its active task ids
        self._due_of = due
        self._due: list[tuple[int, int, str]] = []  # heap of (due at ns, version, task id); stale entries skipped
        self.changes = 0  # counts applied versions
        self._counts = dict.fromkeys(TaskState, 0)  # tasks per state, the forgotten ones in their last state
        self._forgotten: set[str] = set()  # ended tasks forgotten: their ids
        self._ended: deque[tuple[int, str]] = deque()  # (ended at ns, task id), in the order they ended here

    def __len__(self) -> int:
        return len(self._tasks) + len(self._forgotten)

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._tasks or task_id in self._forgotten

    def __iter__(self) -> Iterator[Task]:
        """The tasks held whole (not the forgotten ones)."""
        return iter(self._tasks.values())

    def get(self, task_id: str) -> Task | None:
        return self._tasks.get(task_id)

    def forgotten(self, task_id: str) -> bool:
        """Whether `task_id` is an ended task this book forgot (`forget_ended`)."""
        return task_id in self._forgotten

    def apply(self, task: Task) -> bool:
        """Take `task` if it is newer than what the book holds; False for an old or repeated version."""
        old = self._tasks.get(task.task_id)
        if old is not None and old.version >= task.version:
            return False
        if old is None and task.task_id in self._forgotten:
            return False  # it ended for good (an ended task never changes): an event of it read again
        if old is not None:
            self._unindex(old)
            self._counts[old.state] -= 1
        self.changes += 1
        self._tasks[task.task_id] = task
        self._counts[task.state] += 1
        if task.state is TaskState.QUEUED:
            self.queued.add(task.task_id)
        elif task.state in ACTIVE:
            self.active.add(task.task_id)
            self.loads[task.robot_id] = self.loads.get(task.robot_id, 0) + 1
            self._on_robot.setdefault(task.robot_id, set()).add(task.task_id)
        elif task.terminal:
            self._ended.append((task.updated_ns, task.task_id))
        if self._due_of is not None:
            due = self._due_of(task)
            if due is not None:
                heapq.heappush(self._due, (due, task.version, task.task_id))
        return True

    def falling_due(self, now_ns: int) -> list[str]:
        """The tasks whose current version fell due by `now_ns` (each once: taken off the due list); the heap is
        rebuilt when versions that changed since outnumber the open tasks, so it stays as small as the book."""
        due, taken = self._due, []
        while due and due[0][0] <= now_ns:
            _at, version, task_id = heapq.heappop(due)
            task = self._tasks.get(task_id)
            if task is not None and task.version == version:
                taken.append(task_id)
        if len(due) > 2 * (len(self.active) + len(self.queued)) + 1024 and self._due_of is not None:
            self._due = [(at, t.version, t.task_id) for t in (self._tasks[i] for i in self.active | self.queued)
                         if (at := self._due_of(t)) is not None and at > now_ns]
            heapq.heapify(self._due)
        return taken

    def fold(self, events: Iterable[TaskEvent]) -> int:
        """Apply many events; how many changed the book."""
        return sum(self.apply(e.task) for e in events)

    def counts(self) -> dict[str, int]:
        """Tasks per state (every state listed), the forgotten ones in the state they ended in."""
        return {state.value: count for state, count in self._counts.items()}

    def forget_ended(self, before_ns: int) -> int:
        """Forget the tasks that ended before `before_ns` (their `updated_ns`), keeping only their ids; returns how
        many. An event of a forgotten task read later changes nothing, so call it only once every event of them was
        read (a view caught up, as an instance owning shards is)."""
        done = 0
        ended = self._ended
        while ended and ended[0][0] < before_ns:
            _at, task_id = ended.popleft()
            task = self._tasks.get(task_id)
            if task is None or not task.terminal or task.updated_ns >= before_ns:
                continue  # forgotten already, or changed since (a later entry stands for it)
            del self._tasks[task_id]
            self._forgotten.add(task_id)
            done += 1
        return done

    def on_robot(self, robot_id: str) -> list[Task]:
        """Active tasks of one robot."""
        return [self._tasks[i] for i in sorted(self._on_robot.get(robot_id, ()))]

    def robots_holding(self) -> KeysView[str]:
        """Ids of the robots holding active tasks (a live view)."""
        return self._on_robot.keys()

    def _unindex(self, task: Task) -> None:
        self.queued.discard(task.task_id)
        if task.task_id in self.active:
            self.active.discard(task.task_id)
            left = self.loads.get(task.robot_id, 0) - 1
            if left > 0:
                self.loads[task.robot_id] = left
                self._on_robot[task.robot_id].discard(task.task_id)
            else:
                self.loads.pop(task.robot_id, None)
                self._on_robot.pop(task.robot_id, None)


def event_name(old: Task | None, new: Task) -> str:
    """The event that turned `old` into `new`: `submitted`, `requeued`, or the new state's name."""
    if old is None:
        return SUBMITTED if new.state is TaskState.QUEUED else new.state.value
    if new.state is TaskState.QUEUED:
        return "requeued"
    return new.state.value
