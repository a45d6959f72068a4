"""A VDA 5050 2.1 master control for tests, written from the specification (sections 6.3-6.15), not from
swarm_bridge.vda5050: its own paho client sends `order` and `instantActions` to one vehicle with headerIds counted
per topic, and keeps every `state`, `connection` and `factsheet` the vehicle publishes."""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion


def stamp() -> str:
    """ISO 8601 UTC with milliseconds, as section 6.4 spells it."""
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


def node(node_id: str, sequence_id: int, x: float, y: float, *, released: bool = True,
         actions: list[dict[str, Any]] | None = None, map_id: str = "map") -> dict[str, Any]:
    """A node of an order (section 6.6.6) at (x, y) on `map_id`."""
    return {"nodeId": node_id, "sequenceId": sequence_id, "released": released, "actions": actions or [],
            "nodePosition": {"x": x, "y": y, "mapId": map_id, "allowedDeviationXY": 0.5}}


def edge(start: dict[str, Any], end: dict[str, Any], *, released: bool = True) -> dict[str, Any]:
    """The edge between two nodes of an order (its sequenceId between theirs)."""
    return {"edgeId": f"{start['nodeId']}-{end['nodeId']}", "sequenceId": start["sequenceId"] + 1,
            "released": released, "startNodeId": start["nodeId"], "endNodeId": end["nodeId"], "actions": []}


def path(nodes: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Nodes and the edges joining them (an edge is released when its end node is)."""
    return nodes, [edge(a, b, released=b["released"]) for a, b in itertools.pairwise(nodes)]


class Master:
    """The master control of one vehicle `manufacturer/serial` on `interface/major`."""

    def __init__(self, host: str, port: int, manufacturer: str, serial: str, *, interface: str = "uagv",
                 major: str = "v2") -> None:
        self.manufacturer, self.serial = manufacturer, serial
        self.prefix = f"{interface}/{major}/{manufacturer}/{serial}"
        self.states: list[dict[str, Any]] = []
        self.connections: list[dict[str, Any]] = []
        self.factsheets: list[dict[str, Any]] = []
        self._kept = {"state": self.states, "connection": self.connections, "factsheet": self.factsheets}
        self._header_ids: dict[str, int] = {}
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"master-{serial}-{id(self)}",
                                   protocol=paho.MQTTv5)
        self._client.on_connect = lambda c, *_: c.subscribe([(f"{self.prefix}/{t}", 1) for t in self._kept])
        self._client.on_subscribe = lambda *_: self._ready.set()
        self._client.on_message = self._on_message
        self._client.connect(host, port)
        self._client.loop_start()
        if not self._ready.wait(10):
            raise AssertionError(f"master on {host}:{port} did not subscribe")

    def _on_message(self, _client: paho.Client, _userdata: Any, message: paho.MQTTMessage) -> None:
        if not message.payload:
            return
        with self._lock:
            self._kept[message.topic.rsplit("/", 1)[-1]].append(json.loads(message.payload))

    def _header(self, topic: str) -> dict[str, Any]:
        header_id = self._header_ids.get(topic, 0)
        self._header_ids[topic] = header_id + 1
        return {"headerId": header_id, "timestamp": stamp(), "version": "2.1.0", "manufacturer": self.manufacturer,
                "serialNumber": self.serial}

    def send_raw(self, topic: str, payload: bytes) -> None:
        """Any payload on one of the vehicle's topics (QoS 0, as the spec gives order and instantActions)."""
        self._client.publish(f"{self.prefix}/{topic}", payload, qos=0).wait_for_publish(10)

    def order(self, order_id: str, update_id: int, nodes: list[dict[str, Any]],
              edges: list[dict[str, Any]]) -> dict[str, Any]:
        body = {**self._header("order"), "orderId": order_id, "orderUpdateId": update_id, "nodes": nodes,
                "edges": edges}
        self.send_raw("order", json.dumps(body).encode())
        return body

    def instant(self, action_type: str, action_id: str) -> dict[str, Any]:
        body = {**self._header("instantActions"), "actions": [
            {"actionType": action_type, "actionId": action_id, "blockingType": "HARD"}]}
        self.send_raw("instantActions", json.dumps(body).encode())
        return body

    def last_state(self) -> dict[str, Any] | None:
        with self._lock:
            return self.states[-1] if self.states else None

    def wait_state(self, check: Callable[[dict[str, Any]], bool], what: str, timeout_s: float = 90.0) -> dict[str, Any]:
        """The first state from now on (the last one kept counts) for which `check` holds."""
        deadline = time.monotonic() + timeout_s
        seen = 0
        while time.monotonic() < deadline:
            with self._lock:
                fresh = self.states[max(seen - 1, 0):]
                seen = len(self.states)
            for state in fresh:
                if check(state):
                    return state
            time.sleep(0.05)
        raise AssertionError(f"timed out after {timeout_s:g} s waiting for a state with {what}; last: "
                             f"{self.last_state()}")

    def wait_connection(self, connection_state: str, timeout_s: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                found = [c for c in self.connections if c.get("connectionState") == connection_state]
            if found:
                return found[-1]
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for connection {connection_state}; seen {self.connections}")

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


def action_state(state: dict[str, Any], action_id: str) -> str:
    """The actionStatus of `action_id` in a state ('' when it is not there)."""
    return next((a["actionStatus"] for a in state["actionStates"] if a["actionId"] == action_id), "")


def errors_of(state: dict[str, Any], error_type: str) -> list[dict[str, Any]]:
    return [e for e in state["errors"] if e["errorType"] == error_type]
