"""`swarm-bridge demo --tasks vda5050`: a mixed fleet (a swarm_bridge robot replaying a bag, a ROS robot behind its
bridge's VDA 5050 profile, two plain VDA 5050 vehicles) driven by the coordinator, on a real Mosquitto, with every
VDA 5050 message on the wire read by a tap of the test's own (paho) and checked against the official JSON Schemas."""

from __future__ import annotations

import json
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from demo_cli import run_demo
from old_bags import ros1_bag
from rosbags.typesys import Stores, get_typestore
from vda_wire import SchemaCheck, WireTap

from swarm_bridge.brokers import Kafka, Mosquitto, free_port
from swarm_bridge.sim.taps import KafkaTap

VEHICLES = {"swarm_bridge/tug-000": "ros", "acme/agv-001": "plain", "acme/agv-002": "plain"}


def _vehicle(topic: str) -> str:
    """`manufacturer/serial` of a topic `uagv/v2/manufacturer/serial/name`."""
    return "/".join(topic.split("/")[2:4])


def _run(tmp_path: Path, env: dict[str, str], schemas: Path, *extra: str) -> tuple[
        subprocess.CompletedProcess[str], dict[str, Any], list[tuple[str, bytes, int, bool]]]:
    """The demo with `--tasks vda5050` on a Mosquitto of its own (no retained leftovers of other tests), a tap
    of the test's own subscribed before it starts: (its result, its report, every VDA 5050 message)."""
    bags = tmp_path / "bags"
    bags.mkdir()
    ros1_bag(bags / "one_robot.bag", get_typestore(Stores.ROS1_NOETIC), [("/battery", "std_msgs/msg/Float32", 5)])
    report_path = tmp_path / "report.json"
    with Mosquitto(run_dir=tmp_path / "mosquitto", port=free_port()) as broker:
        tap = WireTap(broker.host, broker.port)
        try:
            result = run_demo(["--bags", str(bags), "--rate", "20", "--tasks", "vda5050", "--mqtt",
                               f"mqtt://{broker.host}:{broker.port}", "--vda5050-schemas", str(schemas),
                               "--run-dir", str(tmp_path / "run"), "--report-json", str(report_path),
                               "--plot", str(tmp_path / "demo.png"), "--timeout", "180", *extra], env)
        finally:
            wire = tap.snapshot()
            tap.close()
    assert "Traceback" not in result.stdout + result.stderr, result.stderr[-3000:]
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result, json.loads(report_path.read_text()), wire


def _orders(wire: list[tuple[str, bytes, int, bool]]) -> dict[str, list[dict[str, Any]]]:
    """vehicle -> the orders sent to it, as the tap saw them."""
    orders: dict[str, list[dict[str, Any]]] = {}
    for topic, payload, _qos, _retain in wire:
        if topic.endswith("/order"):
            orders.setdefault(_vehicle(topic), []).append(json.loads(payload))
    return orders


@pytest.mark.integration
def test_demo_drives_a_mixed_fleet_with_vda5050_vehicles(tmp_path: Path, ros_env: dict[str, str],
                                                          vda5050_schemas: Path) -> None:
    result, report, wire = _run(tmp_path, ros_env, vda5050_schemas)
    vda = report["vda5050"]

    # the mixed fleet: one swarm_bridge robot, and the VDA 5050 vehicles, 2 tasks each, every task done
    assert report["robots"] == ["amr_000"] and report["all_delivered"]
    assert {v["robot_id"]: v["sim"] for v in vda["vehicles"]} == VEHICLES
    assert report["tasks"] == {"submitted": 8, "done": 8}
    done_by = Counter(t["robot_id"] for t in report["task_progress"] if t["state"] == "done")
    assert done_by["amr_000"] == 2 and done_by["swarm_bridge/tug-000"] == 2, done_by  # only they do their kinds
    assert done_by["acme/agv-001"] + done_by["acme/agv-002"] == 4 and all(done_by[v] for v in VEHICLES), done_by
    assert all(t["progress"][-1] == 1.0 for t in report["task_progress"])

    # every message on the wire keeps to the official schemas, at the spec's QoS
    assert wire and SchemaCheck(vda5050_schemas).wire_problems(wire) == []
    assert vda["invalid"] == 0 and vda["schemas"] == str(vda5050_schemas)
    assert {qos for topic, _p, qos, _r in wire if topic.endswith("/connection")} == {1}
    assert {qos for topic, _p, qos, _r in wire if topic.endswith(("/state", "/order"))} == {0}

    # each vehicle's orders, as the test's tap saw them, finished: a state with the order's nodes and edges done
    # and its actions FINISHED; the report counts the same orders
    orders = _orders(wire)
    assert {v["robot_id"]: v["orders"] for v in vda["vehicles"]} == {v: len(orders.get(v, [])) for v in VEHICLES}
    assert {v["robot_id"]: v["tasks"] for v in vda["vehicles"]} == {v: {"done": done_by[v]} for v in VEHICLES}
    states = [(_vehicle(t), json.loads(p)) for t, p, _q, _r in wire if t.endswith("/state")]
    for vehicle, sent in orders.items():
        for order in sent:
            actions = {a["actionId"] for part in order["nodes"] + order["edges"] for a in part["actions"]}
            assert any(s["orderId"] == order["orderId"] and not s["nodeStates"] and not s["edgeStates"]
                       and actions <= {a["actionId"] for a in s["actionStates"] if a["actionStatus"] == "FINISHED"}
                       for v, s in states if v == vehicle), (vehicle, order["orderId"])
    tug_actions = {a["actionType"] for order in orders["swarm_bridge/tug-000"] for n in order["nodes"]
                   for a in n["actions"]}
    assert tug_actions == {"hitch"}  # run through the robot's ROS 2 action by its bridge

    # the report's counts are the wire's: the report counted while the demo ran, so what it counted is the first
    # part of what the test's tap saw (the broker hands both taps the same messages in the same order); the
    # vehicles' last state and OFFLINE, at the orderly stop, come after it
    counted = {(v["robot_id"], name): n for v in vda["vehicles"] for name, n in v["messages"].items() if n}
    seen: Counter[tuple[str, str]] = Counter()
    matched = False
    for topic, payload, _qos, _retain in wire:
        if payload:
            seen[(_vehicle(topic), topic.rsplit("/", 1)[-1])] += 1
            matched = matched or dict(seen) == counted
    assert counted and matched, (counted, dict(seen))
    on_wire = Counter(topic.rsplit("/", 1)[-1] for topic, payload, _q, _r in wire if payload)
    assert vda["messages"]["order"] == on_wire["order"] == 6
    assert all(0 < vda["messages"][name] <= on_wire[name] for name in ("state", "connection", "factsheet"))
    instant = Counter(a["actionType"] for t, p, _q, _r in wire if t.endswith("/instantActions")
                      for a in json.loads(p)["actions"])
    assert instant["startPause"] == instant["stopPause"] == 1  # the demo's pause (and stateRequests, if any)
    assert set(instant) <= {"startPause", "stopPause", "stateRequest"}, instant
    (pause,) = vda["pauses"]
    assert pause["robot_id"] == "acme/agv-001" and done_by[pause["robot_id"]] >= 1
    assert {v["robot_id"]: v["connection"] for v in vda["vehicles"]} == dict.fromkeys(VEHICLES, "ONLINE")
    last = {_vehicle(t): json.loads(p)["connectionState"] for t, p, _q, _r in wire if t.endswith("/connection")}
    assert last == dict.fromkeys(VEHICLES, "OFFLINE")

    # the text and the picture say so
    assert "VDA 5050 vehicles on uagv/v2/..., driven by the coordinator as master control:" in result.stdout
    assert "every VDA 5050 message kept to the official JSON Schemas" in result.stdout
    assert "acme/agv-001 paused (startPause) during" in result.stdout
    assert (tmp_path / "demo.png").read_bytes()[:4] == b"\x89PNG"
    bridge_log = (tmp_path / "run" / "robots" / "tug_000" / "robot_bridge.log").read_text()
    assert "vda5050 vehicle swarm_bridge/tug-000: topics uagv/v2/swarm_bridge/tug-000, nodes by " \
           "/tug_000/navigate_to_pose, actionTypes: hitch -> /tug_000/navigate_to_pose" in bridge_log


@pytest.mark.integration
def test_demo_drives_the_vda5050_vehicles_through_the_gateway_and_kafka(tmp_path: Path, ros_env: dict[str, str],
                                                                      vda5050_schemas: Path) -> None:
    """`--kafka`: the coordinator runs on Kafka, the gateway's `payload: vda5050` rules carry the vehicles' messages
    up and the orders down (the Kafka topics the coordinator's vda5050.kafka_topic names); every task done."""
    # A Kafka of its own: the coordinator's sharded topics must not meet topics other tests created.
    with Kafka(run_dir=tmp_path / "kafka", port=free_port()) as kafka:
        _result, report, wire = _run(tmp_path, ros_env, vda5050_schemas, "--kafka", kafka.bootstrap)
        names = ("state", "connection", "factsheet", "order", "instantActions")
        tap = KafkaTap(bootstrap=kafka.bootstrap, topics=[f"vda5050.{n}" for n in names], from_start=True)
        try:
            orders = _orders(wire)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and Counter(r.topic for r in tap.snapshot())["vda5050.order"] < 6:
                time.sleep(0.5)
            on_kafka = Counter(r.topic for r in tap.snapshot())
        finally:
            tap.close()
    vda = report["vda5050"]
    assert report["delivered_at"].startswith("Kafka") and report["tasks"] == {"submitted": 8, "done": 8}
    assert {v["robot_id"]: v["tasks"]["done"] for v in vda["vehicles"]} == {v: len(orders[v]) for v in VEHICLES}
    assert sum(len(o) for o in orders.values()) == vda["messages"]["order"] == on_kafka["vda5050.order"] == 6
    assert all(on_kafka[f"vda5050.{n}"] > 0 for n in ("state", "connection", "factsheet")), on_kafka
    assert SchemaCheck(vda5050_schemas).wire_problems(wire) == [] and vda["invalid"] == 0
    assert vda["pauses"] == []  # the demo pauses a vehicle in single-site mode only
    gateway = (tmp_path / "run" / "robots" / "gateway" / "edge_gateway.yaml").read_text()
    assert "payload: vda5050" in gateway and "vda5050.{stream}" in gateway
