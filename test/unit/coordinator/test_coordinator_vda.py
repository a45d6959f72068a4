"""The single-site coordinator's VDA 5050 profile without a broker: vehicles into the fleet view from `state` and
`connection`, assignments as orders, cancels as cancelOrder, reports as task status; every message it sends meets
its official schema; what it cannot read is refused with a reason."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from vda_docs import connection_doc, state_doc

from swarm_bridge.config import CoordinatorConfig, validate_config
from swarm_bridge.config.errors import ConfigError
from swarm_bridge.coordinator.core.assignment import CostPolicy, plan
from swarm_bridge.coordinator.core.dispatch import ASSIGN, CANCEL, Command, Dispatch
from swarm_bridge.coordinator.core.fleet import FleetView, RobotMode, RobotView
from swarm_bridge.coordinator.core.tasks import Target, TaskRequest, TaskState, assigned, new_task
from swarm_bridge.coordinator.core.vda import UnknownVehicle, VdaVehicles
from swarm_bridge.coordinator.wiring import build_dispatch
from swarm_bridge.vda5050 import MessageInvalid, OfficialSchemas

STATE = "uagv/v2/acme/agv1/state"
CAPS = {"agv": ["navigate", "pick"], "amr": ["navigate"]}


def config_doc(schemas: Path | None = None, **vda: Any) -> dict[str, Any]:
    section = {"manufacturers": {"acme": "agv"}, "actions": {"pick": "pick"}, **vda}
    if schemas is not None:
        section["schemas"] = str(schemas)
    return {"fleet": "f", "mode": "mqtt", "mqtt": {"port": 1883}, "capabilities": CAPS, "vda5050": section}


@pytest.fixture()
def vehicles(vda5050_schemas: Path) -> VdaVehicles:
    config = validate_config(config_doc(vda5050_schemas), CoordinatorConfig)
    assert config.vda5050 is not None
    return VdaVehicles(config.vda5050, config.capabilities)


def payload(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc).encode()


def command(kind: str, action: int = ASSIGN, robot_id: str = "acme/agv1") -> Command:
    task = assigned(new_task(TaskRequest("t1", kind, Target(4.0, 2.0), parameters=(("lhd", "LHD1"),)), 0), robot_id, 1)
    return Command(0, robot_id, action, task, task.command_id if action == ASSIGN else f"{task.command_id}:cancel")


def test_a_vehicle_enters_the_fleet_by_connection_and_state(vehicles: VdaVehicles) -> None:
    fleet = FleetView()
    vehicles.on_connection("uagv/v2/acme/agv1/connection", payload(connection_doc()), fleet, 5)
    robot = fleet.get("acme/agv1")
    assert robot is not None and robot.online and fleet.capable("pick") == []  # no task before its first state
    assert vehicles.on_state(STATE, payload(state_doc(x=3.0, y=-1.0)), fleet, 7) == []
    assert fleet.capable("pick") == ["acme/agv1"] and fleet.get("acme/agv1").kind == "agv"  # type: ignore[union-attr]
    robot = fleet.get("acme/agv1")
    assert robot is not None and (robot.x, robot.y, robot.battery_percent, robot.mode, robot.last_seen_ns) == (
        3.0, -1.0, 80.0, RobotMode.IDLE, 7)
    vehicles.on_connection("uagv/v2/acme/agv1/connection", payload(connection_doc(state="CONNECTIONBROKEN")), fleet, 9)
    robot = fleet.get("acme/agv1")
    assert robot is not None and not robot.online and "Last Will" in robot.presence_reason


@pytest.mark.parametrize(("fields", "mode"), [
    ({"operatingMode": "MANUAL"}, RobotMode.MANUAL),
    ({"safetyState": {"eStop": "MANUAL", "fieldViolation": False}}, RobotMode.EMERGENCY_STOP),
    ({"errors": [{"errorType": "motor", "errorLevel": "FATAL"}]}, RobotMode.ERROR),
    ({"batteryState": {"batteryCharge": 30.0, "charging": True}}, RobotMode.CHARGING),
    ({"driving": True}, RobotMode.AUTONOMOUS),
])
def test_the_robot_mode_follows_the_state(vehicles: VdaVehicles, fields: dict[str, Any], mode: RobotMode) -> None:
    fleet = FleetView()
    vehicles.on_state(STATE, payload(state_doc(**fields)), fleet, 1)
    robot = fleet.get("acme/agv1")
    assert robot is not None and robot.mode is mode


def test_an_assignment_is_an_order_from_where_the_vehicle_stands(vehicles: VdaVehicles,
                                                                 vda5050_schemas: Path) -> None:
    fleet = FleetView()
    vehicles.on_state(STATE, payload(state_doc(last_node_id="dock", x=1.0, y=2.0)), fleet, 1)
    [out] = vehicles.command(command("pick"), 2)
    assert (out.topic, out.qos, out.retain) == ("uagv/v2/acme/agv1/order", 0, False)
    order = json.loads(out.payload)
    assert OfficialSchemas(vda5050_schemas).problems("order", order) == []
    assert order["orderId"] == "t1#1" and [n["nodeId"] for n in order["nodes"]] == ["dock", "t1#1:goal"]
    assert order["nodes"][0]["nodePosition"]["x"] == 1.0 and order["nodes"][1]["nodePosition"]["y"] == 2.0
    assert order["nodes"][1]["actions"][0]["actionType"] == "pick"
    assert order["nodes"][1]["actions"][0]["actionParameters"] == [{"key": "lhd", "value": "LHD1"}]
    [drive] = [json.loads(o.payload) for o in vehicles.command(command("navigate"), 3)]
    assert drive["nodes"][1]["actions"] == [] and drive["headerId"] == 1  # a kind without an action only drives


def test_state_reports_become_task_status(vehicles: VdaVehicles) -> None:
    fleet = FleetView()
    vehicles.on_state(STATE, payload(state_doc()), fleet, 1)
    vehicles.command(command("pick"), 2)
    watch = vehicles.orders["t1"]
    goal, edge, pick = watch.node_ids[1], watch.edge_ids[0], watch.action_ids[0]
    [accepted] = vehicles.on_state(STATE, payload(state_doc(order_id="t1#1", nodes=[goal], edges=[edge],
                                                            actions=[(pick, "pick", "WAITING")], driving=False)),
                                   fleet, 3)
    assert (accepted.state, accepted.task_id, accepted.robot_id) == (TaskState.ACCEPTED, "t1", "acme/agv1")
    assert fleet.get("acme/agv1").current_task_id == "t1"  # type: ignore[union-attr]
    [running] = vehicles.on_state(STATE, payload(state_doc(order_id="t1#1", actions=[(pick, "pick", "RUNNING")])),
                                  fleet, 4)
    assert running.state is TaskState.RUNNING and 0 < running.progress < 1
    [done] = vehicles.on_state(STATE, payload(state_doc(order_id="t1#1", actions=[(pick, "pick", "FINISHED")])),
                               fleet, 5)
    assert (done.state, done.progress) == (TaskState.DONE, 1.0)
    assert "t1" not in vehicles.orders  # an order that ended is no longer watched


def test_a_cancel_is_cancel_order_for_the_order_sent(vehicles: VdaVehicles, vda5050_schemas: Path) -> None:
    fleet = FleetView()
    vehicles.on_state(STATE, payload(state_doc()), fleet, 1)
    assert vehicles.command(command("pick", CANCEL), 2) == []  # no order sent for it: nothing to cancel
    vehicles.command(command("pick"), 2)
    [out] = vehicles.command(command("pick", CANCEL), 3)
    doc = json.loads(out.payload)
    assert out.topic == "uagv/v2/acme/agv1/instantActions" and out.qos == 0
    assert OfficialSchemas(vda5050_schemas).problems("instantActions", doc) == []
    assert doc["actions"] == [{"actionType": "cancelOrder", "actionId": "t1#1:cancel", "blockingType": "HARD"}]
    [report] = vehicles.on_state(STATE, payload(state_doc(order_id="t1#1", actions=[
        (vehicles.orders["t1"].action_ids[0], "pick", "FAILED"), ("t1#1:cancel", "cancelOrder", "FINISHED")])),
        fleet, 4)
    assert report.state is TaskState.CANCELLED


def test_pause_and_resume_are_instant_actions(vehicles: VdaVehicles) -> None:
    with pytest.raises(UnknownVehicle, match="acme/agv1"):
        vehicles.pause("acme/agv1", True, 1)
    vehicles.on_state(STATE, payload(state_doc()), FleetView(), 1)
    kinds = [json.loads(vehicles.pause("acme/agv1", p, 2).payload)["actions"][0]["actionType"] for p in (True, False)]
    assert kinds == ["startPause", "stopPause"]


@pytest.mark.parametrize(("topic", "doc", "error", "text"), [
    ("uagv/v2/other/agv1/state", state_doc("other"), UnknownVehicle, "manufacturer 'other' is not in"),
    (STATE, state_doc(serial="agv2"), MessageInvalid, "carries the message of acme/agv2"),
    (STATE, {**state_doc(), "errors": "none"}, MessageInvalid, "state: errors: breaks state.schema"),
    ("uagv/v2/acme/agv1/connection", state_doc(), MessageInvalid, "not interfaceName/majorVersion"),
])
def test_what_cannot_be_read_is_refused_with_why(vehicles: VdaVehicles, topic: str, doc: dict[str, Any],
                                                 error: type[Exception], text: str) -> None:
    with pytest.raises(error, match=text):
        vehicles.on_state(topic, payload(doc), FleetView(), 1)


def test_a_cancel_by_request_ends_the_task_and_tells_its_robot() -> None:
    config = validate_config(config_doc(), CoordinatorConfig)
    dispatch: Dispatch = build_dispatch(config)
    dispatch.owned = frozenset({0})
    dispatch.submit(b'{"task_id": "q", "kind": "navigate"}', "k", 1)
    [event] = dispatch.cancel("q", 2) or []
    assert event.event is not None and event.event.task.state is TaskState.CANCELLED  # type: ignore[union-attr]
    assert dispatch.cancel("q", 3) == [] and dispatch.cancel("nope", 3) is None


@pytest.mark.parametrize(("change", "text"), [
    ({"vda5050": {"manufacturers": {"acme": "agv"}, "kafka_topic": "vda5050.all"}}, "has no {stream}"),
    ({"vda5050": {"manufacturers": {"acme": "forklift"}}}, "robot kind 'forklift' is not a key of capabilities"),
    ({"vda5050": {"manufacturers": {"acme": "agv"}, "actions": {"fly": "x"}}}, "vda5050.actions.fly"),
    ({"vda5050": {"manufacturers": {"a/b": "agv"}}}, "cannot be a topic level"),
    ({"vda5050": {"manufacturers": {"acme": "agv"}, "schemas": "/nowhere"}}, "no state.schema there"),
    ({"vda5050": {"manufacturers": {"acme": "agv"}, "major_version": "2"}}, "major_version"),
])
def test_the_vda5050_config_is_checked(change: dict[str, Any], text: str) -> None:
    with pytest.raises(ConfigError, match=text):
        validate_config({**config_doc(), **change}, CoordinatorConfig)


def test_a_quiet_vehicle_is_asked_for_its_state_at_most_every_half_window(vehicles: VdaVehicles) -> None:
    fleet = FleetView()
    vehicles.on_state(STATE, payload(state_doc()), fleet, 0)
    assert vehicles.quiet(fleet, 900, 2000) == []  # heard 0.9 windows/2 ago: not yet
    [ask] = vehicles.quiet(fleet, 1000, 2000)
    assert ask.topic == "uagv/v2/acme/agv1/instantActions"
    assert json.loads(ask.payload)["actions"][0]["actionType"] == "stateRequest"
    assert vehicles.quiet(fleet, 1500, 2000) == []  # asked 0.5 ago
    assert len(vehicles.quiet(fleet, 2000, 2000)) == 1
    vehicles.on_connection("uagv/v2/acme/agv1/connection", payload(connection_doc(state="OFFLINE")), fleet, 2100)
    assert vehicles.quiet(fleet, 5000, 2000) == []  # offline: nobody to ask


def test_a_vehicle_gets_one_task_at_a_time() -> None:
    fleet = FleetView()
    fleet.put(RobotView("acme/agv1", "agv", frozenset({"navigate"}), RobotMode.IDLE, last_seen_ns=1, capacity=1))
    fleet.put(RobotView("amr_1", "amr", frozenset({"navigate"}), RobotMode.IDLE, x=50.0, last_seen_ns=1))
    queued = [new_task(TaskRequest(f"t{i}", "navigate"), i) for i in range(4)]
    picks = plan(queued, fleet, {}, CostPolicy(max_queue=3), now_ns=2, stale_after_ns=10**12)
    assert [robot for _task, robot in picks] == ["acme/agv1", "amr_1", "amr_1", "amr_1"]
    assert plan(queued, fleet, {"acme/agv1": 1}, CostPolicy(max_queue=3), now_ns=2,
                stale_after_ns=10**12)[0][1] == "amr_1"


def test_an_order_sent_before_a_restart_is_adopted_from_the_state(vehicles: VdaVehicles) -> None:
    """A coordinator restarted from its snapshot did not send the vehicle's order: it asks whose task it is once
    and follows the order from what the vehicle still has of it."""
    fleet = FleetView()
    asked: list[tuple[str, str]] = []

    def adopt(robot_id: str, order_id: str) -> str | None:
        asked.append((robot_id, order_id))
        return "t1" if order_id == "t1#1" else None

    running = state_doc(order_id="t1#1", last_node_id="start", nodes=[("t1#1:goal", 2)], edges=[("e", 1)],
                        actions=[("t1#1:0:pick", "pick", "WAITING")])
    [report] = vehicles.on_state(STATE, payload(running), fleet, 1, adopt)
    assert (report.task_id, report.state) == ("t1", TaskState.RUNNING)
    vehicles.on_state(STATE, payload(running), fleet, 2, adopt)
    assert asked == [("acme/agv1", "t1#1")]  # asked once per order id
    [done] = vehicles.on_state(STATE, payload(state_doc(order_id="t1#1", last_node_id="t1#1:goal",
                                                        actions=[("t1#1:0:pick", "pick", "FINISHED")])), fleet, 3,
                               adopt)
    assert done.state is TaskState.DONE
    assert vehicles.on_state(STATE, payload(state_doc(order_id="older")), fleet, 4, adopt) == []
    assert asked[-1] == ("acme/agv1", "older")


def test_a_vehicle_whose_connection_broke_keeps_its_task_for_its_grace() -> None:
    """Section 6.2: a vehicle that lost the broker drives its order on; the task moves only after the grace."""
    config = validate_config(config_doc(), CoordinatorConfig)
    dispatch = build_dispatch(config)
    dispatch.owned = frozenset({0})
    second = 1_000_000_000
    dispatch.fleet.put(RobotView("acme/agv1", "agv", frozenset({"navigate"}), RobotMode.IDLE, last_seen_ns=second,
                                 capacity=1, offline_grace_ns=5 * second))
    dispatch.submit(b'{"task_id": "g", "kind": "navigate"}', "k", second)
    dispatch.tick(second)
    assert dispatch.book.get("g").robot_id == "acme/agv1"  # type: ignore[union-attr]
    dispatch.fleet.on_presence("acme/agv1", "offline", "CONNECTIONBROKEN", 2 * second)
    dispatch.tick(5 * second)
    assert dispatch.book.get("g").state is TaskState.ASSIGNED  # type: ignore[union-attr]
    dispatch.tick(6 * second)
    task = dispatch.book.get("g")
    assert task is not None and task.state is TaskState.QUEUED and "CONNECTIONBROKEN" in task.reason


def test_a_factsheet_limits_the_kinds_a_vehicle_is_offered(vehicles: VdaVehicles) -> None:
    fleet = FleetView()
    vehicles.on_state(STATE, payload(state_doc()), fleet, 1)
    assert fleet.capable("pick") == ["acme/agv1"]
    sheet = {"headerId": 0, "timestamp": "2026-12-06T10:00:00.00Z", "version": "2.1.0", "manufacturer": "acme",
             "serialNumber": "agv1", "typeSpecification": {}, "physicalParameters": {}, "protocolLimits": {},
             "protocolFeatures": {"optionalParameters": [], "agvActions": [{"actionType": "drop",
                                                                            "actionScopes": ["NODE"]}]},
             "agvGeometry": {}, "loadSpecification": {}}
    vehicles.schemas = None  # this factsheet is cut short (the official schema wants far more of it)
    vehicles.on_factsheet("uagv/v2/acme/agv1/factsheet", payload(sheet), fleet)
    assert fleet.capable("pick") == [] and fleet.capable("navigate") == ["acme/agv1"]  # navigate needs no action
    vehicles.on_state(STATE, payload(state_doc()), fleet, 2)
    assert fleet.capable("pick") == []  # and it stays so
    with pytest.raises(MessageInvalid, match="agvActions"):
        vehicles.on_factsheet("uagv/v2/acme/agv1/factsheet", payload(
            {**sheet, "protocolFeatures": {"optionalParameters": []}}), fleet)
