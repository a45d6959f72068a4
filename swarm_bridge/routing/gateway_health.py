"""A gateway's health record, the one place it is written and read: JSON on Kafka (topic `fleet.health.gateway`
by default, key gateway_id), sent by every gateway every `health.interval_s` and once more at an orderly stop
(state `stopped`); the fleet page shows each gateway from its last one."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from swarm_bridge.routing.errors import HealthError

__all__ = ["HEALTH_STATES", "HEALTH_VERSION", "STALE_INTERVALS", "GatewayHealth", "parse_gateway_health"]

HEALTH_VERSION = 1
"""Version of the record's layout (field `version`); a reader refuses a version it does not know."""
HEALTH_STATES = ("up", "stopped")
"""What a gateway says of itself: up (running), stopped (an orderly stop, its last record)."""
STALE_INTERVALS = 3
"""A gateway that sent no record for this many of its intervals is stale (killed, hung, or cut off from Kafka)."""


@dataclass(frozen=True)
class GatewayHealth:
    """One health record: who, when, the links, what went up and down (totals since start and per second over the
    last interval), duplicates dropped, drops by reason, and the backlog (records in flight and held, commands
    not yet acknowledged)."""

    gateway_id: str
    fleet: str
    state: str
    at_ns: int  # when it was made (the gateway's wall clock)
    started_ns: int
    interval_s: float  # the next record is due this long after this one
    mqtt_connected: bool
    kafka_connected: bool
    messages: int  # MQTT messages received
    records_up: int  # records confirmed by Kafka
    records_up_per_s: float
    commands_down: int  # commands published to MQTT and acknowledged by the broker
    commands_down_per_s: float
    duplicates: int
    below_window: int  # of the duplicates: older than the dedup window
    drops: Mapping[str, int] = field(default_factory=dict)  # by reason ("dead letter: <reason>", ...)
    inflight: int = 0
    held: int = 0
    backpressure: bool = False
    commands_pending: int = 0
    version: int = HEALTH_VERSION

    def payload(self) -> bytes:
        """The record's JSON (keys sorted, compact)."""
        return json.dumps({**asdict(self), "drops": dict(self.drops)}, sort_keys=True,
                          separators=(",", ":")).encode()


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _rate(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value >= 0


def _drops(value: Any) -> bool:
    return isinstance(value, dict) and all(isinstance(k, str) and _count(v) for k, v in value.items())


_CHECKS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "gateway_id": (lambda v: isinstance(v, str) and bool(v), "a gateway id"),
    "fleet": (lambda v: isinstance(v, str), "a fleet name"),
    "state": (lambda v: v in HEALTH_STATES, " or ".join(HEALTH_STATES)),
    "at_ns": (_count, "ns since the epoch"), "started_ns": (_count, "ns since the epoch"),
    "interval_s": (lambda v: _rate(v) and v > 0, "seconds > 0"),
    "mqtt_connected": (lambda v: isinstance(v, bool), "true or false"),
    "kafka_connected": (lambda v: isinstance(v, bool), "true or false"),
    "backpressure": (lambda v: isinstance(v, bool), "true or false"),
    "records_up_per_s": (_rate, "a rate >= 0"), "commands_down_per_s": (_rate, "a rate >= 0"),
    "drops": (_drops, "reason -> count"),
    **{name: (_count, "a count >= 0") for name in ("messages", "records_up", "commands_down", "duplicates",
                                                    "below_window", "inflight", "held", "commands_pending")},
}
"""Field -> (its check, what it must be): a record is read field by field, each problem named."""


def parse_gateway_health(payload: bytes) -> GatewayHealth:
    """A health record's JSON -> GatewayHealth; HealthError (a ValueError) naming the field and what it must be.
    Fields a newer writer adds are ignored; a newer `version` is refused."""
    try:
        doc = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise HealthError(f"gateway health: not UTF-8 JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise HealthError(f"gateway health: expected a JSON object, got {type(doc).__name__}")
    if doc.get("version") != HEALTH_VERSION:
        raise HealthError(f"gateway health: version {doc.get('version')!r}, this reader knows {HEALTH_VERSION}")
    problems = [f"{name} must be {what} (got {doc.get(name)!r})" for name, (check, what) in _CHECKS.items()
                if not check(doc.get(name))]
    if problems:
        raise HealthError(f"gateway health of {doc.get('gateway_id')!r}: " + "; ".join(problems))
    return GatewayHealth(**{name: doc[name] for name in (*_CHECKS, "version")})
