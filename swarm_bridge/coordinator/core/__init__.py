"""The coordinator's pure core: no sockets, threads or client libraries, the same in both modes.

`tasks` (request, lifecycle), `fleet` (robots as seen), `assignment` (policies), `events` (the task event log),
`dispatch` (what a round decides), `records` (the records read and written, as dicts), `drops` (counted
drops), `table` (plain-text tables), `vda` (VDA 5050 vehicles as robots), `pause` (pause/resume requests for
them), `errors`.
"""

from swarm_bridge.coordinator.core.assignment import POLICIES, AssignmentPolicy, CostPolicy, plan
from swarm_bridge.coordinator.core.dispatch import Command, Dispatch, EventRecord
from swarm_bridge.coordinator.core.errors import (
    CoordinatorError,
    CoordinatorSettingError,
    RecordBodyError,
    TaskStateError,
)
from swarm_bridge.coordinator.core.events import TaskBook, TaskEvent, decode_event, encode_event, home_shard
from swarm_bridge.coordinator.core.fleet import FleetView, RobotMode, RobotView
from swarm_bridge.coordinator.core.tasks import InvalidTask, Task, TaskRequest, TaskRules, TaskState, parse_request

__all__ = [
    "POLICIES",
    "AssignmentPolicy",
    "Command",
    "CoordinatorError",
    "CoordinatorSettingError",
    "CostPolicy",
    "Dispatch",
    "EventRecord",
    "FleetView",
    "InvalidTask",
    "RecordBodyError",
    "RobotMode",
    "RobotView",
    "Task",
    "TaskBook",
    "TaskEvent",
    "TaskRequest",
    "TaskRules",
    "TaskState",
    "TaskStateError",
    "decode_event",
    "encode_event",
    "home_shard",
    "parse_request",
    "plan",
]
