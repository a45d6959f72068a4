"""Tasks carried out through ROS 2 actions, as plain logic: goals built from tasks by a declared mapping,
feedback as progress, results as task ends, the task queue and the on-disk ledger of held tasks (no ROS here;
ros/action_tasks.py drives it)."""

from swarm_bridge.actions.errors import GoalError, MappingError
from swarm_bridge.actions.ledger import GoalLedger, HeldTask, left_report
from swarm_bridge.actions.mapping import GoalMapping, TaskInput, task_input
from swarm_bridge.actions.outcome import outcome
from swarm_bridge.actions.progress import PROGRESS_RULES, ProgressReader, RateCap
from swarm_bridge.actions.work import ActionWork, CancelGoal, Effect, Report, SendGoal

__all__ = ["PROGRESS_RULES", "ActionWork", "CancelGoal", "Effect", "GoalError", "GoalLedger", "GoalMapping",
           "HeldTask", "MappingError", "ProgressReader", "RateCap", "Report", "SendGoal", "TaskInput", "left_report",
           "outcome", "task_input"]
