"""What a robot bridge does with tasks it carries out through actions, as plain logic: one goal at a time, the
rest queued in arrival order; each event (command, goal accepted or rejected, feedback, result, stop) gives the
effects to carry out (send or cancel a goal) and the TaskStatus reports to publish. ros/action_tasks.py drives
it with rclpy; tests drive it with plain values.

Reports: ACCEPTED once, when the task is queued behind another or its goal is accepted, whichever comes first;
RUNNING (progress) on the goal's acceptance when already reported accepted, and on feedback (rate-capped);
DONE, FAILED, CANCELLED from the result; REJECTED when the goal cannot be built or the server refuses it."""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from swarm_bridge.actions.errors import GoalError
from swarm_bridge.actions.mapping import GoalMapping, TaskInput
from swarm_bridge.actions.outcome import ACCEPTED, CANCELLED, DONE, FAILED, REJECTED, RUNNING
from swarm_bridge.actions.progress import ProgressReader, RateCap

__all__ = ["ActionWork", "CancelGoal", "Effect", "Report", "SendGoal"]

STOPPED = "bridge stopped"


@dataclass(frozen=True)
class Report:
    """One TaskStatus to publish: task, state (TaskStatus.STATE_*), reason, progress 0..1."""

    task_id: str
    state: int
    reason: str = ""
    progress: float = 0.0


@dataclass(frozen=True)
class SendGoal:
    """Send `goal` (a message dict) to the action of task kind `kind`."""

    task_id: str
    kind: str
    goal: dict[str, Any]


@dataclass(frozen=True)
class CancelGoal:
    """Ask the action server to cancel the task's goal."""

    task_id: str


Effect = Report | SendGoal | CancelGoal


@dataclass
class _Held:
    task: TaskInput
    goal: dict[str, Any]
    reader: ProgressReader | None
    cap: RateCap
    phase: Literal["queued", "sending", "active"] = "queued"
    told_accepted: bool = False
    cancel: Literal["", "coordinator", "stop"] = ""
    progress: float = 0.0


@dataclass
class ActionWork:
    """One robot's tasks through actions: `mappings` per task kind; `progress` (rule, feedback field) per kind
    that reports progress; kinds without a mapping rejected (`unmapped` "reject") or left to another executor."""

    mappings: Mapping[str, GoalMapping]
    progress: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    unmapped: Literal["reject", "ignore"] = "reject"
    max_hz: float = 2.0
    current: _Held | None = None
    queued: deque[_Held] = field(default_factory=deque)
    stopping: bool = False

    def assign(self, task: TaskInput) -> list[Effect]:
        """A task given to this robot: rejected (unknown kind, goal not buildable), queued, or its goal sent."""
        if self._find(task.task_id) is not None:
            return []  # a repeated assignment of a task it already has
        mapping = self.mappings.get(task.kind)
        if mapping is None:
            if self.unmapped == "ignore":
                return []
            return [Report(task.task_id, REJECTED, f"no action for task kind {task.kind!r} in this robot's bridge "
                           f"config (tasks.actions has: {', '.join(sorted(self.mappings))})")]
        if self.stopping:
            return [Report(task.task_id, REJECTED, f"{STOPPED}: the robot bridge is stopping")]
        try:
            goal = mapping.goal(task)
        except GoalError as exc:
            return [Report(task.task_id, REJECTED, str(exc))]
        rule = self.progress.get(task.kind)
        held = _Held(task, goal, ProgressReader(*rule) if rule else None, RateCap(self.max_hz))
        if self.current is not None:
            self.queued.append(held)
            held.told_accepted = True
            return [Report(task.task_id, ACCEPTED, f"queued behind task {self.current.task.task_id}")]
        return self._start(held)

    def cancel(self, task_id: str) -> list[Effect]:
        """The coordinator cancels a task: a queued one ends at once; a running goal is cancelled on its server
        (the result then reports it); the goal of one still being sent is cancelled once accepted."""
        held = self._find(task_id)
        if held is None:
            return []
        if held.phase == "queued":
            self.queued.remove(held)
            return [Report(task_id, CANCELLED, "cancelled by the coordinator before its goal was sent")]
        held.cancel = held.cancel or "coordinator"
        return [CancelGoal(task_id)] if held.phase == "active" else []

    def accepted(self, task_id: str) -> list[Effect]:
        """The action server accepted the task's goal."""
        held = self._running(task_id)
        if held is None:
            return []
        held.phase = "active"
        out: list[Effect] = [Report(task_id, RUNNING if held.told_accepted else ACCEPTED, progress=0.0)]
        held.told_accepted = True
        if held.cancel:
            out.append(CancelGoal(task_id))
        return out

    def rejected(self, task_id: str, reason: str) -> list[Effect]:
        """The goal was refused (by the server, or no server answered): the task is rejected, the next starts."""
        held = self._running(task_id)
        if held is None:
            return []
        self.current = None
        return [Report(task_id, REJECTED, reason), *self._next()]

    def feedback(self, task_id: str, feedback: Mapping[str, Any], now_s: float) -> list[Effect]:
        """A feedback message (a dict): RUNNING with its progress, at most `max_hz` a second."""
        held = self._running(task_id)
        if held is None or held.phase != "active":
            return []
        if held.reader is not None:
            held.progress = held.reader.read(feedback)
        if not held.cap.due(now_s):
            return []
        return [Report(task_id, RUNNING, progress=held.progress)]

    def finished(self, task_id: str, state: int, reason: str) -> list[Effect]:
        """The goal ended (state and reason from outcome.outcome): the task's last report; the next starts."""
        held = self._running(task_id)
        if held is None:
            return []
        self.current = None
        if held.cancel == "stop" and state == CANCELLED:
            report = Report(task_id, FAILED, f"{STOPPED} while the goal was running; it was cancelled on the "
                            "action server", held.progress)
        elif held.cancel == "coordinator" and state == CANCELLED:
            report = Report(task_id, CANCELLED, f"cancelled by the coordinator ({reason})", held.progress)
        else:
            report = Report(task_id, state, reason, 1.0 if state == DONE else held.progress)
        return [report, *self._next()]

    def stop(self) -> list[Effect]:
        """The bridge stops: queued tasks are rejected (the coordinator gives them to another robot) and the
        running goal is cancelled; `stopped` reports what did not end by the time the bridge goes."""
        self.stopping = True
        out: list[Effect] = [Report(h.task.task_id, REJECTED, f"{STOPPED} before the task started")
                             for h in self.queued]
        self.queued.clear()
        if self.current is not None:
            self.current.cancel = "stop"
            if self.current.phase == "active":
                out.append(CancelGoal(self.current.task.task_id))
        return out

    def stopped(self, waited_s: float) -> list[Effect]:
        """The last word on a goal still running as the bridge goes: failed, its cancel not confirmed."""
        if self.current is None:
            return []
        held, self.current = self.current, None
        return [Report(held.task.task_id, FAILED, f"{STOPPED} while the goal was running; the action server did "
                       f"not confirm its cancel within {waited_s:g} s", held.progress)]

    @property
    def held(self) -> list[TaskInput]:
        """Every task this robot holds: the running one first, then the queued."""
        return [h.task for h in ([self.current] if self.current else []) + list(self.queued)]

    def _start(self, held: _Held) -> list[Effect]:
        held.phase = "sending"
        self.current = held
        return [SendGoal(held.task.task_id, held.task.kind, held.goal)]

    def _next(self) -> list[Effect]:
        if self.current is None and self.queued and not self.stopping:
            return self._start(self.queued.popleft())
        return []

    def _running(self, task_id: str) -> _Held | None:
        return self.current if self.current is not None and self.current.task.task_id == task_id else None

    def _find(self, task_id: str) -> _Held | None:
        return self._running(task_id) or next((h for h in self.queued if h.task.task_id == task_id), None)
