"""SwarmBridgeError: the base of every error the project raises for a user to read.

Each package's errors subclass it and the builtin they stand for (e.g. `ConfigError(SwarmBridgeError, ValueError)`),
so `except SwarmBridgeError` catches any of them and older `except ValueError` callers keep working.
"""

from __future__ import annotations

__all__ = ["SwarmBridgeError"]


class SwarmBridgeError(Exception):
    """Something a user (operator, robot engineer) must fix; the message names what (file, key, topic, field) and
    how."""
