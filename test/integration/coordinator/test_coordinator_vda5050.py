"""The single-site coordinator as VDA 5050 master control on a real Mosquitto: simulated VDA 5050 vehicles
(test/support/vda_vehicles.py, written from the spec) beside swarm_bridge robots; tasks done, rejected, failed,
cancelled, moved off a vehicle that dropped; bad state messages counted; every message on the wire checked
against the official JSON Schemas."""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion
from site_harness import wait_for
from vda_site import CAPABILITIES, VdaSite, vda_site_fixture  # noqa: F401  (fixture vda_site)
from vda_vehicles import VdaVehicles, VehicleSpec
from vda_wire import SchemaCheck, WireTap

from swarm_bridge.brokers import Mosquitto
from swarm_bridge.cli import main as cli_main
from swarm_bridge.coordinator.core.tasks import TERMINAL, TaskState
from swarm_bridge.coordinator.site.runner import SiteCoordinator
from swarm_bridge.sim.task_robots import TaskRobot


def header_ids_rise(tap: WireTap) -> list[str]:
    """Topics whose headerIds do not rise message after message (each topic has one sender; QoS 0 may lose one,
    so a gap is allowed, a repeat or a step back is not)."""
    seen: dict[str, list[int]] = defaultdict(list)
    for topic, payload, _qos, retain in tap.snapshot():
        if payload and not retain:
            seen[topic].append(json.loads(payload)["headerId"])
    return [f"{t}: {ids}" for t, ids in seen.items() if any(b <= a for a, b in pairwise(ids))]


@pytest.mark.integration
def test_a_mixed_fleet_does_its_tasks_over_vda5050_and_swarm_bridge(vda_site: Callable[..., VdaSite]) -> None:
    site = vda_site([VehicleSpec("acme", f"agv{i}", x=float(i), y=0.0) for i in range(3)],
                    [TaskRobot(f"amr_{i}", "amr", CAPABILITIES["amr"], x=float(i), y=5.0) for i in range(2)])
    kinds = ["pick", "charge", "navigate"]
    for i in range(12):
        site.submit(f"t{i:02d}", kinds[i % 3], float(i % 4), float(i % 3))
    wait_for(lambda: all(site.state_of(f"t{i:02d}") in TERMINAL for i in range(12)), 60, "12 tasks to end")
    tasks = {t.task_id: t for t in site.coordinator.tasks()}
    assert {t.state for t in tasks.values()} == {TaskState.DONE}, [(t.task_id, t.robot_id, t.state.value, t.reason)
                                                                   for t in tasks.values()]
    assert all(tasks[f"t{i:02d}"].robot_id.startswith("acme/") for i in range(0, 12, 3))  # pick: vehicles only
    assert all(tasks[f"t{i:02d}"].robot_id.startswith("amr_") for i in range(1, 12, 3))  # charge: robots only
    orders = site.tap.on("order")
    by_vehicle = {t.task_id for t in tasks.values() if t.robot_id.startswith("acme/")}
    assert {doc["orderId"].split("#")[0] for _topic, doc in orders} == by_vehicle
    for topic, doc in orders:
        assert topic == f"{site.interface}/v2/acme/{doc['serialNumber']}/order" and doc["orderUpdateId"] == 0
    picks = [a for _t, doc in orders for a in doc["nodes"][-1]["actions"]]
    assert picks and {a["actionType"] for a in picks} == {"pick"}
    assert site.check.wire_problems(site.tap.snapshot()) == []
    assert header_ids_rise(site.tap) == []
    assert site.coordinator.summary()["dropped"] == {}


@pytest.mark.integration
def test_a_cancelled_task_stops_its_vehicle_and_pause_holds_it(vda_site: Callable[..., VdaSite],
                                                               tmp_path: Path) -> None:
    site = vda_site([VehicleSpec("acme", "slow", speed_mps=0.5)])
    vehicle = site.vehicles["acme/slow"]
    site.submit("far", "navigate", 30.0, 0.0)
    site.wait_state("far", {TaskState.RUNNING})
    site.coordinator.pause("acme/slow")
    wait_for(lambda: vehicle.paused and not vehicle.driving, 10, "the vehicle paused")
    site.coordinator.pause("acme/slow", paused=False)
    wait_for(lambda: not vehicle.paused and vehicle.driving, 10, "the vehicle driving again")
    config = tmp_path / "site.yaml"
    config.write_text(yaml.safe_dump(site.doc))
    cancel = ["task", "cancel", "--config", str(config), "--task-id", "far", "--reason", "blocked aisle"]
    assert cli_main(cancel) == 0  # over MQTT: .../coordinator/tasks/cancel, answered on .../tasks/result/far
    task = site.coordinator.task("far")
    assert task is not None and task.state is TaskState.CANCELLED and task.reason == "blocked aisle"
    wait_for(lambda: any(a["actionType"] == "cancelOrder" and a["actionStatus"] == "FINISHED"
                         for _t, doc in site.tap.on("state") for a in doc["actionStates"]), 10,
             "cancelOrder FINISHED in the vehicle's state")
    last = site.tap.on("state")[-1][1]
    assert last["nodeStates"] == [] and last["edgeStates"] == [] and last["orderId"] == "far#1"
    assert not vehicle.driving and vehicle.x < 30.0
    sent = [a["actionType"] for _t, doc in site.tap.on("instantActions") for a in doc["actions"]]
    assert sent == ["startPause", "stopPause", "cancelOrder"]
    assert not site.coordinator.cancel("far") and cli_main(cancel) == 1  # ended already
    site.submit("next", "navigate", 1.0, 0.0)  # a new order after a cancel (section 6.6.3.1)
    site.wait_state("next", {TaskState.DONE})
    assert site.check.wire_problems(site.tap.snapshot()) == []


@pytest.mark.integration
def test_a_vehicle_that_drops_hands_its_task_on(vda_site: Callable[..., VdaSite], mosquitto: Mosquitto) -> None:
    site = vda_site([VehicleSpec("acme", "near", x=9.0, speed_mps=0.05), VehicleSpec("acme", "far", x=-20.0)],
                    tasks={"robot_offline_after_s": 3.0})  # how long a vehicle whose connection broke keeps its task
    site.submit("job", "navigate", 10.0, 0.0)
    site.wait_state("job", {TaskState.RUNNING})
    assert site.coordinator.task("job").robot_id == "acme/near"  # type: ignore[union-attr]
    site.vehicles["acme/near"].crash()
    wait_for(lambda: not site.coordinator.dispatch.fleet.get("acme/near").online, 15,  # type: ignore[union-attr]
             "the Last Will to take the vehicle offline")
    assert "CONNECTIONBROKEN" in site.coordinator.dispatch.fleet.get("acme/near").presence_reason  # type: ignore[union-attr]
    site.wait_state("job", {TaskState.DONE}, 60)
    task = site.coordinator.task("job")
    assert task is not None and task.history == ("acme/near", "acme/far")
    retained = WireTap(mosquitto.host, mosquitto.port, site.interface)  # a newcomer: the retained connections
    try:
        wait_for(lambda: len(retained.on("connection")) >= 2, 10, "the retained connection messages")
        states = {t: (doc["connectionState"], r) for t, p, _q, r in retained.snapshot() if t.endswith("/connection")
                  for doc in [json.loads(p)]}
    finally:
        retained.close()
    assert states[f"{site.interface}/v2/acme/near/connection"] == ("CONNECTIONBROKEN", True)
    assert states[f"{site.interface}/v2/acme/far/connection"] == ("ONLINE", True)
    site.vehicles["acme/far"].stop()
    wait_for(lambda: not site.coordinator.dispatch.fleet.get("acme/far").online, 15,  # type: ignore[union-attr]
             "OFFLINE to take the vehicle offline")
    assert "orderly" in site.coordinator.dispatch.fleet.get("acme/far").presence_reason  # type: ignore[union-attr]
    assert site.check.wire_problems(site.tap.snapshot()) == []


@pytest.mark.integration
def test_a_rejected_order_moves_and_a_failed_action_fails_the_task(vda_site: Callable[..., VdaSite]) -> None:
    """nopick claims pick in its factsheet but rejects the order (orderError); honest, nearest, lists no pick in
    its factsheet and is never offered the task; picker does it."""
    site = vda_site([VehicleSpec("acme", "nopick", x=0.0, actions=frozenset(), claims=frozenset({"pick"})),
                     VehicleSpec("acme", "honest", x=0.5, actions=frozenset()),  # its factsheet lists no pick
                     VehicleSpec("acme", "picker", x=6.0),
                     VehicleSpec("acme", "clumsy", x=40.0, failing=frozenset({"pick"}))])
    wait_for(lambda: "pick" not in site.coordinator.dispatch.fleet.get("acme/honest").capabilities,  # type: ignore[union-attr]
             10, "honest's factsheet read")
    site.submit("p1", "pick", 1.0, 0.0, parameters={"stationName": "s1"})
    site.wait_state("p1", {TaskState.DONE})
    task = site.coordinator.task("p1")
    assert task is not None and task.history == ("acme/nopick", "acme/picker")
    errors = [e for _t, doc in site.tap.on("state") if doc["serialNumber"] == "nopick" for e in doc["errors"]]
    assert any(e["errorType"] == "orderError" and {"referenceKey": "orderId", "referenceValue": "p1#1"}
               in e["errorReferences"] for e in errors)
    site.submit("p2", "pick", 41.0, 0.0)  # nearest to clumsy, whose pick fails
    site.wait_state("p2", {TaskState.FAILED, TaskState.DONE})
    task = site.coordinator.task("p2")
    assert task is not None and task.robot_id == "acme/clumsy" and task.state is TaskState.FAILED
    assert task.reason == "action pick failed: simulated failure"
    assert site.check.wire_problems(site.tap.snapshot()) == []


@pytest.mark.integration
def test_bad_state_messages_are_counted_and_the_site_goes_on(vda_site: Callable[..., VdaSite],
                                                             mosquitto: Mosquitto) -> None:
    site = vda_site([VehicleSpec("acme", "good")])
    good = site.vehicles["acme/good"].state_body()
    header = {"headerId": 0, "timestamp": "2026-12-06T10:00:00.00Z", "version": "2.1.0", "manufacturer": "acme"}
    at = f"{site.interface}/v2"
    bad = [(f"{at}/acme/x1/state", b"\xff not json"),
           (f"{at}/acme/x2/state", json.dumps({**header, "serialNumber": "x2", **good, "driving": "yes"}).encode()),
           (f"{at}/acme/x3/state", json.dumps({**header, "serialNumber": "x3"}).encode()),
           (f"{at}/acme/x4/state", json.dumps({**header, "serialNumber": "other", **good}).encode()),
           (f"{at}/acme/x5/connection", json.dumps({**header, "serialNumber": "x5",
                                                      "connectionState": "MAYBE"}).encode()),
           (f"{at}/globex/y1/state", json.dumps({**header, "manufacturer": "globex", "serialNumber": "y1",
                                                   **good}).encode()),
           (site.coordinator.topics.cancel, b"cancel everything"), (site.coordinator.topics.cancel, b'{"task": 1}')]
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="vda-bad-input", protocol=paho.MQTTv5)
    client.connect(mosquitto.host, mosquitto.port)
    client.loop_start()
    try:
        for topic, payload in bad:
            client.publish(topic, payload, qos=1).wait_for_publish(5)
    finally:
        client.disconnect()
        client.loop_stop()
    dropped = lambda: site.coordinator.summary()["dropped"]  # noqa: E731
    wait_for(lambda: sum(dropped().values()) >= len(bad), 15, "every bad message counted")
    assert dropped() == {"malformed vda_state": 4, "malformed vda_connection": 1,
                         "vda5050 vehicle of an unknown manufacturer": 1, "malformed cancel": 2}
    assert {r.robot_id for r in site.coordinator.dispatch.fleet} == {"acme/good"}
    site.submit("after", "navigate", 2.0, 0.0)
    site.wait_state("after", {TaskState.DONE})


@pytest.mark.integration
def test_the_simulated_vehicle_keeps_the_order_rules(mosquitto: Mosquitto, vda5050_schemas: Path) -> None:
    """The test vehicle itself (section 6.6): an update stitched on the base's last node is taken, a lower
    orderUpdateId is rejected with orderUpdateError while the order goes on, a malformed order is a
    validationError, a cancelOrder without an order is noOrderToCancel."""
    interface = f"uagv{uuid.uuid4().hex[:6]}"
    tap = WireTap(mosquitto.host, mosquitto.port, interface)
    fleet = VdaVehicles([VehicleSpec("acme", "rules", speed_mps=1.0)], host=mosquitto.host, port=mosquitto.port,
                        interface=interface).start()
    vehicle = fleet["acme/rules"]
    check = SchemaCheck(vda5050_schemas)
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="vda-master", protocol=paho.MQTTv5)
    client.connect(mosquitto.host, mosquitto.port)
    client.loop_start()
    head = {"timestamp": "2026-12-06T10:00:00.00Z", "version": "2.1.0", "manufacturer": "acme",
            "serialNumber": "rules"}
    count = iter(range(100))

    def node(node_id: str, seq: int, x: float, released: bool = True) -> dict[str, Any]:
        return {"nodeId": node_id, "sequenceId": seq, "released": released, "actions": [],
                "nodePosition": {"x": x, "y": 0.0, "mapId": "map", "allowedDeviationXY": 0.2}}

    def edge(a: str, b: str, seq: int, released: bool = True) -> dict[str, Any]:
        return {"edgeId": f"{a}{b}", "sequenceId": seq, "released": released, "startNodeId": a, "endNodeId": b,
                "actions": []}

    def send(topic: str, body: dict[str, Any], *, valid: bool = True) -> None:
        doc = {"headerId": next(count), **head, **body}
        assert (check.problems(topic, doc) == []) is valid
        client.publish(f"{interface}/v2/acme/rules/{topic}", json.dumps(doc).encode(), qos=0).wait_for_publish(5)

    def last_state() -> dict[str, Any]:
        states = [doc for _t, doc in tap.on("state")]
        return states[-1] if states else {}

    try:
        send("instantActions", {"actions": [{"actionId": "c0", "actionType": "cancelOrder", "blockingType": "HARD"}]})
        wait_for(lambda: any(e["errorType"] == "noOrderToCancel" for e in last_state().get("errors", [])), 10,
                 "noOrderToCancel")
        send("order", {"orderId": "o1", "orderUpdateId": 0, "nodes": [node("a", 0, 0.0), node("b", 2, 3.0),
                                                                       node("c", 4, 6.0, released=False)],
                       "edges": [edge("a", "b", 1), edge("b", "c", 3, released=False)]})
        wait_for(lambda: last_state().get("orderId") == "o1", 10, "order o1 taken")
        send("order", {"orderId": "o1", "orderUpdateId": 1, "nodes": [node("b", 2, 3.0), node("c", 4, 6.0)],
                       "edges": [edge("b", "c", 3)]})
        wait_for(lambda: last_state().get("orderUpdateId") == 1, 10, "update 1 stitched on b")
        send("order", {"orderId": "o1", "orderUpdateId": 0, "nodes": [node("a", 0, 0.0)], "edges": []})
        wait_for(lambda: any(e["errorType"] == "orderUpdateError" for e in last_state().get("errors", [])), 10,
                 "orderUpdateError for the lower orderUpdateId")
        assert last_state()["orderUpdateId"] == 1 and last_state()["orderId"] == "o1"
        wait_for(lambda: last_state().get("lastNodeId") == "c" and not last_state()["nodeStates"], 30,
                 "the vehicle at c, the order done")
        send("order", {"orderId": "o2", "orderUpdateId": "zero", "nodes": [], "edges": []}, valid=False)
        wait_for(lambda: any(e["errorType"] == "validationError" for e in last_state().get("errors", [])), 10,
                 "validationError for a malformed order")
        assert last_state()["orderId"] == "o1"
        assert (vehicle.x, vehicle.last_node) == (6.0, ("c", 4))
        mine = [m for m in tap.snapshot() if "/rules/" in m[0] and not m[0].endswith(("/order", "/instantActions"))]
        assert check.wire_problems(mine) == []
    finally:
        client.disconnect()
        client.loop_stop()
        fleet.stop()
        tap.close()


@pytest.mark.integration
def test_a_vehicle_quiet_between_states_is_asked_for_one(vda_site: Callable[..., VdaSite]) -> None:
    """A vehicle may send state only every 30 s (section 6.10); the site counts robots silent after 2 s here, so
    it sends stateRequest to keep hearing from it, and the vehicle keeps its task."""
    site = vda_site([VehicleSpec("acme", "lazy", speed_mps=1.0)], state_period_s=30.0,
                    tasks={"robot_offline_after_s": 2.0})
    wait_for(lambda: len([a for _t, doc in site.tap.on("instantActions") for a in doc["actions"]
                          if a["actionType"] == "stateRequest"]) >= 3, 20, "three stateRequests")
    robot = site.coordinator.dispatch.fleet.get("acme/lazy")
    assert robot is not None and robot.online
    site.submit("slowly", "navigate", 5.0, 0.0)  # about 5 s of driving with no state of its own
    site.wait_state("slowly", {TaskState.DONE, TaskState.FAILED}, 40)
    task = site.coordinator.task("slowly")
    assert task is not None and task.state is TaskState.DONE and task.history == ("acme/lazy",)
    assert site.check.wire_problems(site.tap.snapshot()) == []


@pytest.mark.integration
def test_a_restarted_coordinator_follows_the_order_it_sent_before(vda_site: Callable[..., VdaSite],
                                                                  tmp_path: Path) -> None:
    site = vda_site([VehicleSpec("acme", "steady", speed_mps=0.5)],
                    mqtt={"state_file": str(tmp_path / "tasks.jsonl")})
    site.submit("across", "navigate", 4.0, 0.0)
    site.wait_state("across", {TaskState.RUNNING})
    site.coordinator.stop()  # the snapshot keeps the task running on acme/steady
    site.coordinator = SiteCoordinator(site.config).start()
    site.wait_state("across", {TaskState.DONE, TaskState.FAILED}, 40)
    task = site.coordinator.task("across")
    assert task is not None and task.state is TaskState.DONE and task.attempts == 1
    assert len(site.tap.on("order")) == 1  # the order was not sent again
    assert site.check.wire_problems(site.tap.snapshot()) == []
