"""Simulated VDA 5050 2.1 vehicles for the tests, written from the specification (../shared/data/vda5050/
VDA5050_EN.md), not from swarm_bridge: each is its own paho MQTT 5 client, as a vehicle's controller is.

What each vehicle does, by section: topics `uagv/v2/{manufacturer}/{serialNumber}/{topic}` (6.3); a header counted
per topic (6.4); `connection` retained at QoS 1, ONLINE after connecting, Last Will CONNECTIONBROKEN, OFFLINE
before an orderly stop (6.14); `factsheet` retained (6.15); orders accepted, updated by stitching on the base's
last node, a lower orderUpdateId rejected with an orderUpdateError, the same one ignored, a malformed one rejected
with a validationError, an unknown action with an orderError (6.6.2, 6.6.4); nodes driven to one after the other
over time, each traversed node removed from nodeStates with lastNodeId set and its actions run (6.10.2);
instant actions cancelOrder (6.6.3, noOrderToCancel when there is none), startPause/stopPause, stateRequest,
factsheetRequest (6.8.1, 6.9); `state` on every change and at least every `state_period_s` (6.10).
"""

from __future__ import annotations

import json
import math
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

__all__ = ["VdaVehicle", "VdaVehicles", "VehicleSpec"]

ORDER_ERRORS = ("validationError", "orderError", "orderUpdateError")


def _now() -> str:
    moment = datetime.now(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 10000:02d}Z"


@dataclass
class VehicleSpec:
    """One vehicle: its names, where it starts, how fast it drives, which actions it can do and which fail."""

    manufacturer: str
    serial: str
    x: float = 0.0
    y: float = 0.0
    speed_mps: float = 4.0
    action_s: float = 0.2
    actions: frozenset[str] = frozenset({"pick", "drop"})
    failing: frozenset[str] = frozenset()  # action types that end FAILED
    claims: frozenset[str] | None = None  # the actions its factsheet lists (None: `actions`, the truth)
    battery: float = 90.0


@dataclass
class _Action:
    doc: dict[str, Any]
    status: str = "WAITING"
    started: float = 0.0
    result: str = ""


@dataclass
class _Order:
    order_id: str = ""
    update_id: int = 0
    nodes: list[dict[str, Any]] = field(default_factory=list)  # still to traverse, in sequence
    edges: list[dict[str, Any]] = field(default_factory=list)
    base_end: tuple[str, int] = ("", 0)  # the decision point: last released node of the base


class VdaVehicle:
    """One simulated vehicle; `start()`, `crash()` (Last Will), `stop()` (OFFLINE, then DISCONNECT)."""

    def __init__(self, spec: VehicleSpec, *, host: str, port: int, interface: str = "uagv", major: str = "v2",
                 state_period_s: float = 1.0) -> None:
        self.spec = spec
        self.prefix = f"{interface}/{major}/{spec.manufacturer}/{spec.serial}"
        self.state_period_s = state_period_s
        self.x, self.y, self.theta = spec.x, spec.y, 0.0
        self.last_node = ("", 0)
        self.order = _Order()
        self.actions: dict[str, _Action] = {}  # actionId -> state, of the order and of instant actions
        self.errors: list[dict[str, Any]] = []
        self.paused = False
        self.driving = False
        self.received: list[tuple[str, dict[str, Any] | None]] = []  # (topic, JSON or None when malformed)
        self._headers: dict[str, int] = {}
        self._lock = threading.RLock()
        self._dirty = True
        self._last_state = 0.0
        self._client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"vda-{spec.manufacturer}-{spec.serial}",
                                   protocol=paho.MQTTv5)
        self._host, self._port = host, port
        self._client.will_set(f"{self.prefix}/connection", self._encode("connection", {
            "connectionState": "CONNECTIONBROKEN"}), qos=1, retain=True)
        self._client.on_connect = self._on_connect
        self._client.on_message = self._on_message
        self._connected = threading.Event()

    # -- lifecycle --------------------------------------------------------------------------------------

    def start(self, timeout_s: float = 10.0) -> VdaVehicle:
        self._client.connect(self._host, self._port, keepalive=15)
        self._client.loop_start()
        if not self._connected.wait(timeout_s):
            raise AssertionError(f"vehicle {self.prefix}: broker {self._host}:{self._port} did not answer")
        return self

    def crash(self) -> None:
        """Vanish as if the link broke: DISCONNECT with reason 0x04, so the broker publishes the Last Will."""
        self._client.disconnect(reasoncode=ReasonCode(PacketTypes.DISCONNECT, "Disconnect with will message"))
        self._client.loop_stop()

    def stop(self) -> None:
        """Orderly stop (section 6.14): OFFLINE on connection, retained, then DISCONNECT."""
        if self._client.is_connected():
            info = self._publish("connection", {"connectionState": "OFFLINE"}, qos=1, retain=True)
            info.wait_for_publish(5)
            self._client.disconnect()
        self._client.loop_stop()

    def _on_connect(self, client: paho.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if reason.is_failure:
            return
        client.subscribe([(f"{self.prefix}/order", 0), (f"{self.prefix}/instantActions", 0)])
        self._publish("connection", {"connectionState": "ONLINE"}, qos=1, retain=True)
        self._publish("factsheet", self._factsheet(), qos=0, retain=True)
        with self._lock:
            self._send_state()
        self._connected.set()

    # -- the wire ---------------------------------------------------------------------------------------

    def _encode(self, topic: str, body: dict[str, Any]) -> bytes:
        header_id = self._headers.get(topic, 0)
        self._headers[topic] = header_id + 1
        doc = {"headerId": header_id, "timestamp": _now(), "version": "2.1.0",
               "manufacturer": self.spec.manufacturer, "serialNumber": self.spec.serial, **body}
        return json.dumps(doc).encode()

    def _publish(self, topic: str, body: dict[str, Any], *, qos: int = 0, retain: bool = False) -> Any:
        return self._client.publish(f"{self.prefix}/{topic}", self._encode(topic, body), qos=qos, retain=retain)

    def _on_message(self, _client: paho.Client, _userdata: Any, message: paho.MQTTMessage) -> None:
        topic = message.topic.rsplit("/", 1)[-1]
        try:
            doc = json.loads(message.payload)
        except (UnicodeDecodeError, json.JSONDecodeError):
            doc = None
        with self._lock:
            self.received.append((topic, doc if isinstance(doc, dict) else None))
            if topic == "order":
                self._on_order(doc)
            elif topic == "instantActions":
                self._on_instant(doc)
            self._dirty = True

    # -- orders (6.6.2, 6.6.4) ----------------------------------------------------------------------------

    def _reject(self, error_type: str, description: str, references: list[tuple[str, str]]) -> None:
        self.errors.append({"errorType": error_type, "errorLevel": "WARNING", "errorDescription": description,
                            "errorReferences": [{"referenceKey": k, "referenceValue": v} for k, v in references]})

    def _busy(self) -> bool:
        """Still executing an order or waiting for an update: nodes left, or order actions not ended."""
        return bool(self.order.nodes) or any(a.status not in ("FINISHED", "FAILED") for i, a in self.actions.items()
                                             if a.doc.get("_order"))

    def _on_order(self, doc: Any) -> None:
        problem = _malformed_order(doc)
        order_id: str = doc["orderId"] if isinstance(doc, dict) and isinstance(doc.get("orderId"), str) else ""
        if problem:
            self._reject("validationError", problem, [("orderId", order_id)] if order_id else [])
            return
        update = doc["orderUpdateId"]
        unknown = [a["actionType"] for n in (*doc["nodes"], *doc["edges"]) for a in n["actions"]
                   if a["actionType"] not in self.spec.actions]
        if unknown:
            self._reject("orderError", f"cannot do actions {sorted(set(unknown))}",
                         [("orderId", order_id), ("actionType", unknown[0])])
            return
        nodes = sorted(doc["nodes"], key=lambda n: n["sequenceId"])
        edges = sorted(doc["edges"], key=lambda e: e["sequenceId"])
        first = (nodes[0]["nodeId"], nodes[0]["sequenceId"])
        if order_id == self.order.order_id:
            if update < self.order.update_id:
                self._reject("orderUpdateError", f"orderUpdateId {update} is lower than {self.order.update_id}",
                             [("orderId", order_id), ("orderUpdateId", str(update))])
                return
            if update == self.order.update_id:
                return  # the same order again: ignored
            end = self.order.base_end if self._busy() else self.last_node
            if first != end:
                self._reject("orderUpdateError", f"update starts at {first}, the base ends at {end}",
                             [("orderId", order_id), ("orderUpdateId", str(update))])
                return
            self._take(order_id, update, nodes[1:], edges, stitch=True)
            return
        if self._busy():
            self._reject("orderUpdateError", f"still executing order {self.order.order_id}",
                         [("orderId", order_id)])
            return
        start = nodes[0].get("nodePosition")
        if first[0] != self.last_node[0] and start is not None:
            reach = start.get("allowedDeviationXY", 0.5)
            if math.hypot(start["x"] - self.x, start["y"] - self.y) > reach:
                self._reject("orderError", f"first node {first[0]} is not where the vehicle stands",
                             [("orderId", order_id), ("nodeId", first[0])])
                return
        self.actions = {i: a for i, a in self.actions.items() if not a.doc.get("_order")}
        self._take(order_id, update, nodes, edges, stitch=False)
        self._traverse(nodes[0])  # trivially reachable: traversed at once, its actions start

    def _take(self, order_id: str, update: int, nodes: list[dict[str, Any]], edges: list[dict[str, Any]], *,
              stitch: bool) -> None:
        self.errors = [e for e in self.errors if e["errorType"] not in ORDER_ERRORS]
        if not stitch:
            self.order = _Order(order_id, update)
        self.order.update_id = update
        self.order.nodes = [n for n in self.order.nodes if n["released"]] + nodes
        self.order.edges = [e for e in self.order.edges if e["released"]] + edges
        released = [n for n in self.order.nodes if n["released"]]
        if released:
            self.order.base_end = (released[-1]["nodeId"], released[-1]["sequenceId"])
        for item in (*nodes, *edges):
            for action in item["actions"]:
                self.actions[action["actionId"]] = _Action({**action, "_order": True})

    # -- instant actions (6.6.3, 6.9) ---------------------------------------------------------------------

    def _on_instant(self, doc: Any) -> None:
        if not isinstance(doc, dict) or not isinstance(doc.get("actions"), list):
            self._reject("validationError", "instantActions without an actions array", [])
            return
        for action in doc["actions"]:
            kind, action_id = action.get("actionType"), action.get("actionId", "")
            entry = self.actions[action_id] = _Action(dict(action), "FINISHED")
            if kind == "cancelOrder":
                if not self._busy():
                    entry.status = "FAILED"
                    self.errors.append({"errorType": "noOrderToCancel", "errorLevel": "WARNING",
                                        "errorReferences": [{"referenceKey": "actionId",
                                                             "referenceValue": action_id}]})
                    continue
                self.order.nodes, self.order.edges = [], []
                self.driving = False
                for other in self.actions.values():
                    if other.doc.get("_order") and other.status not in ("FINISHED", "FAILED"):
                        other.status, other.result = "FAILED", "cancelled (cancelOrder)"
            elif kind in ("startPause", "stopPause"):
                self.paused = kind == "startPause"
                self.driving = self.driving and not self.paused
            elif kind == "factsheetRequest":
                self._publish("factsheet", self._factsheet(), qos=0, retain=True)
            elif kind != "stateRequest":
                entry.status, entry.result = "FAILED", f"unknown instant action {kind}"

    # -- driving (6.10.2) --------------------------------------------------------------------------------

    def _traverse(self, node: dict[str, Any]) -> None:
        self.last_node = (node["nodeId"], node["sequenceId"])
        self.order.nodes = [n for n in self.order.nodes if n is not node]
        self.order.edges = [e for e in self.order.edges if e["sequenceId"] > node["sequenceId"]]
        for action in node["actions"]:
            self.actions[action["actionId"]].status = "INITIALIZING"

    def step(self, dt: float, now: float) -> None:
        """Advance by `dt` seconds: run the current node's actions, else drive to the next released node."""
        with self._lock:
            for action in self.actions.values():
                if action.status == "INITIALIZING":
                    action.status, action.started, self._dirty = "RUNNING", now, True
                elif action.status == "RUNNING" and not self.paused and now - action.started >= self.spec.action_s:
                    failed = action.doc["actionType"] in self.spec.failing
                    action.status = "FAILED" if failed else "FINISHED"
                    action.result = "simulated failure" if failed else "done"
                    self._dirty = True
            blocked = any(a.status in ("INITIALIZING", "RUNNING") and a.doc.get("blockingType") == "HARD"
                          for a in self.actions.values() if a.doc.get("_order"))
            target = self.order.nodes[0] if self.order.nodes and self.order.nodes[0]["released"] else None
            moving = target is not None and not blocked and not self.paused
            if moving != self.driving:
                self.driving, self._dirty = moving, True
            if moving and target is not None:
                position = target.get("nodePosition") or {"x": self.x, "y": self.y}
                dx, dy = position["x"] - self.x, position["y"] - self.y
                distance, reach = math.hypot(dx, dy), self.spec.speed_mps * dt
                if distance <= reach:
                    self.x, self.y = position["x"], position["y"]
                    self._traverse(target)
                    self._dirty = True
                else:
                    self.x, self.y = self.x + dx / distance * reach, self.y + dy / distance * reach
                    self.theta = math.atan2(dy, dx)
            if self._dirty or now - self._last_state >= self.state_period_s:
                self._send_state()

    def _send_state(self) -> None:
        self._dirty = False
        self._last_state = time.monotonic()
        if not self._client.is_connected():
            return
        self._publish("state", self.state_body())

    def state_body(self) -> dict[str, Any]:
        """The state of section 6.10.6 (header added when sent)."""
        return {
            "orderId": self.order.order_id, "orderUpdateId": self.order.update_id,
            "lastNodeId": self.last_node[0], "lastNodeSequenceId": self.last_node[1],
            "nodeStates": [{"nodeId": n["nodeId"], "sequenceId": n["sequenceId"], "released": n["released"],
                            **({"nodePosition": n["nodePosition"]} if "nodePosition" in n else {})}
                           for n in self.order.nodes],
            "edgeStates": [{"edgeId": e["edgeId"], "sequenceId": e["sequenceId"], "released": e["released"]}
                           for e in self.order.edges],
            "driving": self.driving, "paused": self.paused,
            "agvPosition": {"x": self.x, "y": self.y, "theta": self.theta, "mapId": "map",
                            "positionInitialized": True},
            "velocity": {"vx": self.spec.speed_mps if self.driving else 0.0, "vy": 0.0, "omega": 0.0},
            "actionStates": [{"actionId": i, "actionType": a.doc.get("actionType", ""), "actionStatus": a.status,
                              **({"resultDescription": a.result} if a.result else {})}
                             for i, a in self.actions.items()],
            "batteryState": {"batteryCharge": self.spec.battery, "charging": False},
            "operatingMode": "AUTOMATIC", "errors": list(self.errors), "loads": [],
            "safetyState": {"eStop": "NONE", "fieldViolation": False},
        }

    def _factsheet(self) -> dict[str, Any]:
        return {
            "typeSpecification": {"seriesName": "sim", "agvKinematic": "DIFF", "agvClass": "CARRIER",
                                  "maxLoadMass": 100.0, "localizationTypes": ["NATURAL"],
                                  "navigationTypes": ["AUTONOMOUS"]},
            "physicalParameters": {"speedMin": 0.0, "speedMax": self.spec.speed_mps, "accelerationMax": 1.0,
                                   "decelerationMax": 1.0, "heightMin": 0.2, "heightMax": 0.5, "width": 0.6,
                                   "length": 1.0},
            "protocolLimits": {"maxStringLens": {}, "maxArrayLens": {}, "timing": {
                "minOrderInterval": 0.1, "minStateInterval": 0.05}},
            "protocolFeatures": {"optionalParameters": [], "agvActions": [
                {"actionType": a, "actionScopes": ["NODE"]}
                for a in sorted(self.spec.actions if self.spec.claims is None else self.spec.claims)]},
            "agvGeometry": {}, "loadSpecification": {},
        }


def _malformed_order(doc: Any) -> str:
    """Why `doc` is not an order (6.6.4.1: 'all formatting and JSON data types are correct?'); '' when it is one."""
    if not isinstance(doc, dict):
        return "not a JSON object"
    for key, kind in (("orderId", str), ("orderUpdateId", int), ("nodes", list), ("edges", list)):
        if not isinstance(doc.get(key), kind) or isinstance(doc.get(key), bool):
            return f"{key} missing or not a {kind.__name__}"
    if not doc["nodes"]:
        return "nodes is empty"
    for node in doc["nodes"]:
        if not isinstance(node, dict) or not isinstance(node.get("nodeId"), str) or not isinstance(
                node.get("sequenceId"), int) or not isinstance(node.get("released"), bool) or not isinstance(
                node.get("actions"), list):
            return f"node {node!r}: nodeId, sequenceId, released and actions required"
    for edge in doc["edges"]:
        if not isinstance(edge, dict) or not all(k in edge for k in ("edgeId", "sequenceId", "released",
                                                                     "startNodeId", "endNodeId", "actions")):
            return f"edge {edge!r}: edgeId, sequenceId, released, startNodeId, endNodeId and actions required"
    return ""


class VdaVehicles:
    """Several simulated vehicles and one thread that moves them all."""

    def __init__(self, specs: list[VehicleSpec], *, host: str, port: int, interface: str = "uagv",
                 tick_s: float = 0.05, state_period_s: float = 1.0) -> None:
        self.vehicles = {f"{s.manufacturer}/{s.serial}": VdaVehicle(s, host=host, port=port, interface=interface,
                                                                    state_period_s=state_period_s)
                         for s in specs}
        self.tick_s = tick_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __getitem__(self, robot_id: str) -> VdaVehicle:
        return self.vehicles[robot_id]

    def start(self) -> VdaVehicles:
        for vehicle in self.vehicles.values():
            vehicle.start()
        self._thread = threading.Thread(target=self._run, name="vda-vehicles", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        last = time.monotonic()
        while not self._stop.wait(self.tick_s):
            now = time.monotonic()
            for vehicle in list(self.vehicles.values()):
                vehicle.step(now - last, now)
            last = now

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        for vehicle in self.vehicles.values():
            vehicle.stop()
