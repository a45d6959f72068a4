"""Fleet coordinator: fleet view, task lifecycle, assignment, event-sourced task state, sharded dispatch.

`core/` is pure (the same in both modes); `kafka/` runs it on Kafka (sharded instances, transactions),
`site/` on one site's MQTT broker (one instance, state in memory); `wiring` (config -> core, command signer)
and `metrics` are what both runners share. The runners never import each other.
"""

from swarm_bridge.coordinator.core import (
    POLICIES,
    AssignmentPolicy,
    Command,
    CoordinatorError,
    CostPolicy,
    Dispatch,
    EventRecord,
    FleetView,
    InvalidTask,
    RobotMode,
    RobotView,
    Task,
    TaskBook,
    TaskEvent,
    TaskRequest,
    TaskRules,
    TaskState,
    decode_event,
    encode_event,
    home_shard,
    parse_request,
    plan,
)

__all__ = [
    "POLICIES",
    "AssignmentPolicy",
    "Command",
    "CoordinatorError",
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
