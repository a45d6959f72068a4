"""Orders a master control sends (section 6.6): a path of waypoints as nodes and edges with sequence ids 0, 1, 2,
..., every node and edge released (no horizon), actions on the last node; orderUpdateId 0 for a new order.

The first node is where the vehicle stands (section 6.6.3.1: a temporary node at its position, so the vehicle
finds it trivially reachable); `OrderWatch` remembers what was sent so `progress` can read the vehicle's state."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from swarm_bridge.vda5050.errors import Vda5050Error
from swarm_bridge.vda5050.headers import HeaderCounter
from swarm_bridge.vda5050.models import Action, ActionParameter, Edge, Node, NodePosition, Order
from swarm_bridge.vda5050.topics import VehicleId

__all__ = ["GoalAction", "OrderWatch", "Waypoint", "build_order"]


@dataclass(frozen=True)
class Waypoint:
    """A node of the path: its id and position on a map (theta None: any heading)."""

    node_id: str
    x: float
    y: float
    map_id: str
    theta: float | None = None
    allowed_deviation_xy: float | None = None


@dataclass(frozen=True)
class GoalAction:
    """An action the vehicle runs on the last node (e.g. `pick` with its parameters), HARD-blocking by default."""

    action_type: str
    parameters: tuple[tuple[str, str], ...] = ()
    blocking_type: str = "HARD"


@dataclass(frozen=True)
class OrderWatch:
    """What the master sent in one order: ids of its nodes, edges and actions, and the cancel sent for it (if any)."""

    vehicle: VehicleId
    order_id: str
    order_update_id: int
    node_ids: tuple[tuple[str, int], ...]  # (nodeId, sequenceId)
    edge_ids: tuple[tuple[str, int], ...]
    action_ids: tuple[str, ...]
    cancel_action_id: str = ""

    @property
    def steps(self) -> int:
        """Nodes after the first, edges and actions: what the vehicle works through."""
        return max(1, len(self.node_ids) - 1 + len(self.edge_ids) + len(self.action_ids))


def build_order(vehicle: VehicleId, order_id: str, path: Sequence[Waypoint], actions: Sequence[GoalAction],
                header: HeaderCounter, now_ns: int) -> tuple[Order, OrderWatch]:
    """An order along `path` (at least the vehicle's own position and one goal), `actions` on the last node."""
    if len(path) < 2:
        raise Vda5050Error(f"vda5050 order {order_id}: a path needs the vehicle's position and at least one goal "
                           f"(got {len(path)} waypoints)")
    for point in path:
        if not all(math.isfinite(v) for v in (point.x, point.y, point.theta or 0.0)):
            raise Vda5050Error(f"vda5050 order {order_id}: node {point.node_id}: x, y and theta must be finite "
                               f"(got {point.x}, {point.y}, {point.theta})")
    last = len(path) - 1
    nodes: list[Node] = []
    edges: list[Edge] = []
    goal_actions = [Action(action_type=a.action_type, action_id=f"{order_id}:{i}:{a.action_type}",
                           blocking_type=a.blocking_type,
                           action_parameters=[ActionParameter(key=k, value=v) for k, v in a.parameters] or None)
                    for i, a in enumerate(actions)]
    for i, point in enumerate(path):
        position = NodePosition(x=point.x, y=point.y, map_id=point.map_id, theta=point.theta,
                                allowed_deviation_x_y=point.allowed_deviation_xy)
        nodes.append(Node(node_id=point.node_id, sequence_id=2 * i, released=True,
                          actions=goal_actions if i == last else [], node_position=position))
        if i < last:
            nxt = path[i + 1]
            edges.append(Edge(edge_id=f"{point.node_id}->{nxt.node_id}", sequence_id=2 * i + 1, released=True,
                              start_node_id=point.node_id, end_node_id=nxt.node_id, actions=[]))
    order = Order(**header.header(vehicle, "order", now_ns), order_id=order_id, order_update_id=0, nodes=nodes,
                  edges=edges)
    watch = OrderWatch(vehicle, order_id, 0, tuple((n.node_id, n.sequence_id) for n in nodes),
                       tuple((e.edge_id, e.sequence_id) for e in edges), tuple(a.action_id for a in goal_actions))
    return order, watch
