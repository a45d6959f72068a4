"""The task model: a request, validated with reasons, and a lifecycle driven by the robots' TaskStatus.

queued -> assigned -> accepted -> running -> done | failed | cancelled; an invalid request ends
`rejected` at once. A robot that rejects a task, goes offline or never accepts it sends the task back
to queued (another attempt, that robot excluded) until `max_attempts`; then it fails. Every change
is a new immutable `Task` with `version` + 1, which is what the event log folds by.
"""

from __future__ import annotations

import json
import math
from collections.abc import Collection
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any

from swarm_bridge.coordinator.core.errors import CoordinatorError, TaskStateError

__all__ = [
    "ACTIVE",
    "TERMINAL",
    "InvalidTask",
    "Target",
    "Task",
    "TaskRequest",
    "TaskRules",
    "TaskState",
    "assigned",
    "cancel_requested",
    "cancelled",
    "due_ns",
    "new_task",
    "on_robot_lost",
    "on_status",
    "overdue",
    "parse_request",
    "rejected",
]


class TaskState(str, Enum):
    """Where a task is; the values match TaskStatus.STATE_* names (lower case)."""

    QUEUED = "queued"
    ASSIGNED = "assigned"
    ACCEPTED = "accepted"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"
    REJECTED = "rejected"


ACTIVE = frozenset({TaskState.ASSIGNED, TaskState.ACCEPTED, TaskState.RUNNING})
TERMINAL = frozenset({TaskState.DONE, TaskState.FAILED, TaskState.CANCELLED, TaskState.REJECTED})
_ORDER = {TaskState.ASSIGNED: 1, TaskState.ACCEPTED: 2, TaskState.RUNNING: 3}
_MAX_ID = 200


class InvalidTask(CoordinatorError, ValueError):
    """A task request that cannot be queued: which task (if known), which field, why."""

    def __init__(self, task_id: str, field_name: str, problem: str) -> None:
        self.task_id, self.field, self.problem = task_id, field_name, problem
        super().__init__(f"task {task_id or '<no task_id>'}: {field_name}: {problem}")


@dataclass(frozen=True)
class Target:
    """Where to do a task: a point in a frame."""

    x: float = 0.0
    y: float = 0.0
    z: float = 0.0
    frame_id: str = "map"


@dataclass(frozen=True)
class TaskRequest:
    """What a submitter asks for; `task_id` is the idempotency key (a resubmission is the same task)."""

    task_id: str
    kind: str
    target: Target = Target()
    priority: int = 0
    deadline_ns: int = 0
    parameters: tuple[tuple[str, str], ...] = ()
    requested_by: str | None = None


@dataclass(frozen=True)
class TaskRules:
    """Timeouts and retries of the lifecycle."""

    accept_timeout_ns: int = 30_000_000_000
    run_timeout_ns: int = 600_000_000_000
    max_attempts: int = 3


@dataclass(frozen=True)
class Task:
    """One task as the coordinator knows it; every change makes a new one with `version` + 1."""

    request: TaskRequest
    state: TaskState
    submitted_ns: int
    updated_ns: int
    robot_id: str = ""
    command_id: str = ""
    attempts: int = 0
    excluded: tuple[str, ...] = ()
    reason: str = ""
    progress: float = 0.0
    version: int = 1
    history: tuple[str, ...] = field(default=())  # robots it was assigned to, in order
    cancel_reason: str = ""  # a cancel was asked for while the task was on a robot: it ends when the robot says
    cancel_ns: int = 0  # when that cancel was asked for (the robot has `accept_timeout` to confirm it)

    @property
    def cancelling(self) -> bool:
        """A cancel was asked for and its robot has not confirmed it yet."""
        return bool(self.cancel_reason) and not self.terminal

    @property
    def task_id(self) -> str:
        return self.request.task_id

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL

    def _next(self, now_ns: int, **changes: Any) -> Task:
        return replace(self, updated_ns=now_ns, version=self.version + 1, **changes)


def parse_request(doc: Any, *, kinds: Collection[str], now_ns: int) -> TaskRequest:
    """A submission (JSON bytes or a parsed mapping) -> TaskRequest; InvalidTask names the field and why.

    Checks: task_id present ([A-Za-z0-9_.:-], at most 200), kind known to the fleet, priority 0..255,
    deadline (ns since the epoch, 0 = none) not already past, target numbers finite, parameters strings."""
    if isinstance(doc, (bytes, bytearray, str)):
        try:
            doc = json.loads(doc)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InvalidTask("", "payload", f"not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise InvalidTask("", "payload", f"expected a JSON object, got {type(doc).__name__}")
    task_id = doc.get("task_id")
    if not isinstance(task_id, str) or not task_id:
        raise InvalidTask("", "task_id", "missing or not a non-empty string")
    if len(task_id) > _MAX_ID or not all(c.isalnum() or c in "_.:-" for c in task_id):
        raise InvalidTask(task_id[:_MAX_ID], "task_id", f"use at most {_MAX_ID} letters, digits, '_', '.', ':' or '-'")
    unknown = set(doc) - {"task_id", "kind", "target", "priority", "deadline_ns", "parameters", "requested_by"}
    if unknown:
        raise InvalidTask(task_id, sorted(unknown)[0], "unknown field; known: task_id, kind, target, priority, "
                          "deadline_ns, parameters, requested_by")
    kind = doc.get("kind")
    if not isinstance(kind, str) or kind not in kinds:
        raise InvalidTask(task_id, "kind", f"unknown capability {kind!r}; the fleet knows: {', '.join(sorted(kinds))}")
    priority = doc.get("priority", 0)
    if isinstance(priority, bool) or not isinstance(priority, int) or not 0 <= priority <= 255:
        raise InvalidTask(task_id, "priority", f"must be an integer 0..255 (got {priority!r})")
    deadline = doc.get("deadline_ns", 0)
    if isinstance(deadline, bool) or not isinstance(deadline, int) or deadline < 0:
        raise InvalidTask(task_id, "deadline_ns", f"must be ns since the epoch, 0 for none (got {deadline!r})")
    if deadline and deadline <= now_ns:
        raise InvalidTask(task_id, "deadline_ns", f"deadline already past by {(now_ns - deadline) / 1e9:.3f} s")
    return TaskRequest(task_id, kind, _target(task_id, doc.get("target", {})), priority, deadline,
                       _parameters(task_id, doc.get("parameters", {})), _requested_by(task_id, doc))


def _target(task_id: str, raw: Any) -> Target:
    if not isinstance(raw, dict):
        raise InvalidTask(task_id, "target", f"expected an object {{x, y, z, frame_id}} (got {raw!r})")
    extra = set(raw) - {"x", "y", "z", "frame_id"}
    if extra:
        raise InvalidTask(task_id, f"target.{sorted(extra)[0]}", "unknown field; known: x, y, z, frame_id")
    values = []
    for name in ("x", "y", "z"):
        value = raw.get(name, 0.0)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise InvalidTask(task_id, f"target.{name}", f"must be a finite number (got {value!r})")
        values.append(float(value))
    frame = raw.get("frame_id", "map")
    if not isinstance(frame, str):
        raise InvalidTask(task_id, "target.frame_id", f"must be a string (got {frame!r})")
    return Target(values[0], values[1], values[2], frame)


def _parameters(task_id: str, raw: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(raw, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in raw.items()):
        raise InvalidTask(task_id, "parameters", f"must be an object of strings to strings (got {raw!r})")
    return tuple(sorted(raw.items()))


def _requested_by(task_id: str, doc: dict[str, Any]) -> str | None:
    value = doc.get("requested_by")
    if value is not None and not isinstance(value, str):
        raise InvalidTask(task_id, "requested_by", f"must be a string or null (got {value!r})")
    return value


def new_task(request: TaskRequest, now_ns: int) -> Task:
    """A valid request, queued."""
    return Task(request, TaskState.QUEUED, submitted_ns=now_ns, updated_ns=now_ns)


def rejected(error: InvalidTask, key: str, now_ns: int) -> Task:
    """The record of an invalid submission: terminal at once, with the reason; `key` names it when no task_id."""
    request = TaskRequest(error.task_id or key, "")
    return Task(request, TaskState.REJECTED, submitted_ns=now_ns, updated_ns=now_ns, reason=str(error))


def assigned(task: Task, robot_id: str, now_ns: int) -> Task:
    """Give a queued task to a robot: a new attempt, with its own command id; the reason of the last retry
    (if any) stays, so the log says why the task moved."""
    if task.state is not TaskState.QUEUED:
        raise TaskStateError(f"task {task.task_id}: only a queued task can be assigned (it is {task.state.value})")
    attempt = task.attempts + 1
    return task._next(now_ns, state=TaskState.ASSIGNED, robot_id=robot_id, attempts=attempt,
                      command_id=f"{task.task_id}#{attempt}", progress=0.0, history=(*task.history, robot_id))


def on_status(task: Task, *, robot_id: str, state: TaskState, reason: str, progress: float, now_ns: int,
              rules: TaskRules) -> Task | None:
    """Apply a robot's report; None when it changes nothing (another robot's, stale, or after the end)."""
    if task.terminal or task.state is TaskState.QUEUED or robot_id != task.robot_id:
        return None
    if task.cancelling and state in (TaskState.REJECTED, TaskState.CANCELLED):  # the cancel confirmed
        why = f"{task.cancel_reason} (robot {robot_id}: {reason})" if reason else task.cancel_reason
        return task._next(now_ns, state=TaskState.CANCELLED, reason=why)
    if state is TaskState.REJECTED:
        return _retry(task, now_ns, rules, f"rejected by {robot_id}: {reason or 'no reason given'}")
    if state in (TaskState.DONE, TaskState.FAILED, TaskState.CANCELLED):
        return task._next(now_ns, state=state, reason=reason, progress=1.0 if state is TaskState.DONE else progress)
    if state in _ORDER and _ORDER[state] >= _ORDER[task.state]:
        if state is task.state and progress == task.progress:
            return None
        return task._next(now_ns, state=state, progress=progress)
    return None


def cancelled(task: Task, now_ns: int, reason: str) -> Task | None:
    """Cancel a task on request (queued or on a robot); None when it has already ended."""
    if task.terminal:
        return None
    return task._next(now_ns, state=TaskState.CANCELLED, reason=reason)


def cancel_requested(task: Task, now_ns: int, reason: str) -> Task | None:
    """Ask for a cancel that the robot confirms: a queued task ends `cancelled` at once, one on a robot keeps its
    state with `cancel_reason` set until the robot reports it (`on_status`) or does not in time (`overdue`); None
    when it has already ended or a cancel is already asked for."""
    if task.terminal or task.cancel_reason:
        return None
    if task.state is TaskState.QUEUED:
        return task._next(now_ns, state=TaskState.CANCELLED, reason=reason)
    return task._next(now_ns, cancel_reason=reason, cancel_ns=now_ns)


def on_robot_lost(task: Task, now_ns: int, rules: TaskRules, why: str) -> Task | None:
    """The task's robot went offline: back to the queue without that robot (or failed after the last attempt);
    a task being cancelled ends `cancelled` instead."""
    if task.state not in ACTIVE:
        return None
    if task.cancel_reason:
        return task._next(now_ns, state=TaskState.CANCELLED, reason=f"{task.cancel_reason}; robot {task.robot_id} "
                          f"{why} before it confirmed")
    return _retry(task, now_ns, rules, f"robot {task.robot_id} {why}")


def overdue(task: Task, now_ns: int, rules: TaskRules) -> Task | None:
    """Timeouts: a queued task past its deadline fails; an assigned one not accepted in time is retried; an
    accepted or running one without a report for `run_timeout` fails; one being cancelled ends `cancelled` when its
    robot has not confirmed within `accept_timeout`. None when nothing is due."""
    if task.cancelling:
        if now_ns - task.cancel_ns < rules.accept_timeout_ns:
            return None
        return task._next(now_ns, state=TaskState.CANCELLED, reason=f"{task.cancel_reason}; robot {task.robot_id} "
                          f"did not confirm within {rules.accept_timeout_ns / 1e9:g} s")
    if task.state is TaskState.QUEUED:
        deadline = task.request.deadline_ns
        if deadline and now_ns >= deadline:
            return task._next(now_ns, state=TaskState.FAILED, reason="deadline passed while queued")
        return None
    quiet = now_ns - task.updated_ns
    if task.state is TaskState.ASSIGNED and quiet >= rules.accept_timeout_ns:
        return _retry(task, now_ns, rules, f"robot {task.robot_id} did not accept within "
                      f"{rules.accept_timeout_ns / 1e9:g} s")
    if task.state in (TaskState.ACCEPTED, TaskState.RUNNING) and quiet >= rules.run_timeout_ns:
        return task._next(now_ns, state=TaskState.FAILED,
                          reason=f"no report from robot {task.robot_id} for {rules.run_timeout_ns / 1e9:g} s")
    return None


def due_ns(task: Task, rules: TaskRules) -> int | None:
    """When `overdue` first has something to say about this version of `task` (None: never), so a coordinator
    looks at a task when it falls due instead of at every task on every check."""
    if task.cancelling:
        return task.cancel_ns + rules.accept_timeout_ns
    if task.state is TaskState.QUEUED:
        return task.request.deadline_ns or None
    if task.state is TaskState.ASSIGNED:
        return task.updated_ns + rules.accept_timeout_ns
    if task.state in (TaskState.ACCEPTED, TaskState.RUNNING):
        return task.updated_ns + rules.run_timeout_ns
    return None


def _retry(task: Task, now_ns: int, rules: TaskRules, why: str) -> Task:
    excluded = tuple(sorted({*task.excluded, task.robot_id}))
    if task.attempts >= rules.max_attempts:
        return task._next(now_ns, state=TaskState.FAILED, reason=f"{why}; gave up after {task.attempts} attempts",
                          excluded=excluded)
    return task._next(now_ns, state=TaskState.QUEUED, robot_id="", command_id="", reason=why, excluded=excluded,
                      progress=0.0)
