"""The vehicle's order rules (VDA 5050 2.1 sections 6.6.2-6.6.4, 6.10.2) as plain logic: which orders it takes,
how it works through nodes and actions, cancelOrder, and the state it reports."""

from __future__ import annotations

from itertools import pairwise
from typing import Any

from swarm_bridge.vda5050 import InstantActions, Order
from swarm_bridge.vda5050.vehicle import Drive, OrderBook, Position, Run, Stop, order_problems

HEADER = {"header_id": 0, "timestamp": "2026-01-01T00:00:00.000Z", "version": "2.1.0", "manufacturer": "acme",
          "serial_number": "v1"}


def node(node_id: str, seq: int, x: float = 0.0, y: float = 0.0, *, released: bool = True,
         actions: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"nodeId": node_id, "sequenceId": seq, "released": released, "actions": actions or [],
            "nodePosition": {"x": x, "y": y, "mapId": "map"}}


def order(order_id: str, update: int, nodes: list[dict[str, Any]]) -> Order:
    edges = [{"edgeId": f"{a['nodeId']}-{b['nodeId']}", "sequenceId": a["sequenceId"] + 1,
              "released": b["released"], "startNodeId": a["nodeId"], "endNodeId": b["nodeId"], "actions": []}
             for a, b in pairwise(nodes)]
    return Order.model_validate({"headerId": 0, "timestamp": HEADER["timestamp"], "version": "2.1.0",
                                 "manufacturer": "acme", "serialNumber": "v1", "orderId": order_id,
                                 "orderUpdateId": update, "nodes": nodes, "edges": edges})


def instant(action_type: str, action_id: str) -> InstantActions:
    return InstantActions.model_validate({"headerId": 0, "timestamp": HEADER["timestamp"], "version": "2.1.0",
                                          "manufacturer": "acme", "serialNumber": "v1", "actions": [
                                              {"actionType": action_type, "actionId": action_id,
                                               "blockingType": "HARD"}]})


def error_types(book: OrderBook) -> list[str]:
    return [e.error_type for e in book.errors]


def test_a_new_order_counts_its_first_node_and_drives_node_by_node() -> None:
    book = OrderBook(actions={"pick"})
    pick = {"actionType": "pick", "actionId": "p1", "blockingType": "HARD"}
    effects = book.order(order("o1", 0, [node("a", 0), node("b", 2, 1.0), node("c", 4, 2.0, actions=[pick])]))
    assert [type(e) for e in effects] == [Drive] and effects[0].node.node_id == "b"  # type: ignore[union-attr]
    assert book.last_node_id == "a" and [n.node_id for n in book.nodes] == ["b", "c"] and book.driving
    assert [e.edge_id for e in book.edges] == ["a-b", "b-c"]
    effects = book.arrived(True)
    assert book.last_node_id == "b" and [e.edge_id for e in book.edges] == ["b-c"]
    assert effects[0].node.node_id == "c"  # type: ignore[union-attr]
    effects = book.arrived(True)
    assert isinstance(effects[0], Run) and effects[0].action.action_id == "p1" and effects[0].at is not None
    assert book.runs["p1"].status == "RUNNING" and book.busy
    assert book.action_ended("p1", True) == [] and not book.busy
    state = book.state(HEADER)
    assert state.node_states == [] and state.edge_states == [] and state.last_node_id == "c"
    assert [(a.action_id, a.action_status) for a in state.action_states] == [("p1", "FINISHED")]


def test_a_new_order_while_busy_is_refused_unless_it_starts_on_the_decision_point() -> None:
    book = OrderBook(actions=())
    book.order(order("o1", 0, [node("a", 0), node("b", 2, 1.0)]))
    assert book.order(order("o2", 0, [node("x", 0), node("y", 2, 3.0)])) == []
    assert error_types(book) == ["orderError"] and book.order_id == "o1"
    assert book.errors[0].refers_to("orderId", "o2")
    effects = book.order(order("o2", 0, [node("b", 2, 1.0), node("c", 4, 2.0)]))  # stitched on b
    assert book.order_id == "o2" and error_types(book) == [] and effects == []  # still driving to b
    assert [n.node_id for n in book.nodes] == ["b", "c"]


def test_updates_replace_the_horizon_and_lower_or_unstitched_updates_are_refused() -> None:
    book = OrderBook(actions=())
    book.order(order("o1", 0, [node("a", 0), node("b", 2, 1.0), node("c", 4, 2.0, released=False)]))
    book.arrived(True)  # at b, the decision point: waits
    assert not book.driving and [(n.node_id, n.released) for n in book.nodes] == [("c", False)]
    effects = book.order(order("o1", 1, [node("b", 2, 1.0), node("d", 4, 5.0)]))
    assert isinstance(effects[0], Drive) and effects[0].node.node_id == "d"
    assert [n.node_id for n in book.nodes] == ["d"] and book.order_update_id == 1
    assert book.order(order("o1", 1, [node("b", 2, 1.0), node("d", 4, 5.0)])) == []  # a resend: ignored
    assert error_types(book) == []
    book.order(order("o1", 0, [node("b", 2, 1.0), node("e", 4, 9.0)]))
    assert error_types(book) == ["orderUpdateError"] and book.order_update_id == 1
    book.order(order("o1", 2, [node("a", 0), node("e", 2, 9.0)]))
    assert error_types(book) == ["orderUpdateError", "orderUpdateError"]


def test_cancel_order_fails_waiting_actions_stops_the_drive_and_then_finds_no_order() -> None:
    book = OrderBook(actions={"pick"})
    pick = {"actionType": "pick", "actionId": "p1", "blockingType": "HARD"}
    book.order(order("o1", 0, [node("a", 0), node("b", 2, 9.0, actions=[pick])]))
    assert book.instant(instant("cancelOrder", "c1")) == [Stop()]
    assert book.runs["c1"].status == "RUNNING" and book.runs["p1"].status == "FAILED" and book.nodes == []
    assert book.arrived(False, "cancelled", Position(4.0, 0.0, 0.0, "map")) == []
    assert book.runs["c1"].status == "FINISHED" and not book.driving and book.order_id == "o1"
    book.instant(instant("cancelOrder", "c2"))
    assert book.runs["c2"].status == "FAILED" and error_types(book) == ["noOrderToCancel"]
    assert book.errors[0].refers_to("actionId", "c2")
    book.order(order("o2", 0, [node("here", 0, 4.0), node("a", 2, 0.0)]))
    assert book.order_id == "o2" and error_types(book) == []


def test_a_new_order_far_from_the_vehicle_or_with_unknown_actions_or_bad_structure_is_refused() -> None:
    book = OrderBook(actions={"pick"}, deviation_m=0.5)
    book.moved(Position(0.0, 0.0, 0.0, "map"))
    book.order(order("far", 0, [node("a", 0, 5.0), node("b", 2, 6.0)]))
    fly = {"actionType": "fly", "actionId": "f", "blockingType": "NONE"}
    book.order(order("fly", 0, [node("a", 0), node("b", 2, 1.0, actions=[fly])]))
    assert error_types(book) == ["orderError", "orderError"]
    assert book.errors[1].refers_to("actionType", "fly")
    broken = order("broken", 0, [node("a", 0), node("b", 4, 1.0)])
    assert [p[0] for p in order_problems(broken)] == ["validationError"]
    book.order(broken)
    book.malformed("nodes: required", "x")
    assert error_types(book)[2:] == ["validationError", "validationError"] and book.order_id == ""
    assert book.order(order("ok", 0, [node("a", 0), node("b", 2, 1.0)]))
    assert book.errors == []  # rejections are reported until an order is accepted


def test_a_failed_drive_stops_the_vehicle_with_a_warning_and_instant_actions_answer() -> None:
    book = OrderBook(actions={"pick"})
    book.order(order("o1", 0, [node("a", 0), node("b", 2, 1.0)]))
    assert book.arrived(False, "blocked") == []
    assert error_types(book) == ["navigationError"] and book.busy and book.last_node_id == "a"
    book.instant(instant("stateRequest", "s1"))
    book.instant(instant("dance", "d1"))
    assert book.runs["s1"].status == "FINISHED" and book.runs["d1"].status == "FAILED"
    assert book.take_changed() and not book.take_changed()
    book.instant(instant("cancelOrder", "c1"))
    book.order(order("o2", 0, [node("a", 0), node("b", 2, 1.0)]))
    assert book.order_id == "o2" and book.errors == []  # the failed drive's warning ends with the next order


def test_start_pause_stops_the_drive_and_stop_pause_drives_on() -> None:
    book = OrderBook(actions=())
    book.order(order("o1", 0, [node("a", 0), node("b", 2, 9.0)]))
    assert book.instant(instant("startPause", "p1")) == [Stop()]
    assert book.runs["p1"].status == "RUNNING" and book.state(HEADER).paused
    assert book.arrived(False, "cancelled") == []
    assert book.runs["p1"].status == "FINISHED" and error_types(book) == [] and book.last_node_id == "a"
    effects = book.instant(instant("stopPause", "p2"))
    assert isinstance(effects[0], Drive) and effects[0].node.node_id == "b" and not book.paused
    assert book.runs["p2"].status == "FINISHED"
    book.instant(instant("startPause", "p3"))
    assert book.arrived(True) == [] and book.last_node_id == "b"  # reached before the stop took: traversed
    assert book.runs["p3"].status == "FINISHED" and book.paused
