"""A simulated robot that takes tasks, shared by the Kafka and the site (MQTT) fleets: where it is, what it
says it can do and what it really does, and the commands it got."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from swarm_bridge.ros.task_work import TaskWork

__all__ = ["Received", "TaskRobot"]


@dataclass
class TaskRobot:
    """One simulated robot: what it tells the coordinator it can do (`capabilities`) and what it really does
    (`able`, default the same; the site fleet rejects a task outside it; `refuse`: the Kafka fleet rejects all)."""

    robot_id: str
    kind: str
    capabilities: list[str]
    x: float = 0.0
    y: float = 0.0
    battery: float = 90.0
    able: list[str] | None = None
    refuse: bool = False
    online: bool = False  # set by its fleet once connected
    seq: int = 0
    signed: int = 0  # commands that came signed
    work: TaskWork = field(init=False)  # the site fleet's task logic (the reference robot's)
    queue: deque[tuple[str, float]] = field(default_factory=deque)  # the Kafka fleet's: (task_id, done at)

    def __post_init__(self) -> None:
        self.work = TaskWork(frozenset(self.able if self.able is not None else self.capabilities))


@dataclass(frozen=True)
class Received:
    """A command as a robot got it (`addressed_to`: the record's key, on Kafka)."""

    robot_id: str
    task_id: str
    command_id: str
    action: int
    addressed_to: str = ""
