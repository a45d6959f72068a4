"""The robot as a VDA 5050 2.1 vehicle: `order` and `instantActions` from the master control in, `state`,
`connection` (Last Will CONNECTIONBROKEN) and `factsheet` out, on the vehicle's own MQTT session; nodes driven to
and actions run through the configured ROS 2 actions. The order logic is swarm_bridge.vda5050.vehicle (pure);
this module carries its effects out with rclpy. Every MQTT message is queued and handled on the ROS thread."""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

from rclpy.action import ActionClient
from rclpy.node import Node

from swarm_bridge.actions import GoalError, MappingError, TaskInput
from swarm_bridge.actions.mapping import yaw_of
from swarm_bridge.config import RobotBridgeConfig
from swarm_bridge.config.tasks import ActionTaskConfig
from swarm_bridge.config.vda_vehicle import POSE_TYPES
from swarm_bridge.ros.action_tasks import action_mapping
from swarm_bridge.ros.convert import dict_to_message, message_to_dict
from swarm_bridge.ros.errors import MessageFieldError
from swarm_bridge.ros.qos import qos_preset
from swarm_bridge.ros.types import message_class
from swarm_bridge.routing.naming import robot_topic
from swarm_bridge.transport.mqtt_client import LastWill, Message, MqttClient, MqttOptions, tls_context
from swarm_bridge.vda5050 import (
    TOPICS,
    Connection,
    Factsheet,
    HeaderCounter,
    InstantActions,
    MessageInvalid,
    OfficialSchemas,
    Order,
    Vda5050Topics,
    VehicleId,
    decode,
    encode,
)
from swarm_bridge.vda5050.models import Action, Visualization
from swarm_bridge.vda5050.models import Node as OrderNode
from swarm_bridge.vda5050.vehicle import Drive, Effect, OrderBook, Position, Run, Stop, factsheet

__all__ = ["VdaVehicle", "check_vehicle"]

log = logging.getLogger(__name__)

TICK_S = 0.05  # how often queued MQTT messages are handled and a due state is sent
NODE = "node"  # the key of the drive-to-node action among the action kinds


def _kinds(config: RobotBridgeConfig) -> dict[str, ActionTaskConfig]:
    vda = config.vda5050
    return {} if vda is None else {NODE: vda.node, **vda.actions}


def check_vehicle(config: RobotBridgeConfig) -> list[tuple[str, str]]:
    """(config key, problem) for each vda5050 action whose type or goal mapping does not fit (preflight)."""
    problems: list[tuple[str, str]] = []
    for kind, action in _kinds(config).items():
        key = "vda5050.node" if kind == NODE else f"vda5050.actions.{kind}"
        try:
            action_mapping(kind, action)
        except MappingError as exc:
            problems += [(k.replace(f"tasks.actions.{kind}", key), p) for k, p in exc.each]
    return problems


class _Goal:
    """A goal on its way or running: what to tell the order book when it ends."""

    def __init__(self, kind: str, ended: Callable[[bool, str], list[Effect]]) -> None:
        self.kind, self.ended = kind, ended
        self.handle: Any = None
        self.cancel = False


class VdaVehicle:
    """One robot's VDA 5050 vehicle side on the bridge's node and its own MQTT session."""

    def __init__(self, node: Node, config: RobotBridgeConfig) -> None:
        vda = config.vda5050
        if vda is None:
            raise MappingError("vda5050", "no vda5050 section")
        self.config, self.robot_id, self._node = vda, config.robot_id, node
        self.topics = Vda5050Topics(vda.interface_name, vda.major_version)
        self.vehicle = VehicleId(vda.manufacturer, vda.serial_number)
        self.header = HeaderCounter()
        self.schemas = OfficialSchemas(vda.schemas) if vda.schemas else None
        self.book = OrderBook(actions=set(vda.actions), deviation_m=vda.deviation_m)
        self.dropped: Counter[str] = Counter()
        self.received: Counter[str] = Counter()
        self._types: dict[str, Any] = {}
        self._mappings: dict[str, Any] = {}
        self._clients: dict[str, ActionClient] = {}
        self._names: dict[str, str] = {}
        for kind, action in _kinds(config).items():
            self._types[kind], self._mappings[kind] = action_mapping(kind, action)
            self._names[kind] = robot_topic(action.action, config.robot_id)
            self._clients[kind] = ActionClient(node, self._types[kind], self._names[kind])
        self._goal: _Goal | None = None
        self._waiting: tuple[str, dict[str, Any], _Goal, float] | None = None
        self._inbox: queue.SimpleQueue[tuple[str, bytes]] = queue.SimpleQueue()
        self._online_due = threading.Event()
        self._subscribed = False
        self._last_state = 0.0
        self._last_seen: tuple[float, float, float] | None = None  # the position the last visualization showed
        self._last_visualization = 0.0
        self._lock = threading.Lock()  # the header counter: the network thread builds nothing, but close() may race
        host, port = config.vda5050_broker()
        will = self._message("connection", lambda h: Connection(**h, connection_state="CONNECTIONBROKEN"))
        self.client = MqttClient(MqttOptions(
            host=host, port=port, client_id=f"vda-{uuid.uuid4().hex[:12]}", keepalive_s=vda.keepalive_s,
            will=LastWill(self.topics.topic(self.vehicle, "connection"), will, qos=1, retain=True),
            **_login(config)),
            on_message=self._on_mqtt, auto_ack=True, on_connect=lambda _present: self._online_due.set())
        self._timer = node.create_timer(TICK_S, self._tick)
        self._position = None
        if vda.position is not None:
            self._pose_path = POSE_TYPES[vda.position.type].split(".")
            self._position = node.create_subscription(message_class(vda.position.type),
                                                      robot_topic(vda.position.topic, config.robot_id),
                                                      self._on_position, qos_preset("reliable"))
        log.info("vda5050 vehicle %s: topics %s, nodes by %s, actionTypes: %s", self.vehicle.robot_id,
                 self.topics.topic(self.vehicle, "state").rsplit("/", 1)[0], self._names[NODE],
                 ", ".join(f"{k} -> {self._names[k]}" for k in vda.actions) or "none")

    # --- MQTT ---------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Connect in the background (the Last Will set); once connected, the ROS thread subscribes to order and
        instantActions, then publishes ONLINE, the factsheet and a state (`_connected`), after every reconnect."""
        self.client.start(wait=False)

    def _connected(self) -> None:
        if not self._subscribed:
            try:
                self.client.subscribe([self.topics.topic(self.vehicle, "order"),
                                       self.topics.topic(self.vehicle, "instantActions")], qos=0, timeout_s=5.0)
            except Exception as exc:  # lost again, or refused: tried again at the next connect
                self._drop("subscribe failed", str(exc))
                return
            self._subscribed = True  # the client subscribes again by itself when the broker lost the session
        self._publish_presence()

    def _on_mqtt(self, message: Message) -> None:
        self._inbox.put((message.topic, message.payload))  # the ROS thread reads it (_tick)

    def _message(self, topic: str, build: Callable[[dict[str, Any]], Any]) -> bytes:
        with self._lock:
            header = self.header.header(self.vehicle, topic, time.time_ns())
        return encode(build(header))

    def _publish(self, topic: str, payload: bytes) -> None:
        spec = TOPICS[topic]
        try:
            self.client.publish(self.topics.topic(self.vehicle, spec.name), payload, qos=spec.qos,
                                retain=spec.retain, timeout_s=0)
        except Exception as exc:  # a full window or a broker gone: counted, the next state carries it all again
            self._drop(f"{topic} not published", str(exc))

    def _publish_state(self) -> None:
        self._last_state = time.monotonic()
        self._publish("state", self._message("state", lambda h: self.book.state(h)))

    def _publish_presence(self) -> None:
        self._publish("connection", self._message("connection", lambda h: Connection(**h, connection_state="ONLINE")))
        self._publish("factsheet", self._message("factsheet", self._factsheet))
        self.book.changed = True  # a state right after: the master sees where the vehicle stands

    def _factsheet(self, header: dict[str, Any]) -> Factsheet:
        vda = self.config
        return factsheet(header, actions=list(vda.actions), series_name=vda.series_name,
                         speed_max_mps=vda.speed_max_mps, state_period_s=vda.state_period_s,
                         min_state_interval_s=TICK_S)

    # --- the ROS thread -------------------------------------------------------------------------------------

    def _tick(self) -> None:
        if self._online_due.is_set():
            self._online_due.clear()
            self._connected()
        while True:
            try:
                topic, payload = self._inbox.get_nowait()
            except queue.Empty:
                break
            self._receive(topic, payload)
        if self._waiting is not None:
            self._send_ready()
        due = time.monotonic() - self._last_state >= self.config.state_period_s
        if (self.book.take_changed() or due) and self.client.connected:
            self._publish_state()
        if self.config.visualization_hz is not None:
            self._visualize(self.config.visualization_hz)

    def _visualize(self, hz: float) -> None:
        """visualization (6.13): the position, when it changed, at most `hz` a second."""
        where = self.book.position
        now = time.monotonic()
        if where is None or not self.client.connected or now - self._last_visualization < 1.0 / hz:
            return
        seen = (where.x, where.y, where.theta)
        if seen == self._last_seen:
            return
        self._last_seen, self._last_visualization = seen, now
        position = self.book.agv_position()
        self._publish("visualization", self._message("visualization",
                                                      lambda h: Visualization(**h, agv_position=position)))

    def _receive(self, topic: str, payload: bytes) -> None:
        """An order or instantActions message: to the order book; a malformed one rejected and counted."""
        name = topic.rsplit("/", 1)[-1]
        self.received[name] += 1
        if name == "order":
            try:
                order = decode(name, payload, Order, self.schemas)
            except MessageInvalid as exc:
                self._drop("malformed order", f"{topic}: {exc}")
                self.book.malformed(f"{exc.field or '<message>'}: {exc.problem}", _order_id(payload))
                self._apply([])
                return
            self._apply(self.book.order(order))
        elif name == "instantActions":
            try:
                message = decode(name, payload, InstantActions, self.schemas)
            except MessageInvalid as exc:
                self._drop("malformed instantActions", f"{topic}: {exc}")
                self.book.malformed(f"{exc.field or '<message>'}: {exc.problem}")
                self._apply([])
                return
            self._apply(self.book.instant(message))
            for action in message.actions:
                self._built_in.get(action.action_type, lambda: None)()

    @property
    def _built_in(self) -> dict[str, Callable[[], None]]:
        """What the vehicle publishes for the instant actions it answers itself."""
        return {"stateRequest": self._publish_state,
                "factsheetRequest": lambda: self._publish("factsheet", self._message("factsheet", self._factsheet))}

    def _apply(self, effects: list[Effect]) -> None:
        """Carry out what the order book asks, then publish the state at once when it changed: every change is
        a state of its own (6.10), not merged with the next within a tick."""
        for effect in effects:
            if isinstance(effect, Drive):
                self._drive(effect)
            elif isinstance(effect, Run):
                self._run(effect)
            elif isinstance(effect, Stop):
                self._stop_goal()
        if self.client.connected and self.book.take_changed():
            self._publish_state()

    def _drive(self, drive: Drive) -> None:
        where = drive.node.node_position
        assert where is not None  # the order book refuses released nodes without a position
        task = TaskInput(task_id=f"{drive.order_id}:{drive.node.node_id}", kind=NODE, x=where.x, y=where.y,
                         yaw=where.theta or 0.0, frame=where.map_id)
        goal = _Goal(NODE, lambda ok, reason: self.book.arrived(ok, reason, self._at(drive.node) if ok else None))
        self._goal_out(NODE, task, goal)

    def _run(self, run: Run) -> None:
        action = run.action
        task = self._action_input(action, run.at)
        self._goal_out(action.action_type, task,
                       _Goal(action.action_type, lambda ok, reason: self.book.action_ended(action.action_id, ok,
                                                                                           reason)))

    def _action_input(self, action: Action, at: OrderNode | None) -> TaskInput:
        here = self.book.position
        where = at.node_position if at is not None else None
        x, y = (where.x, where.y) if where else ((here.x, here.y) if here else (0.0, 0.0))
        theta = (where.theta if where else None) or (here.theta if here else 0.0)
        frame = where.map_id if where else (here.map_id if here else "")
        return TaskInput(task_id=action.action_id, kind=action.action_type, x=x, y=y, yaw=theta, frame=frame,
                         parameters={p.key: str(p.value) for p in action.action_parameters or []})

    def _goal_out(self, kind: str, task: TaskInput, goal: _Goal) -> None:
        try:
            body = self._mappings[kind].goal(task)
        except GoalError as exc:  # a parameter missing or ill-formed: the step fails, the vehicle goes on
            self._apply(goal.ended(False, str(exc)))
            return
        self._goal = goal
        self._waiting = (kind, body, goal, time.monotonic())
        self._send_ready()

    def _send_ready(self) -> None:
        assert self._waiting is not None
        kind, body, goal, since = self._waiting
        client = self._clients[kind]
        timeout = (self.config.node if kind == NODE else self.config.actions[kind]).server_timeout_s
        if goal.cancel:
            self._waiting = None
            self._end(goal, False, "cancelled before it was sent")
        elif client.server_is_ready():
            self._waiting = None
            try:
                message = dict_to_message(self._types[kind].Goal, body)
            except MessageFieldError as exc:
                self._end(goal, False, f"goal not buildable: {exc}")
                return
            future = client.send_goal_async(message, feedback_callback=self._on_feedback)
            future.add_done_callback(lambda f: self._on_response(goal, f))
        elif time.monotonic() - since >= timeout:
            self._waiting = None
            self._end(goal, False, f"no action server {self._names[kind]} answered within {timeout:g} s")

    def _on_response(self, goal: _Goal, future: Any) -> None:
        try:
            handle = future.result()
        except Exception as exc:  # the request failed in rclpy: the step failed, never lost
            self._end(goal, False, f"sending the goal to {self._names[goal.kind]} failed: {exc}")
            return
        if not handle.accepted:
            self._end(goal, False, f"action server {self._names[goal.kind]} rejected the goal")
            return
        goal.handle = handle
        if goal.cancel:
            handle.cancel_goal_async()
        handle.get_result_async().add_done_callback(lambda f: self._on_result(goal, f))

    def _on_result(self, goal: _Goal, future: Any) -> None:
        try:
            response = future.result()
            status, result = int(response.status), message_to_dict(response.result)
        except Exception as exc:  # the end is unknown: the step failed
            status, result = 0, {"error": str(exc)}
        ok = status == 4  # action_msgs/GoalStatus SUCCEEDED
        detail = ", ".join(f"{k} {v!r}" for k, v in result.items() if k in ("error_code", "error_msg", "error"))
        self._end(goal, ok, "" if ok else f"action {self._names[goal.kind]} ended with status {status}"
                  + (f": {detail}" if detail else ""))

    def _end(self, goal: _Goal, ok: bool, reason: str) -> None:
        if self._goal is goal:
            self._goal = None
        self._apply(goal.ended(ok, reason))

    def _on_feedback(self, feedback: Any) -> None:
        """A drive's feedback: where the robot is, when it says (a `current_pose` field, as Nav2's)."""
        try:
            pose = message_to_dict(feedback.feedback)["current_pose"]
            p, q = pose["pose"]["position"], pose["pose"]["orientation"]
            self.book.moved(Position(float(p["x"]), float(p["y"]),
                                     yaw_of(q["x"], q["y"], q["z"], q["w"]), self._map_id()))
        except (KeyError, TypeError, ValueError):
            return

    def _on_position(self, msg: Any) -> None:
        """Where the robot is, from the position topic (its Pose at POSE_TYPES' path)."""
        assert self.config.position is not None
        try:
            pose = msg
            for part in self._pose_path:
                pose = getattr(pose, part)
            p, q = pose.position, pose.orientation
            where = Position(float(p.x), float(p.y), yaw_of(q.x, q.y, q.z, q.w), self.config.position.map_id)
        except (AttributeError, TypeError, ValueError) as exc:
            self._drop("unreadable position", str(exc))
            return
        if all(math.isfinite(v) for v in (where.x, where.y, where.theta)):
            moved = self.book.position is None
            self.book.moved(where)
            self.book.changed = self.book.changed or moved  # the first position is worth a state at once

    def _map_id(self) -> str:
        return self.book.position.map_id if self.book.position else "map"

    def _at(self, node: OrderNode) -> Position | None:
        where = node.node_position
        if where is None:
            return None
        theta = where.theta if where.theta is not None else (self.book.position.theta if self.book.position else 0.0)
        return Position(where.x, where.y, theta if math.isfinite(theta) else 0.0, where.map_id)

    def _stop_goal(self) -> None:
        goal = self._goal
        if goal is None:
            return
        goal.cancel = True
        if goal.handle is not None:
            goal.handle.cancel_goal_async()

    def _drop(self, reason: str, detail: str) -> None:
        """Count what cannot be used, by reason; the first of each reason is logged."""
        self.dropped[reason] += 1
        if self.dropped[reason] == 1:
            log.warning("vda5050 vehicle %s: dropped 1 (%s: %s); more are only counted", self.vehicle.robot_id,
                        reason, detail)

    # --- stopping -------------------------------------------------------------------------------------------

    def stop(self, spin: Callable[[Callable[[], bool], float], object]) -> None:
        """An orderly stop: the running goal cancelled (`spin` runs the node until it ended, at most 3 s), the
        last state, then OFFLINE (QoS 1, retained, acknowledged) and a normal DISCONNECT (no Last Will)."""
        if self._goal is not None:
            self._stop_goal()
            spin(lambda: self._goal is None, 3.0)
        acked = threading.Event()
        if self.client.connected:
            self._publish_state()
            payload = self._message("connection", lambda h: Connection(**h, connection_state="OFFLINE"))
            try:
                self.client.publish(self.topics.topic(self.vehicle, "connection"), payload, qos=1, retain=True,
                                    on_done=lambda ok, _code: acked.set(), timeout_s=2.0)
                acked.wait(5.0)
            except Exception as exc:  # the broker went first: the Last Will says it instead
                self._drop("OFFLINE not published", str(exc))
        log.info("vda5050 vehicle %s: received %s%s", self.vehicle.robot_id, dict(self.received) or "nothing",
                 f"; dropped: {dict(self.dropped)}" if self.dropped else "")

    def close(self) -> None:
        self.client.close()
        if self._position is not None:
            self._node.destroy_subscription(self._position)
        for client in self._clients.values():
            client.destroy()
        self._node.destroy_timer(self._timer)


def _login(config: RobotBridgeConfig) -> dict[str, Any]:
    """The MQTT uplink's user name, password and TLS when the VDA 5050 topics are on its broker; else none."""
    uplink, vda = config.uplink, config.vda5050
    if uplink.kind != "mqtt" or vda is None or vda.host is not None or vda.port is not None:
        return {}
    tls = None if uplink.tls is None else tls_context(uplink.tls.ca_file, uplink.tls.cert_file, uplink.tls.key_file)
    return {"username": uplink.username, "password": uplink.password, "tls": tls}


def _order_id(payload: bytes) -> str:
    """The orderId of a malformed order when it can still be read, for the error's reference."""
    import json

    try:
        value = json.loads(payload).get("orderId")
    except (ValueError, AttributeError, UnicodeDecodeError):
        return ""
    return value if isinstance(value, str) else ""
