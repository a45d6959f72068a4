"""Demo errors: the demo cannot go on (DemoError), or was given a fleet it cannot make (DemoSettingError)."""

from __future__ import annotations

from swarm_bridge.errors import SwarmBridgeError

__all__ = ["DemoError", "DemoSettingError"]


class DemoError(SwarmBridgeError):
    """The demo cannot go on: what failed and where to look."""


class DemoSettingError(DemoError, ValueError):
    """A demo option (bags, robot count) that cannot make a fleet; names the option and the fix."""
