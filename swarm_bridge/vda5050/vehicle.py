"""The vehicle's side of VDA 5050 without sockets or ROS: which orders it takes (sections 6.6.2-6.6.4: new orders
only when idle, updates stitched on the decision point, lower orderUpdateIds and malformed orders rejected with
errors), how it works through them (drive to a node, run its actions, node by node) and its `state` (6.10).

`OrderBook` says what to do as effects (`Drive`, `Run`, `Stop`); the caller (ros/vda_vehicle.py) carries them out
and tells it how they ended (`arrived`, `action_ended`)."""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from swarm_bridge.vda5050.models import (
    Action,
    ActionState,
    AgvPosition,
    BatteryState,
    Edge,
    EdgeState,
    ErrorReference,
    Factsheet,
    InstantActions,
    Node,
    NodeState,
    Order,
    SafetyState,
    State,
    VehicleError,
)

__all__ = ["BUILT_IN", "INSTANT_TYPES", "PAUSE", "Drive", "Effect", "OrderBook", "Position", "Run", "Stop", "factsheet",
           "order_problems"]

DONE = frozenset({"FINISHED", "FAILED"})
MAX_ERRORS = 20  # rejections kept in `errors` at most (the oldest go first)
# Warnings reported until the vehicle takes an order (6.6.4): rejections, and a drive that failed.
CLEARED_BY_ORDER = frozenset({"validationError", "orderError", "orderUpdateError", "noOrderToCancel",
                              "unsupportedInstantAction", "navigationError"})


@dataclass(frozen=True)
class Position:
    """Where the vehicle is: on a map, heading theta (rad)."""

    x: float
    y: float
    theta: float
    map_id: str


@dataclass(frozen=True)
class Drive:
    """Drive to `node` (its nodePosition); answer with `OrderBook.arrived`."""

    order_id: str
    node: Node


@dataclass(frozen=True)
class Run:
    """Run `action` (an order's node or edge action, or an instant action) at `at`; answer with `action_ended`."""

    action: Action
    at: Node | None


@dataclass(frozen=True)
class Stop:
    """Cancel what is running (the drive or the action); its end still comes back through arrived/action_ended."""


Effect = Drive | Run | Stop


def order_problems(order: Order) -> list[tuple[str, str, str, str]]:
    """What makes an order unusable beyond its schema, as (errorType, referenceKey, referenceValue, description):
    validationError for a broken structure (sequence ids, edges not joining their nodes, a released part after an
    unreleased one), empty when it is well formed."""
    found: list[tuple[str, str, str, str]] = []
    bad = ("validationError", "orderId", order.order_id)
    if not order.nodes:
        return [(*bad, "an order needs at least one node")]
    if len(order.edges) != len(order.nodes) - 1:
        found.append((*bad, f"{len(order.nodes)} nodes need {len(order.nodes) - 1} edges (got {len(order.edges)})"))
    first = order.nodes[0].sequence_id
    for i, node in enumerate(order.nodes):
        if node.sequence_id != first + 2 * i:
            found.append((*bad, f"node {node.node_id}: sequenceId {node.sequence_id}, expected {first + 2 * i}"))
    for i, edge in enumerate(order.edges[: len(order.nodes) - 1]):
        start, end = order.nodes[i], order.nodes[i + 1]
        if edge.sequence_id != first + 2 * i + 1:
            found.append((*bad, f"edge {edge.edge_id}: sequenceId {edge.sequence_id}, expected {first + 2 * i + 1}"))
        if (edge.start_node_id, edge.end_node_id) != (start.node_id, end.node_id):
            found.append((*bad, f"edge {edge.edge_id}: joins {edge.start_node_id} -> {edge.end_node_id}, not "
                          f"{start.node_id} -> {end.node_id}"))
    parts = _parts(order)
    if not parts[0].released:
        found.append((*bad, "the first node must be released (it is the start of the base)"))
    seen_horizon = False
    for part in parts:
        seen_horizon = seen_horizon or not part.released
        if seen_horizon and part.released:
            found.append((*bad, f"sequenceId {part.sequence_id}: released after an unreleased node or edge "
                          "(the base comes first)"))
            break
    return found


def _parts(order: Order) -> list[Node | Edge]:
    """Nodes and edges in sequenceId order."""
    parts: list[Node | Edge] = [*order.nodes, *order.edges]
    return sorted(parts, key=lambda p: p.sequence_id)


@dataclass
class _ActionRun:
    """One action the vehicle holds: where it runs (node/edge sequenceId, None: instant) and its status."""

    action: Action
    sequence_id: int | None
    status: str = "WAITING"
    result: str = ""


@dataclass
class OrderBook:
    """One vehicle's orders: the current order's nodes and edges still ahead (horizon included), its actions'
    states, the last node traversed, rejections as errors; `actions` is the set of actionTypes it can run."""

    actions: Collection[str]
    deviation_m: float = 0.5
    order_id: str = ""
    order_update_id: int = 0
    last_node_id: str = ""
    last_node_sequence_id: int = 0
    nodes: list[Node] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)
    runs: dict[str, _ActionRun] = field(default_factory=dict)
    errors: list[VehicleError] = field(default_factory=list)
    position: Position | None = None
    driving: bool = False
    cancel_id: str = ""  # the cancelOrder running, until what it stops has ended
    cancelled: bool = False  # the current order was cancelled (a second cancelOrder finds no order)
    last_node: Node | None = None
    busy_with: str = ""  # "drive" or an actionId: what runs on the robot now
    paused: bool = False  # startPause: no driving until stopPause (actions go on)
    pause_id: str = ""  # the startPause running, until the drive it stopped has ended
    changed: bool = True  # something the state shows changed since `take_changed`

    # --- orders ---------------------------------------------------------------------------------------------

    def malformed(self, problem: str, order_id: str = "") -> None:
        """An order that is not JSON or breaks order.schema: rejected with a validationError (6.6.4.1)."""
        refs = [("topic", "order")] + ([("orderId", order_id)] if order_id else [])
        self._error("validationError", problem, refs)

    def order(self, order: Order) -> list[Effect]:
        """Take or reject an order by Figure 8 of section 6.6.2; the effects that start its work."""
        problems = order_problems(order) + self._unusable(order)
        if problems:
            kind = problems[0][0]
            self._error(kind, "; ".join(p[3] for p in problems if p[0] == kind),
                        [("orderId", order.order_id), *((p[1], p[2]) for p in problems if p[1] != "orderId")])
            return []
        first = order.nodes[0]
        if order.order_id == self.order_id and order.order_id:
            if order.order_update_id < self.order_update_id:
                self._error("orderUpdateError", f"orderUpdateId {order.order_update_id} is lower than the current "
                            f"{self.order_update_id} of order {self.order_id}",
                            [("orderId", order.order_id), ("orderUpdateId", str(order.order_update_id))])
                return []
            if order.order_update_id == self.order_update_id:
                return []  # the same order again (a master's resend): ignored
            if not self._continues(first):
                self._error("orderUpdateError", f"the first node {first.node_id} (sequenceId {first.sequence_id}) "
                            f"is not the decision point {self._decision_point()}",
                            [("orderId", order.order_id), ("nodeId", first.node_id)])
                return []
            return self._stitch(order)
        if self.busy:
            if not self.cancelled and self._continues(first):
                return self._stitch(order)  # a new orderId on the decision point of the running order
            self._error("orderError", f"order {order.order_id} refused: still executing order {self.order_id} "
                        "(cancel it first, or start the new order on its decision point)",
                        [("orderId", order.order_id)])
            return []
        far = self._too_far(first)
        if far:
            self._error("orderError", far, [("orderId", order.order_id), ("nodeId", first.node_id)])
            return []
        self.order_id, self.order_update_id = order.order_id, order.order_update_id
        self.nodes, self.edges, self.runs, self.cancelled = list(order.nodes), list(order.edges), {}, False
        self._accepted()
        self._hold_actions(order)
        self._traverse(first)
        return self._next()

    def _unusable(self, order: Order) -> list[tuple[str, str, str, str]]:
        """orderError (6.6.4.2): actions this vehicle cannot run, released nodes without a position."""
        found = []
        for part in _parts(order):
            for action in part.actions:
                if action.action_type not in self.actions:
                    found.append(("orderError", "actionType", action.action_type,
                                  f"action {action.action_id}: actionType {action.action_type} is not one this "
                                  f"vehicle runs ({', '.join(sorted(self.actions)) or 'none'})"))
        for node in order.nodes[1:]:
            if node.node_position is None:
                found.append(("orderError", "nodeId", node.node_id, f"node {node.node_id} has no nodePosition; "
                              "this vehicle drives to positions only"))
        return found

    def _continues(self, first: Node) -> bool:
        """Whether `first` is the current decision point: the last released node (or the last traversed node
        when the base is done)."""
        return (first.node_id, first.sequence_id) == self._decision_point_ids()

    def _decision_point_ids(self) -> tuple[str, int]:
        base = [n for n in self.nodes if n.released]
        if base:
            return base[-1].node_id, base[-1].sequence_id
        return self.last_node_id, self.last_node_sequence_id

    def _decision_point(self) -> str:
        node_id, sequence_id = self._decision_point_ids()
        return f"{node_id or '(none)'} (sequenceId {sequence_id})"

    def _too_far(self, first: Node) -> str:
        """Why the first node of a new order is not where the vehicle stands (4 of Figure 8); '' when it is."""
        where = first.node_position
        if self.position is None or where is None:
            return ""
        allowed = max(where.allowed_deviation_x_y or 0.0, self.deviation_m)
        gap = math.hypot(where.x - self.position.x, where.y - self.position.y)
        if gap <= allowed:
            return ""
        return (f"the first node {first.node_id} is {gap:.2f} m from the vehicle (allowed {allowed:g} m): start the "
                "order where the vehicle stands (section 6.6.3.1)")

    def _stitch(self, order: Order) -> list[Effect]:
        """Append an update (or a new orderId) on the decision point: the horizon is replaced, the stitching
        node keeps what the first order said of it."""
        stitch = order.nodes[0].sequence_id
        self.nodes = [n for n in self.nodes if n.released] + [n for n in order.nodes if n.sequence_id > stitch]
        self.edges = [e for e in self.edges if e.released] + [e for e in order.edges if e.sequence_id > stitch]
        self.runs = {k: r for k, r in self.runs.items()  # the old horizon's actions never ran: gone with it
                     if r.sequence_id is None or r.sequence_id <= stitch or r.status in DONE}
        self.order_id, self.order_update_id = order.order_id, order.order_update_id
        self._accepted()
        self._hold_actions(order, after=stitch)
        return self._next()

    def _hold_actions(self, order: Order, after: int = -1) -> None:
        for part in _parts(order):
            if part.sequence_id > after:
                for action in part.actions:
                    self.runs[action.action_id] = _ActionRun(action, part.sequence_id)

    def _accepted(self) -> None:
        """An order taken: the rejections (and a failed drive) reported until now are over (6.6.4)."""
        self.errors = [e for e in self.errors if e.error_type not in CLEARED_BY_ORDER]
        self.changed = True

    # --- instant actions ------------------------------------------------------------------------------------

    def instant(self, message: InstantActions) -> list[Effect]:
        """Instant actions (6.9): cancelOrder, stateRequest and factsheetRequest here; actionTypes the vehicle
        runs start at once; anything else FAILED with a WARNING."""
        out: list[Effect] = []
        for action in message.actions:
            if action.action_type == "cancelOrder":
                out += self._cancel(action)
            elif action.action_type in PAUSE:
                out += self._pause(action, pause=action.action_type == "startPause")
            elif action.action_type in BUILT_IN:
                self.runs[action.action_id] = _ActionRun(action, None, "FINISHED")
            elif action.action_type in self.actions and not self.busy_with:
                self.runs[action.action_id] = _ActionRun(action, None, "RUNNING")
                self.busy_with = action.action_id
                out.append(Run(action, None))
            else:
                why = ("the vehicle is busy" if action.action_type in self.actions
                       else "not an instant action this vehicle runs")
                self.runs[action.action_id] = _ActionRun(action, None, "FAILED", why)
                self._error("unsupportedInstantAction", f"instant action {action.action_type}: {why}",
                            [("actionId", action.action_id), ("actionType", action.action_type)])
            self.changed = True
        return out

    def _cancel(self, action: Action) -> list[Effect]:
        """cancelOrder (6.6.3): waiting actions FAILED, what runs stopped; FINISHED once it has ended."""
        if not self.busy or self.cancelled:
            self.runs[action.action_id] = _ActionRun(action, None, "FAILED", "no order to cancel")
            self._error("noOrderToCancel", "cancelOrder with no order to cancel", [("actionId", action.action_id)])
            return []
        self.cancelled = True
        for run in self.runs.values():
            if run.status == "WAITING" and run.sequence_id is not None:
                run.status, run.result = "FAILED", "cancelled (cancelOrder)"
        self.nodes, self.edges = [], []
        self.runs[action.action_id] = _ActionRun(action, None, "RUNNING")
        self.cancel_id = action.action_id
        if self.busy_with:
            return [Stop()]
        self._cancel_done()
        return []

    def _pause(self, action: Action, *, pause: bool) -> list[Effect]:
        """startPause: the drive stops (FINISHED once it has), no new drive starts, running actions go on;
        stopPause: FINISHED, and the order goes on (the drive to the node ahead starts again)."""
        self.paused = pause
        self.runs[action.action_id] = _ActionRun(action, None, "FINISHED")
        if pause and self.busy_with == "drive":
            self.runs[action.action_id].status = "RUNNING"
            self.pause_id = action.action_id
            return [Stop()]
        return [] if pause else self._next()

    def _cancel_done(self) -> None:
        if self.cancel_id:
            self.runs[self.cancel_id].status = "FINISHED"
            self.cancel_id = ""

    # --- what the robot did ---------------------------------------------------------------------------------

    def arrived(self, ok: bool, reason: str = "", position: Position | None = None) -> list[Effect]:
        """The drive to the next node ended: reached (the node is traversed, its actions start) or not (the
        vehicle stops there, a WARNING error says why; the master cancels the order)."""
        self.driving, self.busy_with, self.changed = False, "", True
        if position is not None:
            self.position = position
        if self.cancel_id:
            self._cancel_done()
            return []
        if self.pause_id and not ok:  # stopped by startPause: the node is still ahead, no error
            self.runs[self.pause_id].status, self.pause_id = "FINISHED", ""
            return []
        if self.pause_id:
            self.runs[self.pause_id].status, self.pause_id = "FINISHED", ""
        target = self._next_node()
        if target is None:
            return []
        if not ok:
            self._error("navigationError", f"driving to node {target.node_id} failed: {reason}",
                        [("orderId", self.order_id), ("nodeId", target.node_id)], known=False)
            return []
        self._traverse(target)
        return self._next()

    def action_ended(self, action_id: str, ok: bool, reason: str = "") -> list[Effect]:
        """An action ended: FINISHED or FAILED (with `reason`); the order goes on."""
        run = self.runs.get(action_id)
        if self.busy_with == action_id:
            self.busy_with = ""
        if run is not None:
            run.status = "FINISHED" if ok else "FAILED"
            run.result = reason if not ok else ""
        self.changed = True
        if self.cancel_id:
            self._cancel_done()
            return []
        return self._next()

    def moved(self, position: Position) -> None:
        """The robot's position (from its action's feedback)."""
        self.position = position

    # --- working through the order --------------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        """Executing an order or waiting for its update (3 of Figure 8): nodes ahead, or actions not ended."""
        return bool(self.nodes) or any(r.status not in DONE for r in self.runs.values() if r.sequence_id is not None)

    def _traverse(self, node: Node) -> None:
        """`node` reached (6.10.2): off nodeStates, the edge to it off edgeStates, lastNode set."""
        self.nodes = [n for n in self.nodes if n.sequence_id != node.sequence_id]
        self.edges = [e for e in self.edges if e.sequence_id >= node.sequence_id]
        self.last_node_id, self.last_node_sequence_id, self.last_node = node.node_id, node.sequence_id, node
        if node.node_position is not None and self.position is None:
            p = node.node_position
            self.position = Position(p.x, p.y, p.theta or 0.0, p.map_id)
        self.changed = True

    def _next_node(self) -> Node | None:
        return self.nodes[0] if self.nodes else None

    def _next(self) -> list[Effect]:
        """What starts now: the next waiting action of the last node or the edge ahead, else the drive to the
        next released node; nothing while something runs or the base is done."""
        if self.busy_with or self.cancel_id:
            return []
        at = self.last_node_sequence_id
        node = self._next_node()
        for where in (at, at + 1):
            if where == at + 1 and (node is None or not node.released):
                break
            for action_id, run in self.runs.items():
                if run.sequence_id == where and run.status == "WAITING":
                    run.status, self.busy_with, self.changed = "RUNNING", action_id, True
                    return [Run(run.action, self.last_node if where == at else node)]
        if node is None or not node.released or self.paused:
            return []
        self.driving, self.busy_with, self.changed = True, "drive", True
        return [Drive(self.order_id, node)]

    def _error(self, error_type: str, description: str, refs: list[tuple[str, str]], *, known: bool = True) -> None:
        """One WARNING in `errors` (a rejection until an order is taken; `known` False: any other warning)."""
        self.errors.append(VehicleError(error_type=error_type, error_level="WARNING", error_description=description,
                                        error_references=[ErrorReference(reference_key=k, reference_value=v)
                                                          for k, v in refs]))
        del self.errors[:-MAX_ERRORS]
        self.changed = True

    # --- state ----------------------------------------------------------------------------------------------

    def take_changed(self) -> bool:
        """Whether the state changed since the last call (a state message is due)."""
        changed, self.changed = self.changed, False
        return changed

    def agv_position(self) -> AgvPosition | None:
        """Where the vehicle is, as state and visualization report it (None before it knows)."""
        where = self.position
        return None if where is None else AgvPosition(x=where.x, y=where.y, theta=where.theta, map_id=where.map_id,
                                                      position_initialized=True)

    def state(self, header: dict[str, Any], *, battery: float = 100.0) -> State:
        """The state message (6.10.6) with `header` (HeaderCounter.header of topic state)."""
        position = self.agv_position()
        return State(
            **header, order_id=self.order_id, order_update_id=self.order_update_id, last_node_id=self.last_node_id,
            last_node_sequence_id=self.last_node_sequence_id,
            node_states=[NodeState(node_id=n.node_id, sequence_id=n.sequence_id, released=n.released,
                                   node_position=n.node_position.wire() if n.node_position else None)
                         for n in self.nodes],
            edge_states=[EdgeState(edge_id=e.edge_id, sequence_id=e.sequence_id, released=e.released)
                         for e in self.edges],
            driving=self.driving,
            action_states=[ActionState(action_id=i, action_type=r.action.action_type, action_status=r.status,
                                       result_description=r.result or None) for i, r in self.runs.items()],
            battery_state=BatteryState(battery_charge=battery, charging=False), operating_mode="AUTOMATIC",
            errors=list(self.errors), safety_state=SafetyState(e_stop="NONE", field_violation=False),
            agv_position=position, paused=self.paused)


PAUSE = frozenset({"startPause", "stopPause"})

# Instant actions the vehicle answers itself (the ROS side publishes what they ask for): FINISHED at once.
BUILT_IN = frozenset({"stateRequest", "factsheetRequest"})

# The instant actions every vehicle on an OrderBook answers (its factsheet lists them with scope INSTANT).
INSTANT_TYPES = ("cancelOrder", "startPause", "stopPause", "stateRequest", "factsheetRequest")


def factsheet(header: dict[str, Any], *, actions: Collection[str], series_name: str, speed_max_mps: float,
              state_period_s: float, min_state_interval_s: float) -> Factsheet:
    """The factsheet (6.15) of a vehicle on an OrderBook: its actionTypes (node, edge, instant) and the instant
    actions it answers; geometry and limits are placeholders. Shared by the ROS vehicle and the simulated one."""
    listed = [{"actionType": t, "actionScopes": ["NODE", "EDGE", "INSTANT"]} for t in actions]
    listed += [{"actionType": t, "actionScopes": ["INSTANT"]} for t in INSTANT_TYPES]
    return Factsheet(
        **header,
        type_specification={"seriesName": series_name, "agvKinematic": "DIFF", "agvClass": "CARRIER",
                            "maxLoadMass": 0.0, "localizationTypes": ["NATURAL"], "navigationTypes": ["AUTONOMOUS"]},
        physical_parameters={"speedMin": 0.0, "speedMax": speed_max_mps, "accelerationMax": 1.0,
                             "decelerationMax": 1.0, "heightMax": 1.0, "width": 1.0, "length": 1.0},
        protocol_limits={"maxStringLens": {}, "maxArrayLens": {}, "timing": {
            "minOrderInterval": 0.1, "minStateInterval": min_state_interval_s,
            "defaultStateInterval": state_period_s}},
        protocol_features={"optionalParameters": [], "agvActions": listed},
        agv_geometry={}, load_specification={})
