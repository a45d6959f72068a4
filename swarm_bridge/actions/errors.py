"""Errors of task execution through actions a user can meet: a goal that cannot be built from a task."""

from __future__ import annotations

from swarm_bridge.errors import SwarmBridgeError

__all__ = ["GoalError", "MappingError", "ValueMismatch"]


class GoalError(SwarmBridgeError, ValueError):
    """A task whose goal cannot be built (a parameter missing or of the wrong form); the task is rejected with
    this as its reason, which names the parameter, the goal field and the fix."""

    def __init__(self, kind: str, path: str, problem: str) -> None:
        self.kind, self.path, self.problem = kind, path, problem
        super().__init__(f"task kind {kind}: goal field {path}: {problem}")


class MappingError(SwarmBridgeError, ValueError):
    """A goal mapping that does not fit the action's goal type: which config key, what is wrong, the fix."""

    def __init__(self, key: str, problem: str, *, also: list[MappingError] | None = None) -> None:
        self.key, self.problem = key, problem
        self.also = list(also or [])  # further problems of the same mapping, each with its own key
        super().__init__("; ".join(f"{e.key}: {e.problem}" for e in [self, *self.also]) if self.also
                         else f"{key}: {problem}")

    @property
    def each(self) -> list[tuple[str, str]]:
        """(key, problem) of this and every further problem."""
        return [(self.key, self.problem), *((e.key, e.problem) for e in self.also)]


class ValueMismatch(SwarmBridgeError, ValueError):
    """A value that does not convert to its goal field's type; says what it is instead (GoalMapping wraps it into
    a GoalError or MappingError naming the field)."""
