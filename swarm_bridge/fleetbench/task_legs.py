"""Where the slowest task round trips spent their time: each task's round trip cut into legs by its own clock
readings (one host, one clock), the slowest 1% against all, so a stall shows in the leg that holds it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from statistics import median
from typing import Any

__all__ = ["LEGS", "TaskTimes", "slowest_legs"]

# (leg, from, to): the task's readings in the order they happen
LEGS = (
    ("submitted -> command stamped", "submitted_ns", "stamped_ns"),  # submit consumed, the coordinator's round
    ("command stamped -> robot received", "stamped_ns", "received_ns"),  # commit, gateway down, Mosquitto
    ("robot received -> done read by coordinator", "received_ns", "done_ns"),  # status up, consumed, round
    ("done read -> done seen by the bench", "done_ns", "seen_ns"),  # the event's commit and the probe's fetch
)


@dataclass(frozen=True)
class TaskTimes:
    """One done task's clock readings (ns since the epoch)."""

    submitted_ns: int
    done_ns: int
    seen_ns: int
    stamped_ns: int | None = None  # the assign command's stamp (its round's commit began); None: not received
    received_ns: int | None = None  # when the robot got it

    @property
    def round_trip_ms(self) -> float:
        return (self.done_ns - self.submitted_ns) / 1e6


def _legs_ms(task: TaskTimes) -> dict[str, float] | None:
    readings = {"submitted_ns": task.submitted_ns, "stamped_ns": task.stamped_ns, "received_ns": task.received_ns,
                "done_ns": task.done_ns, "seen_ns": task.seen_ns}
    if None in readings.values():
        return None
    return {leg: (readings[end] - readings[start]) / 1e6 for leg, start, end in LEGS}  # type: ignore[operator]


def slowest_legs(tasks: Mapping[str, TaskTimes], share: float = 0.01, listed: int = 5) -> dict[str, Any]:
    """Median ms per leg over all tasks and over the slowest `share` by round trip, and the `listed` slowest in
    full; tasks whose command the robots did not report are counted, not cut."""
    cut = {task_id: legs for task_id, task in tasks.items() if (legs := _legs_ms(task)) is not None}
    order = sorted(cut, key=lambda task_id: tasks[task_id].round_trip_ms)
    slow = order[-max(1, int(len(order) * share)):] if order else []

    def medians(ids: list[str]) -> dict[str, float]:
        return {leg: round(median(cut[i][leg] for i in ids), 1) for leg, _s, _e in LEGS} if ids else {}

    return {"tasks": len(tasks), "cut": len(cut), "all_median_ms": medians(order),
            "slowest_median_ms": medians(slow), "slowest_count": len(slow),
            "slowest": [{"task_id": i, "round_trip_ms": round(tasks[i].round_trip_ms, 1),
                         "submitted_s": round(tasks[i].submitted_ns / 1e9, 3),
                         **{leg: round(ms, 1) for leg, ms in cut[i].items()}} for i in reversed(slow[-listed:])]}
