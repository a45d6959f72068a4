"""Plain-text tables of robots and tasks, for `swarm-bridge fleet status`."""

from __future__ import annotations

from collections.abc import Sequence

from swarm_bridge.coordinator.core.assignment import queue_order
from swarm_bridge.coordinator.core.events import TaskBook
from swarm_bridge.coordinator.core.fleet import FleetView
from swarm_bridge.coordinator.core.tasks import TERMINAL

__all__ = ["fleet_tables", "table"]


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell, a rule under the header."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(line.rstrip() for line in lines)


def fleet_tables(fleet: FleetView, book: TaskBook, *, now_ns: int, stale_after_ns: int, max_tasks: int) -> str:
    """Robots (one row each), tasks per state, and the most urgent unfinished tasks."""
    robots = [(r.robot_id, r.kind, "online" if r.reachable(now_ns, stale_after_ns) else "OFFLINE",
               r.mode.name.lower() + (", paused" if r.paused else ""),
               "?" if r.battery_percent != r.battery_percent else f"{r.battery_percent:.0f}%",
               f"({r.x:.1f}, {r.y:.1f})", str(book.loads.get(r.robot_id, 0)), r.current_task_id or "-",
               ",".join(sorted(r.capabilities))) for r in fleet]
    counts = book.counts()
    open_tasks = sorted((t for t in book if t.state not in TERMINAL), key=queue_order)[:max_tasks]
    tasks = [(t.task_id, t.request.kind, t.state.value, t.robot_id or "-", str(t.request.priority),
              str(t.attempts), f"cancelling: {t.cancel_reason}" if t.cancelling else t.reason or "-")
             for t in open_tasks]
    online = sum(r[2] == "online" for r in robots)
    return "\n".join([
        f"robots: {len(robots)} ({online} online)",
        table(("robot", "kind", "presence", "mode", "battery", "position", "tasks", "current", "capabilities"),
              robots),
        "",
        "tasks: " + ", ".join(f"{state} {n}" for state, n in counts.items()),
        table(("task", "kind", "state", "robot", "priority", "attempts", "reason"), tasks),
    ])
