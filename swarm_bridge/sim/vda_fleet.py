"""Plain VDA 5050 2.1 vehicles, simulated without ROS or a robot bridge, for the demo (harness, not product): each
is its own MQTT client (Last Will CONNECTIONBROKEN), takes orders and instant actions by the order rules of
`swarm_bridge.vda5050.vehicle.OrderBook`, drives by `swarm_bridge.sim.navigation.Base`, runs each action for a fixed
time, and publishes `state`, `connection`, `factsheet` and `visualization` at the spec's QoS.

The tests' vehicle simulator (test/support/vda_vehicles.py) is written from the specification on its own; this one
is built on the project's order book, as the demo's AGVs."""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from swarm_bridge.errors import SwarmBridgeError
from swarm_bridge.sim.navigation import Base
from swarm_bridge.transport.link import LinkError
from swarm_bridge.transport.mqtt_client import LastWill, MqttClient, MqttOptions
from swarm_bridge.vda5050 import (
    TOPICS,
    Connection,
    HeaderCounter,
    InstantActions,
    MessageInvalid,
    Order,
    Vda5050Topics,
    VehicleId,
    decode,
    encode,
)
from swarm_bridge.vda5050.models import Message as VdaMessage
from swarm_bridge.vda5050.models import Visualization
from swarm_bridge.vda5050.vehicle import Drive, Effect, OrderBook, Position, Run, Stop, factsheet

__all__ = ["SimVehicle", "VdaFleet"]

log = logging.getLogger(__name__)

TICK_S = 0.05


@dataclass
class SimVehicle:
    """One plain vehicle: its VDA 5050 names, the actionTypes it runs, where it starts, and what it did."""

    manufacturer: str
    serial_number: str
    actions: tuple[str, ...] = ()
    x: float = 0.0
    y: float = 0.0
    map_id: str = "map"
    received: Counter[str] = field(default_factory=Counter)  # order, instantActions
    sent: Counter[str] = field(default_factory=Counter)  # state, connection, factsheet, visualization
    dropped: Counter[str] = field(default_factory=Counter)  # by reason

    @property
    def vehicle(self) -> VehicleId:
        return VehicleId(self.manufacturer, self.serial_number)


class _Live:
    """A vehicle while it runs: its order book, its base, its client, and the drive or action under way."""

    def __init__(self, spec: SimVehicle, speed_mps: float) -> None:
        self.spec = spec
        self.book = OrderBook(actions=set(spec.actions))
        self.base = Base(x=spec.x, y=spec.y, speed_mps=speed_mps, frame=spec.map_id)
        self.book.moved(Position(spec.x, spec.y, 0.0, spec.map_id))
        self.headers = HeaderCounter()
        self.inbox: queue.SimpleQueue[tuple[str, bytes]] = queue.SimpleQueue()
        self.presence_due = threading.Event()
        self.drive: Drive | None = None
        self.action: tuple[Run, float] | None = None  # the action running and when it ends (monotonic)
        self.last_state = 0.0
        self.last_seen: tuple[float, float, float] | None = None
        self.last_visualization = 0.0
        self.client: MqttClient | None = None


class VdaFleet:
    """Plain VDA 5050 vehicles on one broker; one thread ticks them all every TICK_S."""

    def __init__(self, vehicles: Sequence[SimVehicle], *, host: str, port: int, interface: str = "uagv",
                 major_version: str = "v2", speed_mps: float = 1.5, action_s: float = 1.0,
                 state_period_s: float = 5.0, visualization_hz: float = 2.0, keepalive_s: int = 15) -> None:
        self.host, self.port = host, port
        self.topics = Vda5050Topics(interface, major_version)
        self.action_s, self.state_period_s, self.visualization_hz = action_s, state_period_s, visualization_hz
        self.keepalive_s = keepalive_s
        self.vehicles = {v.vehicle.robot_id: _Live(v, speed_mps) for v in vehicles}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, timeout_s: float = 10.0) -> VdaFleet:
        """Connect every vehicle (LinkError naming the broker when it does not answer) and start ticking."""
        for live in self.vehicles.values():
            self._connect(live, timeout_s)
        self._thread = threading.Thread(target=self._run, name="vda-vehicles", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """An orderly stop: ticking ends, each vehicle sends its last state and OFFLINE, then disconnects."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        for live in self.vehicles.values():
            self._leave(live)

    def _leave(self, live: _Live) -> None:
        """The last state, OFFLINE (QoS 1, retained, acknowledged), then a normal DISCONNECT (no Last Will)."""
        client = live.client
        if client is None:
            return
        if client.connected:
            self._state(live)
            acked = threading.Event()
            try:
                offline = self._encode(live, "connection", lambda h: Connection(**h, connection_state="OFFLINE"))
                client.publish(self._topic(live, "connection"), offline, qos=1, retain=True,
                               on_done=lambda _ok, _code: acked.set(), timeout_s=2.0)
                acked.wait(5.0)
            except LinkError as exc:  # the broker went first: the Last Will says it instead
                self._drop(live, "OFFLINE not published", str(exc))
        client.close()

    def _connect(self, live: _Live, timeout_s: float) -> None:
        """Connect with the Last Will set, subscribe to order and instantActions; ONLINE, factsheet and a state
        follow on the fleet's thread after this and every later connect."""
        will = self._encode(live, "connection", lambda h: Connection(**h, connection_state="CONNECTIONBROKEN"))
        client_id = f"vda-sim-{live.spec.serial_number}-{uuid.uuid4().hex[:6]}"
        options = MqttOptions(host=self.host, port=self.port, client_id=client_id,
                              keepalive_s=self.keepalive_s, connect_timeout_s=timeout_s, reconnect_max_s=2.0,
                              will=LastWill(self._topic(live, "connection"), will, qos=1, retain=True))
        client = MqttClient(options, on_message=lambda m: live.inbox.put((m.topic, m.payload)), auto_ack=True,
                            on_connect=lambda _present: live.presence_due.set())
        live.client = client
        client.start()
        try:
            client.subscribe([self._topic(live, "order"), self._topic(live, "instantActions")], qos=0,
                             timeout_s=timeout_s)
        except LinkError:
            client.close(disconnect=False)
            raise

    # --- the fleet's thread ---------------------------------------------------------------------------------

    def _run(self) -> None:
        last = time.monotonic()
        while not self._stop.wait(TICK_S):
            now = time.monotonic()
            for live in self.vehicles.values():
                try:
                    self._tick(live, now, now - last)
                except Exception:  # one vehicle's trouble never stops the others: counted, the first one logged
                    live.spec.dropped["tick failed"] += 1
                    if live.spec.dropped["tick failed"] == 1:
                        log.exception("simulated vda5050 vehicle %s: tick failed; more are only counted",
                                      live.spec.vehicle.robot_id)
            last = now

    def _tick(self, live: _Live, now: float, dt_s: float) -> None:
        if live.presence_due.is_set():
            live.presence_due.clear()
            self._presence(live)
        while True:
            try:
                topic, payload = live.inbox.get_nowait()
            except queue.Empty:
                break
            self._receive(live, topic, payload)
        self._advance(live, now, dt_s)
        due = now - live.last_state >= self.state_period_s
        if live.book.take_changed() or due:
            self._state(live)
        self._visualize(live, now)

    def _receive(self, live: _Live, topic: str, payload: bytes) -> None:
        """An order or instantActions: to the order book; a malformed one rejected (an error in state), counted."""
        name = topic.rsplit("/", 1)[-1]
        live.spec.received[name] += 1
        try:
            message: Order | InstantActions = (decode(name, payload, Order) if name == "order"
                                               else decode(name, payload, InstantActions))
        except MessageInvalid as exc:
            self._drop(live, f"malformed {name}", f"{topic}: {exc}")
            live.book.malformed(f"{exc.field or '<message>'}: {exc.problem}")
            return
        if isinstance(message, Order):
            self._apply(live, live.book.order(message))
            return
        self._apply(live, live.book.instant(message))
        for action in message.actions:
            if action.action_type == "stateRequest":
                self._state(live)
            elif action.action_type == "factsheetRequest":
                self._factsheet(live)

    def _apply(self, live: _Live, effects: list[Effect]) -> None:
        """Carry out what the order book asks: a drive starts, an action starts its clock, a stop ends either."""
        pending = list(effects)
        while pending:
            effect = pending.pop(0)
            if isinstance(effect, Drive):
                live.drive = effect
            elif isinstance(effect, Run):
                live.action = (effect, time.monotonic() + self.action_s)
            elif isinstance(effect, Stop):
                if live.drive is not None:
                    live.drive = None
                    pending += live.book.arrived(False, "stopped", self._position(live))
                elif live.action is not None:
                    run, _ends = live.action
                    live.action = None
                    pending += live.book.action_ended(run.action.action_id, False, "cancelled")

    def _advance(self, live: _Live, now: float, dt_s: float) -> None:
        """Move toward the node ahead (arrived or given up: the order book says what next); end a due action."""
        if live.drive is not None:
            where = live.drive.node.node_position
            if where is None:  # the order book refuses released nodes without a position
                live.drive = None
                self._apply(live, live.book.arrived(False, "the node has no position"))
                return
            leg = live.base.step(where.x, where.y, dt_s)
            live.book.moved(self._position(live))
            if leg.arrived or leg.failed:
                live.drive = None
                self._apply(live, live.book.arrived(leg.arrived, leg.failed, self._position(live)))
        elif live.action is not None and now >= live.action[1]:
            run, _ends = live.action
            live.action = None
            self._apply(live, live.book.action_ended(run.action.action_id, True))

    @staticmethod
    def _position(live: _Live) -> Position:
        base = live.base
        return Position(base.x, base.y, base.yaw, base.frame)

    # --- publishing -----------------------------------------------------------------------------------------

    def _presence(self, live: _Live) -> None:
        self._publish(live, "connection", self._encode(live, "connection", lambda h: Connection(
            **h, connection_state="ONLINE")))
        self._factsheet(live)
        self._state(live)

    def _factsheet(self, live: _Live) -> None:
        self._publish(live, "factsheet", self._encode(live, "factsheet", lambda h: factsheet(
            h, actions=live.spec.actions, series_name="swarm_bridge demo AGV", speed_max_mps=live.base.speed_mps,
            state_period_s=self.state_period_s, min_state_interval_s=TICK_S)))

    def _state(self, live: _Live) -> None:
        live.last_state = time.monotonic()
        self._publish(live, "state", self._encode(live, "state", lambda h: live.book.state(h, battery=90.0)))

    def _visualize(self, live: _Live, now: float) -> None:
        """visualization (6.13): the position while it changes, at most `visualization_hz` a second."""
        if not self.visualization_hz or now - live.last_visualization < 1.0 / self.visualization_hz:
            return
        seen = (live.base.x, live.base.y, live.base.yaw)
        if seen == live.last_seen:
            return
        live.last_seen, live.last_visualization = seen, now
        position = live.book.agv_position()
        self._publish(live, "visualization", self._encode(live, "visualization", lambda h: Visualization(
            **h, agv_position=position)))

    def _topic(self, live: _Live, name: str) -> str:
        return self.topics.topic(live.spec.vehicle, TOPICS[name].name)

    @staticmethod
    def _encode(live: _Live, name: str, build: Callable[[dict[str, Any]], VdaMessage]) -> bytes:
        return encode(build(live.headers.header(live.spec.vehicle, name, time.time_ns())))

    def _publish(self, live: _Live, name: str, payload: bytes) -> None:
        """At the topic's QoS and retain flag, never waiting; a message not sent is counted (the next state says
        it all again)."""
        spec = TOPICS[name]
        assert live.client is not None
        try:
            live.client.publish(self._topic(live, name), payload, qos=spec.qos, retain=spec.retain, timeout_s=0)
        except SwarmBridgeError as exc:  # a full window, a broker gone, a packet too large
            self._drop(live, f"{name} not published", str(exc))
            return
        live.spec.sent[name] += 1

    @staticmethod
    def _drop(live: _Live, reason: str, detail: str) -> None:
        live.spec.dropped[reason] += 1
        if live.spec.dropped[reason] == 1:
            log.warning("simulated vda5050 vehicle %s: dropped 1 (%s: %s); more are only counted",
                        live.spec.vehicle.robot_id, reason, detail)

