"""The gateways as the page shows them, pure: each gateway's last health record (`routing/gateway_health.py`)
and its verdict, up, stale (no record for `STALE_INTERVALS` of its own intervals) or stopped, bounded in number."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from swarm_bridge.routing.gateway_health import STALE_INTERVALS, GatewayHealth

__all__ = ["GatewayBoard", "verdict"]


def verdict(health: GatewayHealth, heard_ns: int, now_ns: int) -> str:
    """up, stale or stopped: a stopped record is final; any other is stale once `STALE_INTERVALS` intervals
    passed since it was sent (`heard_ns`)."""
    if health.state == "stopped":
        return "stopped"
    return "stale" if now_ns - heard_ns > STALE_INTERVALS * health.interval_s * 1e9 else "up"


class GatewayBoard:
    """Each gateway's newest record (an older one read late changes nothing), at most `limit` gateways; `note`
    says what the page shows when there are none (e.g. a single site has no gateway)."""

    def __init__(self, *, limit: int, note: str = "") -> None:
        self.limit, self.note = limit, note
        self._last: OrderedDict[str, tuple[GatewayHealth, int]] = OrderedDict()

    def on_health(self, health: GatewayHealth, sent_ns: int) -> bool:
        """A health record sent at `sent_ns` (the page's clock at most); False when over the limit."""
        known = self._last.get(health.gateway_id)
        if known is None and len(self._last) >= self.limit:
            return False
        if known is not None and known[0].at_ns > health.at_ns:
            return True
        self._last[health.gateway_id] = (health, sent_ns)
        return True

    def __len__(self) -> int:
        return len(self._last)

    def rows(self, now_ns: int) -> list[dict[str, Any]]:
        """One row per gateway, by id: its verdict and its last record's figures."""
        return [_row(health, heard, now_ns) for _id, (health, heard) in sorted(self._last.items())]


def _row(health: GatewayHealth, heard_ns: int, now_ns: int) -> dict[str, Any]:
    drops = dict(sorted(health.drops.items()))
    return {
        "gateway_id": health.gateway_id, "fleet": health.fleet, "state": verdict(health, heard_ns, now_ns),
        "last_heard_s": round(max(0, now_ns - heard_ns) / 1e9, 1), "interval_s": health.interval_s,
        "up_for_s": round(max(0, health.at_ns - health.started_ns) / 1e9, 1),
        "mqtt_connected": health.mqtt_connected, "kafka_connected": health.kafka_connected,
        "messages": health.messages, "records_up": health.records_up, "records_up_per_s": health.records_up_per_s,
        "commands_down": health.commands_down, "commands_down_per_s": health.commands_down_per_s,
        "duplicates": health.duplicates, "below_window": health.below_window,
        "drops": drops, "dropped": sum(drops.values()),
        "inflight": health.inflight, "held": health.held, "backpressure": health.backpressure,
        "commands_pending": health.commands_pending,
    }
