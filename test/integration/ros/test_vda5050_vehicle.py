"""A ROS robot as a VDA 5050 vehicle end to end: a test master control written from the specification
(test/support/vda_master.py) sends orders and instant actions over a real Mosquitto to a real robot bridge, which
drives a real rclpy NavigateToPose server node by node; every message on the wire is checked against the official
JSON Schemas, and the connection topic tells ONLINE, OFFLINE and the Last Will."""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from site_harness import wait_for
from vda_master import Master, action_state, errors_of, node, path
from vda_robot import PICK, VdaRobot
from vda_site import VdaSite
from vda_wire import SchemaCheck, WireTap

from swarm_bridge.brokers import Mosquitto
from swarm_bridge.coordinator.core.tasks import TaskState


class Rig:
    """The robot, its master control and a tap on every VDA 5050 topic."""

    def __init__(self, broker: Mosquitto, robot: VdaRobot, master: Master, tap: WireTap, schemas: Path) -> None:
        self.broker, self.robot, self.master, self.tap = broker, robot, master, tap
        self.check = SchemaCheck(schemas)

    def wire_problems(self) -> list[str]:
        return self.check.wire_problems(self.tap.snapshot())

    def online(self) -> dict[str, Any]:
        """Start the bridge; the vehicle's first state once it says ONLINE."""
        self.robot.start_bridge()
        try:
            self.master.wait_connection("ONLINE")
            return self.master.wait_state(lambda s: True, "any content")
        except AssertionError:
            raise AssertionError(self.robot.log()) from None


@pytest.fixture()
def rig_factory(mosquitto: Mosquitto, tmp_path: Path, ros_context: Any, ros_env: dict[str, str],
                vda5050_schemas: Path) -> Iterator[Callable[..., Rig]]:
    made: list[Rig] = []

    def make(**options: Any) -> Rig:
        robot = VdaRobot(mosquitto, tmp_path / f"robot{len(made)}", ros_context, ros_env, vda5050_schemas, **options)
        tap = WireTap(mosquitto.host, mosquitto.port)
        master = Master(mosquitto.host, mosquitto.port, robot.manufacturer, robot.serial)
        rig = Rig(mosquitto, robot, master, tap, vda5050_schemas)
        made.append(rig)
        return rig

    yield make
    for rig in made:
        rig.robot.close()
        rig.master.close()
        rig.tap.close()


def test_an_order_of_three_nodes_is_driven_to_done_with_node_progress_in_state(
        rig_factory: Callable[..., Rig]) -> None:
    rig = rig_factory()
    first = rig.online()
    assert first["orderId"] == "" and first["nodeStates"] == [] and first["operatingMode"] == "AUTOMATIC"
    # where it stands before any order, from the navigator's RobotState (vda5050.position)
    here = rig.master.wait_state(lambda s: "agvPosition" in s, "agvPosition from the position topic")
    assert here["agvPosition"]["mapId"] == "map" and abs(here["agvPosition"]["x"]) < 0.01
    wait = {"actionType": "wait_here", "actionId": "o1:wait", "blockingType": "HARD",
            "actionParameters": [{"key": "tree", "value": ""}]}
    nodes, edges = path([node("n0", 0, 0.0, 0.0), node("n1", 2, 4.0, 0.0), node("n2", 4, 4.0, 3.0, actions=[wait])])
    rig.master.order("o1", 0, nodes, edges)

    done = rig.master.wait_state(lambda s: s["orderId"] == "o1" and not s["nodeStates"]
                                 and action_state(s, "o1:wait") == "FINISHED", "order o1 done")
    assert done["lastNodeId"] == "n2" and done["lastNodeSequenceId"] == 4 and not done["driving"]
    assert done["edgeStates"] == [] and done["errors"] == []
    assert abs(done["agvPosition"]["x"] - 4.0) < 0.6 and abs(done["agvPosition"]["y"] - 3.0) < 0.6
    o1 = [s for s in rig.master.states if s["orderId"] == "o1"]
    # node progress: n0 counted at once, n1 then n2 traversed, each leaving nodeStates with the edge before it
    last_nodes = [s["lastNodeId"] for s in o1]
    assert last_nodes[0] == "n0" and "n1" in last_nodes
    at_n1 = next(s for s in o1 if s["lastNodeId"] == "n1")
    assert [n["nodeId"] for n in at_n1["nodeStates"]] == ["n2"]
    assert [e["edgeId"] for e in at_n1["edgeStates"]] == ["n1-n2"]
    assert any(s["driving"] for s in o1)
    assert {action_state(s, "o1:wait") for s in o1} >= {"WAITING", "RUNNING", "FINISHED"}
    assert len(rig.robot.navigator.goals) == 3  # n1, n2, and wait_here on n2
    # headerIds count per topic from 0, one by one
    ids = [s["headerId"] for s in rig.master.states]
    assert ids == list(range(ids[0], ids[0] + len(ids)))
    # the spec's QoS: connection 1 retained, factsheet retained, state 0
    qos = {(t.rsplit("/", 1)[-1], q, r) for t, p, q, r in rig.tap.snapshot() if p}
    assert ("connection", 1, False) in qos or ("connection", 1, True) in qos
    assert {(q, r) for n, q, r in qos if n == "state"} == {(0, False)}
    assert rig.master.factsheets and rig.master.factsheets[-1]["protocolFeatures"]["agvActions"]
    shown = rig.tap.on("visualization")  # the position while it drove, rate-capped at 2 Hz
    assert shown and all("agvPosition" in doc for _topic, doc in shown)
    assert {(q, r) for n, q, r in qos if n == "visualization"} == {(0, False)}
    assert rig.wire_problems() == []


def test_an_order_update_is_stitched_and_a_lower_order_update_id_is_rejected(rig_factory: Callable[..., Rig]) -> None:
    rig = rig_factory()
    rig.online()
    n0, n1 = node("n0", 0, 0.0, 0.0), node("n1", 2, 3.0, 0.0)
    n2, n3 = node("n2", 4, 3.0, 3.0, released=False), node("n3", 6, 0.0, 3.0, released=False)
    rig.master.order("o2", 0, *path([n0, n1, n2, n3]))
    base_done = rig.master.wait_state(lambda s: s["lastNodeId"] == "n1" and not s["driving"], "the base driven")
    assert [(n["nodeId"], n["released"]) for n in base_done["nodeStates"]] == [("n2", False), ("n3", False)]
    assert [(e["edgeId"], e["released"]) for e in base_done["edgeStates"]] == [("n1-n2", False), ("n2-n3", False)]

    update = [node("n1", 2, 3.0, 0.0), node("n2", 4, 3.0, 3.0), node("n3", 6, 0.0, 3.0)]
    rig.master.order("o2", 1, *path(update))
    done = rig.master.wait_state(lambda s: s["orderUpdateId"] == 1 and s["lastNodeId"] == "n3" and not s["nodeStates"],
                                 "the update driven to n3")
    assert done["orderId"] == "o2" and done["errors"] == []

    rig.master.order("o2", 0, *path([node("n3", 6, 0.0, 3.0), node("n4", 8, 5.0, 5.0)]))
    refused = rig.master.wait_state(lambda s: bool(errors_of(s, "orderUpdateError")), "orderUpdateError")
    error = errors_of(refused, "orderUpdateError")[0]
    assert error["errorLevel"] == "WARNING"
    assert {"referenceKey": "orderId", "referenceValue": "o2"} in error["errorReferences"]
    assert refused["orderUpdateId"] == 1 and refused["lastNodeId"] == "n3" and refused["nodeStates"] == []
    # an update that does not start on the decision point is refused too
    rig.master.order("o2", 2, *path([node("n9", 20, 1.0, 1.0), node("n10", 22, 2.0, 2.0)]))
    rig.master.wait_state(lambda s: len(errors_of(s, "orderUpdateError")) == 2, "a second orderUpdateError")
    assert rig.robot.bridge is not None and rig.robot.bridge.poll() is None
    assert rig.wire_problems() == []


def test_pause_and_cancel_order_stop_the_drive_and_a_second_cancel_finds_no_order(
        rig_factory: Callable[..., Rig]) -> None:
    rig = rig_factory(speed_mps=0.5)
    rig.online()
    rig.master.order("o3", 0, *path([node("n0", 0, 0.0, 0.0), node("far", 2, 40.0, 0.0)]))
    rig.master.wait_state(lambda s: s["driving"], "driving to the far node")
    wait_for(lambda: bool(rig.robot.navigator.goals), 60, "the navigator running the goal")
    rig.master.order("o4", 0, *path([node("m0", 0, 0.0, 0.0), node("m1", 2, 1.0, 0.0)]))
    busy = rig.master.wait_state(lambda s: bool(errors_of(s, "orderError")), "a new order refused while busy")
    assert busy["orderId"] == "o3"

    rig.master.instant("startPause", "pause-1")
    paused = rig.master.wait_state(lambda s: action_state(s, "pause-1") == "FINISHED", "startPause FINISHED")
    assert paused["paused"] and not paused["driving"] and [n["nodeId"] for n in paused["nodeStates"]] == ["far"]
    assert rig.robot.navigator.goals[-1].ended == "CANCELED" and not errors_of(paused, "navigationError")
    rig.master.instant("stopPause", "pause-2")
    rig.master.wait_state(lambda s: s["driving"] and not s["paused"], "driving again after stopPause")
    wait_for(lambda: len(rig.robot.navigator.goals) == 2, 60, "the navigator running the goal again")

    rig.master.instant("cancelOrder", "cancel-1")
    cancelled = rig.master.wait_state(lambda s: action_state(s, "cancel-1") == "FINISHED", "cancelOrder FINISHED")
    assert cancelled["orderId"] == "o3" and cancelled["nodeStates"] == [] and cancelled["edgeStates"] == []
    assert not cancelled["driving"] and cancelled["lastNodeId"] == "n0"
    assert rig.robot.navigator.goals[-1].ended == "CANCELED"

    rig.master.instant("cancelOrder", "cancel-2")
    again = rig.master.wait_state(lambda s: action_state(s, "cancel-2") == "FAILED", "the second cancel FAILED")
    refs = [r for e in errors_of(again, "noOrderToCancel") for r in e["errorReferences"]]
    assert {"referenceKey": "actionId", "referenceValue": "cancel-2"} in refs

    x = cancelled["agvPosition"]["x"]  # a new order from where the vehicle stopped (section 6.6.3.1)
    rig.master.order("o5", 0, *path([node("here", 0, x, 0.0), node("back", 2, 0.0, 0.0)]))
    back = rig.master.wait_state(lambda s: s["orderId"] == "o5" and s["lastNodeId"] == "back", "o5 done")
    assert not errors_of(back, "orderError") and not errors_of(back, "noOrderToCancel")
    assert rig.wire_problems() == []


def test_malformed_orders_are_rejected_with_errors_in_state_and_the_vehicle_goes_on(
        rig_factory: Callable[..., Rig]) -> None:
    rig = rig_factory()
    rig.online()
    rig.master.send_raw("order", b"{not json")
    rig.master.wait_state(lambda s: len(errors_of(s, "validationError")) == 1, "a validationError (not JSON)")
    rig.master.send_raw("order", b'{"orderId": "bad-1", "orderUpdateId": 0}')  # breaks order.schema
    bad = rig.master.wait_state(lambda s: len(errors_of(s, "validationError")) == 2, "a validationError (schema)")
    assert {"referenceKey": "orderId", "referenceValue": "bad-1"} in errors_of(bad, "validationError")[1][
        "errorReferences"]
    nodes, edges = path([node("a", 0, 0.0, 0.0), node("b", 2, 1.0, 0.0)])
    edges[0]["startNodeId"] = "z"  # an edge that does not join its nodes
    rig.master.order("bad-2", 0, nodes, edges)
    rig.master.wait_state(lambda s: len(errors_of(s, "validationError")) == 3, "a validationError (structure)")
    fly = {"actionType": "fly", "actionId": "f1", "blockingType": "HARD"}
    rig.master.order("bad-3", 0, *path([node("a", 0, 0.0, 0.0), node("b", 2, 1.0, 0.0, actions=[fly])]))
    refused = rig.master.wait_state(lambda s: bool(errors_of(s, "orderError")), "an orderError (unknown action)")
    assert {"referenceKey": "actionType", "referenceValue": "fly"} in errors_of(refused, "orderError")[0][
        "errorReferences"]
    assert refused["orderId"] == "" and rig.robot.navigator.goals == []

    rig.master.order("good", 0, *path([node("a", 0, 0.0, 0.0), node("b", 2, 1.0, 0.0)]))
    good = rig.master.wait_state(lambda s: s["orderId"] == "good" and s["lastNodeId"] == "b", "the good order done")
    assert good["errors"] == []  # rejections are reported until an order is accepted
    assert rig.robot.bridge is not None and rig.robot.bridge.poll() is None
    problems = rig.wire_problems()
    assert [p for p in problems if "/order:" not in p] == []  # only the test's own bad orders break their schema


def test_connection_online_offline_on_a_stop_and_the_last_will_on_a_kill(rig_factory: Callable[..., Rig]) -> None:
    rig = rig_factory(state_period_s=1.0)
    first = rig.online()
    # nothing changes, yet a state comes every state_period_s (the spec: at least every 30 s)
    rig.master.wait_state(lambda s: s["headerId"] >= first["headerId"] + 3, "three more states while idle")
    assert rig.robot.stop_bridge(signal.SIGTERM) == 0
    offline = rig.master.wait_connection("OFFLINE")
    assert offline["manufacturer"] == "acme" and offline["serialNumber"] == rig.robot.serial
    rig.master.connections.clear()
    rig.online()
    assert rig.robot.bridge is not None
    rig.robot.stop_bridge(signal.SIGKILL)
    rig.master.wait_connection("CONNECTIONBROKEN")
    retained = [(q, r) for t, p, q, r in rig.tap.snapshot() if t.endswith("/connection") and p]
    assert retained and {q for q, _r in retained} == {1}
    late = Master(rig.broker.host, rig.broker.port, "acme", rig.robot.serial)
    try:
        assert late.wait_connection("CONNECTIONBROKEN")["connectionState"] == "CONNECTIONBROKEN"  # it is retained
    finally:
        late.close()
    assert rig.wire_problems() == []


def test_this_projects_coordinator_drives_the_ros_robot_as_a_vda5050_vehicle(
        mosquitto: Mosquitto, tmp_path: Path, ros_context: Any, ros_env: dict[str, str],
        vda5050_schemas: Path) -> None:
    site = VdaSite(mosquitto, vda5050_schemas, [])
    robot = VdaRobot(mosquitto, tmp_path / "robot", ros_context, ros_env, vda5050_schemas,
                     interface=site.interface, actions={"pick": PICK})
    try:
        robot.start_bridge()
        vehicle = f"acme/{robot.serial}"
        wait_for(lambda: (seen := site.coordinator.dispatch.fleet.get(vehicle)) is not None and seen.online
                 and bool(seen.kind), 60, f"{vehicle} online with its kind")
        site.submit("pick-1", "pick", 3.0, 2.0)
        site.wait_state("pick-1", {TaskState.DONE, TaskState.FAILED, TaskState.REJECTED}, 90)
        assert site.state_of("pick-1") == TaskState.DONE, robot.log()
        goals = robot.navigator.goals
        assert len(goals) == 2 and (goals[0].x, goals[0].y) == (3.0, 2.0)  # the drive, then pick on the goal node
        assert site.check.wire_problems(site.tap.snapshot()) == []
    finally:
        robot.close()
        site.close()
