"""GateSettingError: a command gate setting out of range; names the setting, its config key and the allowed range."""

from __future__ import annotations

from swarm_bridge.errors import SwarmBridgeError

__all__ = ["GateSettingError"]


class GateSettingError(SwarmBridgeError, ValueError):
    """`setting` (e.g. `commands.max_age_s`) got `value`, which is not `allowed` (e.g. "> 0")."""

    def __init__(self, setting: str, value: object, allowed: str) -> None:
        self.setting, self.value, self.allowed = setting, value, allowed
        super().__init__(f"{setting} must be {allowed} (got {value}). Fix: set {setting} {allowed}")
