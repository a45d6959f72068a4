"""Coordinator errors: a setting it cannot run with (CoordinatorSettingError), a robot's record it cannot read
(RecordBodyError), a task moved against its lifecycle (TaskStateError). All are SwarmBridgeErrors."""

from __future__ import annotations

from swarm_bridge.errors import SwarmBridgeError

__all__ = ["CoordinatorError", "CoordinatorSettingError", "RecordBodyError", "TaskStateError"]


class CoordinatorError(SwarmBridgeError):
    """Something the fleet coordinator cannot do: what and how to fix it."""


class CoordinatorSettingError(CoordinatorError, ValueError):
    """A coordinator setting (config section, option) it cannot run with; names the setting and the fix."""


class RecordBodyError(CoordinatorError, ValueError):
    """A robot's record that decodes but is not one the coordinator reads (unknown format, state out of range);
    the runner counts it as malformed and goes on."""


class TaskStateError(CoordinatorError, ValueError):
    """A task moved against its lifecycle (e.g. assigned when not queued): a bug in the caller, named with the task."""
