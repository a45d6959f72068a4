"""A goal's end as a task's end: the action's final status (action_msgs/GoalStatus) -> TaskStatus state, and a
reason that names the action, the status and the result fields the config lists."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from swarm_bridge.actions.progress import field_value

__all__ = ["ACCEPTED", "CANCELLED", "DONE", "FAILED", "GOAL_STATUS", "OUTCOMES", "REJECTED", "RUNNING", "outcome"]

# TaskStatus.STATE_* (msg/TaskStatus.msg), repeated so this package needs no ROS.
ACCEPTED, RUNNING, DONE, FAILED, CANCELLED, REJECTED = 2, 3, 4, 5, 6, 7

# action_msgs/msg/GoalStatus.STATUS_* -> its name.
GOAL_STATUS = {0: "UNKNOWN", 1: "ACCEPTED", 2: "EXECUTING", 3: "CANCELING", 4: "SUCCEEDED", 5: "CANCELED",
               6: "ABORTED"}

# A final goal status -> the task's state; any other status (UNKNOWN: the server lost the goal) is a failure.
OUTCOMES: dict[int, int] = {4: DONE, 5: CANCELLED, 6: FAILED}


def outcome(status: int, result: Mapping[str, Any], *, action: str, reason_fields: Sequence[str]) -> tuple[int, str]:
    """(TaskStatus state, reason) of a goal that ended with `status` and `result` (a message dict); the reason is
    empty for a success."""
    state = OUTCOMES.get(status, FAILED)
    if state == DONE:
        return state, ""
    named = []
    for name in reason_fields:
        try:
            named.append(f"{name} {field_value(result, name)!r}")
        except (KeyError, TypeError):
            continue
    detail = f": {', '.join(named)}" if named else ""
    return state, f"action {action} ended {GOAL_STATUS.get(status, 'status ' + str(status))}{detail}"
