"""What a robot does with the task commands it gets, as plain logic: accept or reject, run for a while, finish.

The reference task executor (ros/task_executor.py) drives it with ROS messages and a clock; tests drive it with
plain values. A robot works on one task at a time and queues the rest in arrival order.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

__all__ = ["ACTION_ASSIGN", "ACTION_CANCEL", "Report", "TaskWork"]

# TaskCommand.ACTION_* and TaskStatus.STATE_* (msg/), repeated so this module needs no ROS.
ACTION_ASSIGN, ACTION_CANCEL = 0, 1
ACCEPTED, RUNNING, DONE, CANCELLED, REJECTED = 2, 3, 4, 6, 7


@dataclass(frozen=True)
class Report:
    """One TaskStatus to publish: task, state (TaskStatus.STATE_*), reason, progress 0..1."""

    task_id: str
    state: int
    reason: str = ""
    progress: float = 0.0


@dataclass
class TaskWork:
    """One robot's tasks: the one running (with its start time) and those queued behind it."""

    capabilities: frozenset[str]
    work_s: float = 1.0
    running: tuple[str, float] | None = None
    queued: deque[str] = field(default_factory=deque)

    def command(self, *, task_id: str, action: int, kind: str, now_s: float) -> list[Report]:
        """The reports one command causes: accepted (and running when the robot is free), rejected, cancelled."""
        if action == ACTION_CANCEL:
            return self._cancel(task_id)
        if action != ACTION_ASSIGN:
            return []  # pause/resume: the reference robot has nothing to pause
        if kind not in self.capabilities:
            return [Report(task_id, REJECTED, f"no capability {kind!r} (has {', '.join(sorted(self.capabilities))})")]
        if task_id in self.queued or (self.running and self.running[0] == task_id):
            return []  # a repeated assignment of a task it already has
        self.queued.append(task_id)
        return [Report(task_id, ACCEPTED), *self.advance(now_s)]

    def advance(self, now_s: float) -> list[Report]:
        """Finish the running task when its time is up and start the next; progress of the running one."""
        reports: list[Report] = []
        if self.running is not None:
            task_id, started = self.running
            if now_s - started >= self.work_s:
                reports.append(Report(task_id, DONE, progress=1.0))
                self.running = None
        if self.running is None and self.queued:
            task_id = self.queued.popleft()
            self.running = (task_id, now_s)
            reports.append(Report(task_id, RUNNING, progress=0.0))
        return reports

    @property
    def current(self) -> str:
        """The running task's id, empty when idle (RobotState.current_task_id)."""
        return self.running[0] if self.running else ""

    def _cancel(self, task_id: str) -> list[Report]:
        if self.running and self.running[0] == task_id:
            self.running = None
        elif task_id in self.queued:
            self.queued.remove(task_id)
        else:
            return []
        return [Report(task_id, CANCELLED, "cancelled by the coordinator")]
