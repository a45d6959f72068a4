"""GatewaySettingError: a gateway setting the gateway cannot use; names the key, the value and the fix."""

from __future__ import annotations

from swarm_bridge.errors import SwarmBridgeError

__all__ = ["GatewaySettingError"]


class GatewaySettingError(SwarmBridgeError, ValueError):
    """`setting` (the config key, with the value given) is wrong because of `problem`; `fix` says what to give."""

    def __init__(self, setting: str, problem: str, fix: str) -> None:
        self.setting, self.problem, self.fix = setting, problem, fix
        super().__init__(f"{setting}: {problem}. Fix: {fix}")
