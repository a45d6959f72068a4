"""The tasks a robot bridge holds for its action servers, kept on disk, so that a bridge that died with a goal
running reports that task at its next start instead of forgetting it."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

__all__ = ["GoalLedger", "HeldTask"]


@dataclass(frozen=True)
class HeldTask:
    """A task the bridge took: its kind, the action, and the goal id once a goal was sent (hex; empty before)."""

    task_id: str
    kind: str
    action: str
    goal_id: str = ""


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
