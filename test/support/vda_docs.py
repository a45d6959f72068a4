"""VDA 5050 test documents written from the spec (section 6.10.6), not from swarm_bridge.vda5050: a valid `state`
and `connection` of a vehicle, to vary per test."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def state_doc(manufacturer: str = "acme", serial: str = "agv1", *, header_id: int = 0, order_id: str = "",
              order_update_id: int = 0, last_node_id: str = "", x: float = 1.0, y: float = 2.0,
              nodes: Sequence[tuple[str, int]] = (), edges: Sequence[tuple[str, int]] = (),
              actions: Sequence[tuple[str, str, str]] = (), errors: Sequence[dict[str, Any]] = (),
              **extra: Any) -> dict[str, Any]:
    """A schema-valid state; `actions` as (actionId, actionType, actionStatus)."""
    doc: dict[str, Any] = {
        "headerId": header_id, "timestamp": "2026-12-06T10:00:00.00Z", "version": "2.1.0",
        "manufacturer": manufacturer, "serialNumber": serial, "orderId": order_id, "orderUpdateId": order_update_id,
        "lastNodeId": last_node_id, "lastNodeSequenceId": 0,
        "nodeStates": [{"nodeId": n, "sequenceId": s, "released": True} for n, s in nodes],
        "edgeStates": [{"edgeId": e, "sequenceId": s, "released": True} for e, s in edges],
        "driving": bool(nodes), "actionStates": [{"actionId": i, "actionType": t, "actionStatus": st}
                                                 for i, t, st in actions],
        "batteryState": {"batteryCharge": 80.0, "charging": False}, "operatingMode": "AUTOMATIC",
        "errors": list(errors), "safetyState": {"eStop": "NONE", "fieldViolation": False},
        "agvPosition": {"x": x, "y": y, "theta": 0.0, "mapId": "map", "positionInitialized": True},
    }
    doc.update(extra)
    return doc


def connection_doc(manufacturer: str = "acme", serial: str = "agv1", state: str = "ONLINE",
                   header_id: int = 0) -> dict[str, Any]:
    return {"headerId": header_id, "timestamp": "2026-12-06T10:00:00.00Z", "version": "2.1.0",
            "manufacturer": manufacturer, "serialNumber": serial, "connectionState": state}
