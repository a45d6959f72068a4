"""What a vehicle's `state` says of an order the master sent (sections 6.6.3, 6.6.4, 6.10): not seen yet, running
(with progress), finished, failed, rejected (an order error naming it) or cancelled; and the vehicle's presence from
`connection` (section 6.14)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from swarm_bridge.vda5050.models import Connection, State
from swarm_bridge.vda5050.orders import OrderWatch

__all__ = ["ORDER_ERRORS", "OrderOutcome", "OrderReport", "Presence", "presence", "read_order"]

# errorTypes by which a vehicle refuses an order (section 6.6.4); the master matches them by their orderId reference.
ORDER_ERRORS = frozenset({"validationError", "orderError", "orderUpdateError"})


class OrderOutcome(str, Enum):
    PENDING = "pending"  # the vehicle's state does not show this order (yet)
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    REJECTED = "rejected"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class OrderReport:
    """An order's outcome; `started`: the vehicle drives it or works on its actions (not only holds it)."""

    outcome: OrderOutcome
    progress: float = 0.0
    reason: str = ""
    started: bool = False


def read_order(state: State, watch: OrderWatch) -> OrderReport:
    """The order's outcome by this state: rejection first (an order error naming its orderId), then the actions'
    states (a FAILED one fails the order, or cancels it when the master asked), then nodes and edges left."""
    for error in state.errors:
        if error.error_type in ORDER_ERRORS and error.refers_to("orderId", watch.order_id):
            return OrderReport(OrderOutcome.REJECTED, 0.0,
                               f"{error.error_type}: {error.error_description or 'no description'}")
    if state.order_id != watch.order_id:
        return OrderReport(OrderOutcome.PENDING)
    actions = {a.action_id: a for a in state.action_states}
    cancel = actions.get(watch.cancel_action_id) if watch.cancel_action_id else None
    mine = [actions[i] for i in watch.action_ids if i in actions]
    failed = [a for a in mine if a.action_status == "FAILED"]
    if watch.cancel_action_id and (failed or (cancel is not None and cancel.action_status == "FINISHED")):
        return OrderReport(OrderOutcome.CANCELLED, 0.0, "cancelled by master control (cancelOrder)")
    if failed:
        first = failed[0]
        return OrderReport(OrderOutcome.FAILED, 0.0, f"action {first.action_type or first.action_id} failed: "
                           f"{first.result_description or 'no result description'}")
    nodes = {(n.node_id, n.sequence_id) for n in state.node_states}
    edges = {(e.edge_id, e.sequence_id) for e in state.edge_states}
    left = sum(n in nodes for n in watch.node_ids[1:]) + sum(e in edges for e in watch.edge_ids)
    finished = sum(a.action_status == "FINISHED" for a in mine)
    done = len(watch.node_ids) - 1 + len(watch.edge_ids) - left + finished
    if left == 0 and finished == len(watch.action_ids):
        return OrderReport(OrderOutcome.FINISHED, 1.0, started=True)
    started = done > 0 or state.driving or any(a.action_status != "WAITING" for a in mine)
    return OrderReport(OrderOutcome.RUNNING, min(done / watch.steps, 0.99), started=started)


@dataclass(frozen=True)
class Presence:
    online: bool
    reason: str


_PRESENCE = {"ONLINE": Presence(True, "ONLINE"),
             "OFFLINE": Presence(False, "OFFLINE (the vehicle disconnected in an orderly way)"),
             "CONNECTIONBROKEN": Presence(False, "CONNECTIONBROKEN (connection lost: the vehicle's Last Will)")}


def presence(connection: Connection) -> Presence:
    """Online or not by a `connection` message (ONLINE; OFFLINE or CONNECTIONBROKEN, with what it means)."""
    return _PRESENCE[connection.connection_state]
