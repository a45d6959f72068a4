"""The tasks a robot bridge holds for its action servers, kept on disk, so that a bridge that died with a goal
running reports that task at its next start instead of forgetting it."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from swarm_bridge.actions.outcome import FAILED, REJECTED
from swarm_bridge.actions.work import Report

__all__ = ["GoalLedger", "HeldTask", "left_report"]


@dataclass(frozen=True)
class HeldTask:
    """A task the bridge took: its kind, the action, the goal id once a goal was sent (hex; empty before) and the
    command that assigned it (a ledger written before it was kept has none)."""

    task_id: str
    kind: str
    action: str
    goal_id: str = ""
    command_id: str = ""


def left_report(task: HeldTask) -> Report:
    """What a restarted bridge reports of a task its dead run held: rejected when no goal was sent (the robot never
    started it: the coordinator gives it out again), failed when one was (the robot may have moved; its end is
    unknown)."""
    if not task.goal_id:
        return Report(task.task_id, REJECTED, "bridge restarted: the last run stopped before this task's goal was "
                      "sent; the robot never started it")
    return Report(task.task_id, FAILED, "bridge restarted: the last run stopped without reporting this task's end "
                  "(its goal was cancelled where the action server still had it)")


class GoalLedger:
    """A small JSON file of the held tasks, rewritten whole (write, fsync, rename) on every change."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._held: dict[str, HeldTask] = {}

    def load(self) -> list[HeldTask]:
        """What the last run left: tasks it never reported the end of (an unreadable file: none)."""
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
            left = [HeldTask(**item) for item in raw["held"]]
        except (OSError, ValueError, KeyError, TypeError):
            left = []
        return left

    def sync(self, held: list[HeldTask]) -> None:
        """Record `held` as what the bridge holds now; the file is written only when that changed."""
        now = {task.task_id: task for task in held}
        if now != self._held or not self.path.exists():
            self._held = now
            self._write()

    def _write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(self.path.name + ".partial")
        with partial.open("w", encoding="utf-8") as out:
            json.dump({"held": [asdict(t) for t in self._held.values()]}, out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, self.path)
