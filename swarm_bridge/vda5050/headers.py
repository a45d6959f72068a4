"""The protocol header (section 6.4): a headerId counted per topic (uint32, wrapping), an ISO 8601 UTC timestamp,
the protocol version and the vehicle's names."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

from swarm_bridge.vda5050.models import UINT32, VERSION
from swarm_bridge.vda5050.topics import VehicleId

__all__ = ["RUN_SHIFT", "HeaderCounter", "HeaderRuns", "timestamp"]

RUN_SHIFT = 32  # a sequence number of HeaderRuns: run << RUN_SHIFT | headerId


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


class HeaderRuns:
    """Sequence numbers from headerIds that survive a sender's counter reset (a vehicle restarted, or its uint32
    wrapped): per (sender, topic), a headerId lower than the last one with a timestamp not older, or the last one
    again with a later timestamp, starts a new run, so `seq = run << 32 | headerId` only grows; a resent message
    (same headerId, same timestamp) keeps its seq.
    A restart within the timestamps' resolution counts as one too: when in doubt a message passes (at least
    once), it is not lost.
    Bounded: at most `max_streams` (sender, topic) pairs, the one seen first forgotten beyond it."""

    def __init__(self, max_streams: int = 100_000) -> None:
        self.max_streams = max_streams
        self._last: dict[tuple[str, str], tuple[int, int, str]] = {}  # -> (run, headerId, timestamp)

    def seq(self, sender: str, topic: str, header_id: int, stamp: str) -> int:
        """The sequence number of a message; `stamp` its header timestamp (ISO 8601, compared as time)."""
        key = (sender, topic)
        last = self._last.get(key)
        if last is None:
            if len(self._last) >= self.max_streams:
                del self._last[next(iter(self._last))]
            run = 0
        else:
            run, last_id, last_stamp = last
            lower = header_id < last_id and not _later(last_stamp, stamp)
            same_later = header_id == last_id and _later(stamp, last_stamp)  # e.g. a factsheet's 0 after 0
            if lower or same_later:
                run += 1
            elif header_id <= last_id:
                return run << RUN_SHIFT | header_id  # an older message of this run, late or again: not the newest
        self._last[key] = (run, header_id, stamp)
        return run << RUN_SHIFT | header_id


def _later(stamp: str, than: str) -> bool:
    """Whether ISO 8601 `stamp` is after `than` (as text when either does not parse)."""
    try:
        return datetime.fromisoformat(stamp) > datetime.fromisoformat(than)
    except (ValueError, TypeError):  # not ISO 8601, or one with a zone and one without
        return stamp > than
