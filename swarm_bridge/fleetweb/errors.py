"""Fleet page errors: a setting the page cannot serve with (FleetWebSettingError), a source it cannot read
(FleetWebError)."""

from __future__ import annotations

from swarm_bridge.errors import SwarmBridgeError

__all__ = ["FleetWebError", "FleetWebSettingError"]


class FleetWebError(SwarmBridgeError, ConnectionError):
    """The page's source (the MQTT broker or Kafka) cannot be read: which one, and what to check."""


class FleetWebSettingError(SwarmBridgeError, ValueError):
    """A fleet page option that cannot work (address, token, TLS files); names the option and the fix."""
