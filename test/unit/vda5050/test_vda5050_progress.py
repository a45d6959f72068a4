"""What a vehicle's `state` says of an order (sections 6.6.3, 6.6.4, 6.10) and what `connection` says of the vehicle
(section 6.14): pending, running with progress, finished, failed, rejected, cancelled; online or why not."""

from __future__ import annotations

from dataclasses import replace

from vda_docs import connection_doc, state_doc

from swarm_bridge.vda5050 import (
    Connection,
    GoalAction,
    HeaderCounter,
    OrderOutcome,
    State,
    VehicleId,
    Waypoint,
    build_order,
    presence,
    read_order,
)

AGV = VehicleId("acme", "agv1")
_, WATCH = build_order(AGV, "o1", [Waypoint("a", 0.0, 0.0, "map"), Waypoint("b", 4.0, 0.0, "map")],
                       [GoalAction("pick")], HeaderCounter(), 0)
PICK = WATCH.action_ids[0]


def state(**fields: object) -> State:
    return State.model_validate(state_doc(**fields))  # type: ignore[arg-type]


def test_another_order_in_the_state_is_pending() -> None:
    assert read_order(state(order_id="older"), WATCH).outcome is OrderOutcome.PENDING


def test_progress_counts_nodes_edges_and_actions_done() -> None:
    start = read_order(state(order_id="o1", nodes=[("b", 2)], edges=[("a->b", 1)], actions=[(PICK, "pick", "WAITING")]),
                       WATCH)
    assert (start.outcome, start.progress) == (OrderOutcome.RUNNING, 0.0)
    there = read_order(state(order_id="o1", actions=[(PICK, "pick", "RUNNING")]), WATCH)
    assert there.outcome is OrderOutcome.RUNNING and abs(there.progress - 2 / 3) < 1e-9
    done = read_order(state(order_id="o1", actions=[(PICK, "pick", "FINISHED")]), WATCH)
    assert (done.outcome, done.progress) == (OrderOutcome.FINISHED, 1.0)


def test_a_failed_action_fails_the_order_with_its_description() -> None:
    report = read_order(state(order_id="o1", actions=[(PICK, "pick", "FAILED")],
                              actionStates=[{"actionId": PICK, "actionType": "pick", "actionStatus": "FAILED",
                                             "resultDescription": "station empty"}]), WATCH)
    assert report.outcome is OrderOutcome.FAILED and report.reason == "action pick failed: station empty"


def test_an_order_error_naming_the_order_is_a_rejection() -> None:
    error = {"errorType": "orderUpdateError", "errorLevel": "WARNING", "errorDescription": "lower orderUpdateId",
             "errorReferences": [{"referenceKey": "orderId", "referenceValue": "o1"}]}
    report = read_order(state(order_id="older", errors=[error]), WATCH)
    assert report.outcome is OrderOutcome.REJECTED and report.reason == "orderUpdateError: lower orderUpdateId"
    stale = {**error, "errorReferences": [{"referenceKey": "orderId", "referenceValue": "o0"}]}
    assert read_order(state(order_id="older", errors=[stale]), WATCH).outcome is OrderOutcome.PENDING


def test_after_cancel_order_failed_actions_or_a_finished_cancel_mean_cancelled() -> None:
    cancelling = replace(WATCH, cancel_action_id="o1:cancel")
    stopped = state(order_id="o1", actions=[(PICK, "pick", "FAILED"), ("o1:cancel", "cancelOrder", "FINISHED")])
    assert read_order(stopped, cancelling).outcome is OrderOutcome.CANCELLED
    assert read_order(stopped, WATCH).outcome is OrderOutcome.FAILED  # not asked for: the order failed
    still = state(order_id="o1", nodes=[("b", 2)], edges=[("a->b", 1)],
                  actions=[(PICK, "pick", "WAITING"), ("o1:cancel", "cancelOrder", "RUNNING")])
    assert read_order(still, cancelling).outcome is OrderOutcome.RUNNING


def test_connection_states_are_presence_with_their_meaning() -> None:
    def of(value: str) -> tuple[bool, str]:
        now = presence(Connection.model_validate(connection_doc(state=value)))
        return now.online, now.reason

    assert of("ONLINE") == (True, "ONLINE")
    assert of("OFFLINE")[0] is False and "orderly" in of("OFFLINE")[1]
    assert of("CONNECTIONBROKEN")[0] is False and "Last Will" in of("CONNECTIONBROKEN")[1]
