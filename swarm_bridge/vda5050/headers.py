"""The protocol header (section 6.4): a headerId counted per topic (uint32, wrapping), an ISO 8601 UTC timestamp,
the protocol version and the vehicle's names."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

from swarm_bridge.vda5050.models import UINT32, VERSION
from swarm_bridge.vda5050.topics import VehicleId

__all__ = ["HeaderCounter", "timestamp"]


def timestamp(now_ns: int) -> str:
    """`YYYY-MM-DDTHH:mm:ss.ffZ` (UTC, milliseconds) of ns since the epoch."""
    moment = datetime.fromtimestamp(now_ns / 1e9, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class HeaderCounter:
    """headerIds of one sender, counted per (vehicle, topic): the spec counts per topic, and a master control's
    topic is one vehicle's (`.../SN/order`), so each vehicle's order topic has its own count starting at 0."""

    def __init__(self, version: str = VERSION) -> None:
        self.version = version
        self._next: Counter[tuple[VehicleId, str]] = Counter()

    def header(self, vehicle: VehicleId, topic: str, now_ns: int) -> dict[str, Any]:
        """The header fields of the next message on `topic` to or from `vehicle` (snake case, for the models)."""
        key = (vehicle, topic)
        header_id = self._next[key]
        self._next[key] = (header_id + 1) % (UINT32 + 1)
        return {"header_id": header_id, "timestamp": timestamp(now_ns), "version": self.version,
                "manufacturer": vehicle.manufacturer, "serial_number": vehicle.serial_number}
