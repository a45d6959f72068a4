"""The coordinator's VDA 5050 profile, without sockets (both runners use it): plain VDA 5050 2.1 vehicles (no ROS, no
swarm_bridge) as robots of the fleet.

In: `state` (fleet view: position, battery, mode, paused; the order's progress, done, failed, rejected or cancelled
as task status), `connection` (presence; CONNECTIONBROKEN is the vehicle's Last Will) and `factsheet` (the actions it
can do: a task kind whose action it does not list is not offered to it). Out: an `order` per assignment
(the vehicle's position, the task's target, the kind's action there), `instantActions` cancelOrder for a cancel,
startPause/stopPause on request. A vehicle's robot id is `manufacturer/serialNumber`."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from swarm_bridge.config.coordinator import Vda5050Config
from swarm_bridge.coordinator.core.dispatch import ASSIGN, Command
from swarm_bridge.coordinator.core.fleet import FleetView, RobotMode, RobotView
from swarm_bridge.coordinator.core.records import StatusReport
from swarm_bridge.coordinator.core.tasks import TaskState
from swarm_bridge.vda5050 import (
    TOPICS,
    Connection,
    Factsheet,
    GoalAction,
    HeaderCounter,
    MessageInvalid,
    OfficialSchemas,
    OrderOutcome,
    OrderWatch,
    State,
    Vda5050Error,
    Vda5050Topics,
    VehicleId,
    Waypoint,
    build_order,
    decode,
    encode,
    instant_action,
    presence,
    read_order,
)
from swarm_bridge.vda5050.models import Message

__all__ = ["Outgoing", "UnknownVehicle", "VdaVehicles"]

# What an order's outcome is as a task status (PENDING: nothing to report yet).
OUTCOMES: dict[OrderOutcome, TaskState] = {
    OrderOutcome.RUNNING: TaskState.RUNNING, OrderOutcome.FINISHED: TaskState.DONE,
    OrderOutcome.FAILED: TaskState.FAILED, OrderOutcome.REJECTED: TaskState.REJECTED,
    OrderOutcome.CANCELLED: TaskState.CANCELLED}
# operatingMode -> robot mode while it works normally (section 6.10.6); e-stop and FATAL errors come first.
MODES: dict[str, RobotMode] = {"AUTOMATIC": RobotMode.AUTONOMOUS, "SEMIAUTOMATIC": RobotMode.AUTONOMOUS,
                               "MANUAL": RobotMode.MANUAL, "SERVICE": RobotMode.MANUAL, "TEACHIN": RobotMode.MANUAL}


# A vehicle holds one order at a time (a new orderId while it executes one is refused, section 6.6.2): the
# coordinator gives it its next task once the last has ended.
ORDERS_AT_ONCE = 1


class UnknownVehicle(Vda5050Error, LookupError):
    """A vehicle this coordinator does not drive: of a manufacturer vda5050.manufacturers does not list (its messages
    are counted and ignored), or not seen yet (pause)."""


@dataclass(frozen=True)
class Outgoing:
    """One MQTT publish for a vehicle, with the spec's QoS and retain flag for its topic."""

    topic: str
    payload: bytes
    qos: int
    retain: bool


class VdaVehicles:
    """The vehicles seen on the site's broker, the orders sent to them, and the messages that say so."""

    def __init__(self, config: Vda5050Config, capabilities: Mapping[str, list[str]], *,
                 offline_grace_ns: int = 0) -> None:
        """`offline_grace_ns`: how long a vehicle whose connection broke keeps its task (it drives its order on
        without the broker, section 6.2), counted from its last state; the site gives robot_offline_after_s."""
        self.config = config
        self.offline_grace_ns = offline_grace_ns
        self.topics = Vda5050Topics(config.interface_name, config.major_version)
        self.schemas = None if config.schemas is None else OfficialSchemas(config.schemas)
        self.capabilities = {kind: frozenset(caps) for kind, caps in capabilities.items()}
        self.headers = HeaderCounter()
        self.states: dict[str, State] = {}  # robot id -> its latest state
        self.orders: dict[str, OrderWatch] = {}  # task id -> the order sent for it (until it ends)
        self.by_vehicle: dict[str, set[str]] = {}  # robot id -> task ids of its watched orders
        self.looked_up: dict[str, str] = {}  # robot id -> the last unwatched orderId asked about (`adopt`)
        self.heard: dict[str, int] = {}  # robot id -> when its latest state came (ns)
        self.can_do: dict[str, frozenset[str]] = {}  # robot id -> actionTypes its factsheet lists
        self.asked: dict[str, int] = {}  # robot id -> when a stateRequest last went to it (ns)

    @property
    def subscriptions(self) -> dict[str, str]:
        """Topic filter -> the input kind the site runner files it under."""
        return {self.topics.every_vehicle("state"): "vda_state",
                self.topics.every_vehicle("connection"): "vda_connection",
                self.topics.every_vehicle("factsheet"): "vda_factsheet"}

    def knows(self, robot_id: str) -> bool:
        return robot_id in self.states

    # -- in ---------------------------------------------------------------------------------------------

    def on_state(self, topic: str, payload: bytes, fleet: FleetView, now_ns: int,
                 adopt: Callable[[str, str], str | None] | None = None) -> list[StatusReport]:
        """Fold one `state` in: the vehicle into the fleet view, and a status report per order it says something
        new of. MessageInvalid (malformed, breaks the schema, another vehicle's) or UnknownVehicle otherwise.

        `adopt(robot_id, order_id)`: the task an order this process did not send belongs to (a coordinator
        restarted from its snapshot), asked once per order id; its watch is rebuilt from the state."""
        vehicle = self._vehicle(topic, "state")
        state = decode("state", payload, State, self.schemas)
        self._same_vehicle(vehicle, state, topic)
        robot_id = vehicle.robot_id
        self.states[robot_id] = state
        self.heard[robot_id] = now_ns
        watched = self.by_vehicle.setdefault(robot_id, set())
        if state.order_id and adopt is not None and self.looked_up.get(robot_id) != state.order_id and not any(
                self.orders[t].order_id == state.order_id for t in watched):
            self.looked_up[robot_id] = state.order_id
            task_id = adopt(robot_id, state.order_id)
            if task_id is not None:
                self._watch(task_id, _rebuilt(vehicle, state))
        fleet.put(self._view(fleet.get(robot_id), vehicle, state, now_ns))
        reports = []
        for task_id in sorted(watched):
            report = read_order(state, self.orders[task_id])
            status = OUTCOMES.get(report.outcome)
            if status is None:
                continue
            if status is not TaskState.RUNNING:
                self._unwatch(task_id)
            elif not report.started:
                status = TaskState.ACCEPTED
            reports.append(StatusReport(robot_id, task_id, status, report.reason, report.progress))
        return reports

    def on_connection(self, topic: str, payload: bytes, fleet: FleetView, now_ns: int) -> RobotView | None:
        """Fold one `connection` in as presence; None for an emptied retained message. A vehicle takes tasks
        from its first `state` on (which gives its kind and position)."""
        vehicle = self._vehicle(topic, "connection")
        if not payload:
            return None
        connection = decode("connection", payload, Connection, self.schemas)
        self._same_vehicle(vehicle, connection, topic)
        now = presence(connection)
        # Its kind and capabilities come with its first state: no task goes to a vehicle whose position is unknown.
        return fleet.on_presence(vehicle.robot_id, "online" if now.online else "offline", now.reason, now_ns)

    def on_factsheet(self, topic: str, payload: bytes, fleet: FleetView) -> None:
        """Fold a `factsheet` in: the actionTypes it lists (protocolFeatures.agvActions) limit the task kinds the
        vehicle is offered to those whose action (vda5050.actions) it can do."""
        vehicle = self._vehicle(topic, "factsheet")
        if not payload:
            return
        factsheet = decode("factsheet", payload, Factsheet, self.schemas)
        self._same_vehicle(vehicle, factsheet, topic)
        listed = factsheet.protocol_features.get("agvActions")
        if not isinstance(listed, list):
            raise MessageInvalid("factsheet", "protocolFeatures.agvActions", "must be a list of {actionType, ...}")
        robot_id = vehicle.robot_id
        self.can_do[robot_id] = frozenset(str(a.get("actionType")) for a in listed if isinstance(a, dict))
        robot = fleet.get(robot_id)
        if robot is not None and robot.kind:
            fleet.put(replace(robot, capabilities=self._capabilities(robot_id, robot.kind)))

    # -- out --------------------------------------------------------------------------------------------

    def command(self, command: Command, now_ns: int) -> list[Outgoing]:
        """An assignment as an `order`, a cancel as `instantActions` cancelOrder (only for an order it sent)."""
        vehicle = VehicleId.of_robot(command.robot_id)
        task = command.task
        if command.action == ASSIGN:
            order_id = command.command_id
            request = task.request
            action = self.config.actions.get(request.kind)
            goal = Waypoint(f"{order_id}:goal", request.target.x, request.target.y, self.config.map_id,
                            allowed_deviation_xy=self.config.goal_deviation_m)
            order, watch = build_order(vehicle, order_id, [self._here(vehicle, order_id), goal],
                                       [GoalAction(action, request.parameters)] if action else [], self.headers,
                                       now_ns)
            self._watch(task.task_id, watch)
            return [self._out(vehicle, "order", order)]
        sent = self.orders.get(task.task_id)
        if sent is None or sent.vehicle != vehicle:
            return []
        cancel_id = f"{sent.order_id}:cancel"
        self._watch(task.task_id, replace(sent, cancel_action_id=cancel_id))
        return [self._out(vehicle, "instantActions", instant_action(vehicle, "cancelOrder", cancel_id, self.headers,
                                                                    now_ns))]

    def quiet(self, fleet: FleetView, now_ns: int, stale_after_ns: int) -> list[Outgoing]:
        """stateRequest to each online vehicle silent for half of `stale_after_ns` (asked at most that often): a
        vehicle may send state only every 30 s (section 6.10) when the fleet counts a robot silent sooner."""
        half = stale_after_ns // 2
        out = []
        for robot_id, heard in self.heard.items():
            robot = fleet.get(robot_id)
            if robot is None or not robot.online or min(now_ns - heard, now_ns - self.asked.get(robot_id, 0)) < half:
                continue
            self.asked[robot_id] = now_ns
            vehicle = VehicleId.of_robot(robot_id)
            out.append(self._out(vehicle, "instantActions", instant_action(
                vehicle, "stateRequest", f"stateRequest:{now_ns}", self.headers, now_ns)))
        return out

    def pause(self, robot_id: str, paused: bool, now_ns: int) -> Outgoing:
        """startPause (or stopPause) for a known vehicle; UnknownVehicle when no state of it was seen."""
        if robot_id not in self.states:
            raise UnknownVehicle(f"no VDA 5050 vehicle {robot_id!r} has reported a state here; known: "
                                 f"{', '.join(sorted(self.states)) or 'none'}")
        vehicle = VehicleId.of_robot(robot_id)
        action = "startPause" if paused else "stopPause"
        return self._out(vehicle, "instantActions", instant_action(vehicle, action, f"{action}:{now_ns}",
                                                                   self.headers, now_ns))

    # -- helpers ----------------------------------------------------------------------------------------

    def _watch(self, task_id: str, watch: OrderWatch) -> None:
        old = self.orders.get(task_id)
        if old is not None and old.vehicle != watch.vehicle:
            self._unwatch(task_id)
        self.orders[task_id] = watch
        self.by_vehicle.setdefault(watch.vehicle.robot_id, set()).add(task_id)

    def _unwatch(self, task_id: str) -> None:
        watch = self.orders.pop(task_id, None)
        if watch is not None:
            self.by_vehicle.get(watch.vehicle.robot_id, set()).discard(task_id)

    def _vehicle(self, topic: str, name: str) -> VehicleId:
        parsed = self.topics.parse(topic)
        if parsed is None or parsed[1] != name:
            raise MessageInvalid(name, "topic", f"{topic} is not interfaceName/majorVersion/manufacturer/"
                                 f"serialNumber/{name} of {self.topics.interface_name}/{self.topics.major_version}")
        vehicle = parsed[0]
        if vehicle.manufacturer not in self.config.manufacturers:
            raise UnknownVehicle(f"vda5050 {topic}: manufacturer {vehicle.manufacturer!r} is not in "
                                 f"vda5050.manufacturers ({', '.join(sorted(self.config.manufacturers))}); add it "
                                 "with its robot kind to drive its vehicles")
        return vehicle

    def _capabilities(self, robot_id: str, kind: str) -> frozenset[str]:
        """The kind's capabilities, less those whose action the vehicle's factsheet (if seen) does not list."""
        can_do = self.can_do.get(robot_id)
        caps = self.capabilities[kind]
        if can_do is None:
            return caps
        return frozenset(c for c in caps if (action := self.config.actions.get(c)) is None or action in can_do)

    @staticmethod
    def _same_vehicle(vehicle: VehicleId, message: State | Connection | Factsheet, topic: str) -> None:
        if (message.manufacturer, message.serial_number) != (vehicle.manufacturer, vehicle.serial_number):
            raise MessageInvalid(topic.rsplit("/", 1)[-1], "serialNumber", f"{topic} carries the message of "
                                 f"{message.manufacturer}/{message.serial_number}")

    def _view(self, old: RobotView | None, vehicle: VehicleId, state: State, now_ns: int) -> RobotView:
        kind = self.config.manufacturers[vehicle.manufacturer]
        position = state.agv_position
        battery = state.battery_state
        mode = MODES[state.operating_mode]
        if state.safety_state.e_stop != "NONE":
            mode = RobotMode.EMERGENCY_STOP
        elif any(e.error_level == "FATAL" for e in state.errors):
            mode = RobotMode.ERROR
        elif mode is RobotMode.AUTONOMOUS and battery.charging:
            mode = RobotMode.CHARGING
        elif mode is RobotMode.AUTONOMOUS and not state.node_states and not state.driving:
            mode = RobotMode.IDLE
        base = old or RobotView(vehicle.robot_id)
        current = next((t for t in sorted(self.by_vehicle.get(vehicle.robot_id, ()))
                        if self.orders[t].order_id == state.order_id), "")
        return replace(base, kind=kind, capabilities=self._capabilities(vehicle.robot_id, kind),
                       capacity=ORDERS_AT_ONCE, offline_grace_ns=self.offline_grace_ns, mode=mode,
                       x=position.x if position else base.x, y=position.y if position else base.y,
                       battery_percent=battery.battery_charge, charging=battery.charging, current_task_id=current,
                       paused=bool(state.paused), last_seen_ns=max(base.last_seen_ns, now_ns))

    def _here(self, vehicle: VehicleId, order_id: str) -> Waypoint:
        """The order's first node: where the vehicle stands (its last node id, at its reported position)."""
        state = self.states.get(vehicle.robot_id)
        position = state.agv_position if state is not None else None
        node_id = (state.last_node_id if state is not None else "") or f"{order_id}:start"
        if position is None or not math.isfinite(position.x) or not math.isfinite(position.y):
            return Waypoint(node_id, 0.0, 0.0, self.config.map_id, allowed_deviation_xy=1e6)
        return Waypoint(node_id, position.x, position.y, position.map_id, theta=position.theta,
                        allowed_deviation_xy=self.config.goal_deviation_m)

    def _out(self, vehicle: VehicleId, name: str, message: Message) -> Outgoing:
        """The publish of `message` on `name` of `vehicle`, checked against the official schema when configured."""
        if self.schemas is not None:
            self.schemas.check(name, message.wire())
        spec = TOPICS[name]
        return Outgoing(self.topics.topic(vehicle, spec.name), encode(message), spec.qos, spec.retain)


def _rebuilt(vehicle: VehicleId, state: State) -> OrderWatch:
    """The watch of an order another run of this coordinator sent, from what the vehicle still has of it: the
    nodes, edges and actions left (those done are not known any more, so progress starts lower)."""
    order_id = state.order_id
    nodes = tuple(sorted(((n.node_id, n.sequence_id) for n in state.node_states), key=lambda n: n[1]))
    edges = tuple(sorted(((e.edge_id, e.sequence_id) for e in state.edge_states), key=lambda e: e[1]))
    actions = tuple(a.action_id for a in state.action_states
                    if a.action_id.startswith(f"{order_id}:") and a.action_id != f"{order_id}:cancel")
    return OrderWatch(vehicle, order_id, state.order_update_id, ((state.last_node_id, state.last_node_sequence_id),
                                                                 *nodes), edges, actions)
