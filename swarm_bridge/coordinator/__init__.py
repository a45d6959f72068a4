"""Fleet coordinator: fleet view, task lifecycle, assignment, event-sourced task state, sharded dispatch.

The core (fleet, tasks, assignment, events, dispatch) is pure; `instance` is the Kafka adapter and
`service` the process.
"""

from swarm_bridge.coordinator.assignment import POLICIES, AssignmentPolicy, CostPolicy, plan
from swarm_bridge.coordinator.dispatch import Command, Dispatch, EventRecord
from swarm_bridge.coordinator.events import TaskBook, TaskEvent, decode_event, encode_event, home_shard
from swarm_bridge.coordinator.fleet import FleetView, RobotMode, RobotView
from swarm_bridge.coordinator.tasks import InvalidTask, Task, TaskRequest, TaskRules, TaskState, parse_request

__all__ = [
    "POLICIES",
    "AssignmentPolicy",
    "Command",
    "CostPolicy",
    "Dispatch",
    "EventRecord",
    "FleetView",
    "InvalidTask",
    "RobotMode",
    "RobotView",
    "Task",
    "TaskBook",
    "TaskEvent",
    "TaskRequest",
    "TaskRules",
    "TaskState",
    "decode_event",
    "encode_event",
    "home_shard",
    "parse_request",
    "plan",
]
