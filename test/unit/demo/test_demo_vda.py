"""The demo's VDA 5050 parts without a broker: `--tasks vda5050`, the ROS vehicle's bridge config, counting the
wire and the report's VDA 5050 section."""

from __future__ import annotations

import json
from pathlib import Path

from swarm_bridge.config import RobotBridgeConfig, validate_config
from swarm_bridge.demo.plan import VDA_FLEET, TaskPlan, task_plan, vda_vehicle_config
from swarm_bridge.demo.report import fleet_report, render
from swarm_bridge.demo.vda import VdaTally, vda_figures
from swarm_bridge.vda5050 import Vda5050Topics


def test_tasks_vda5050_adds_the_vda_vehicles_to_a_fleet_of_reference_robots() -> None:
    assert task_plan("vda5050") == TaskPlan(None, "reference", VDA_FLEET)
    assert task_plan("vda5050:9") == TaskPlan(9, "reference", VDA_FLEET)
    assert {v.sim for v in VDA_FLEET} == {"ros", "plain"}  # a mixed fleet: a ROS robot and plain vehicles
    assert task_plan("actions").vehicles == () and task_plan("4").vehicles == ()


def test_the_ros_vehicle_bridge_config_is_valid_and_maps_its_action_types() -> None:
    tug = next(v for v in VDA_FLEET if v.sim == "ros")
    doc = vda_vehicle_config(tug, host="127.0.0.1", port=1883, spool=Path("/tmp/s.db"), registry="/tmp/r")
    config = validate_config(doc, RobotBridgeConfig)
    assert config.robot_id == "tug_000" and config.vda5050 is not None
    assert (config.vda5050.manufacturer, config.vda5050.serial_number) == ("swarm_bridge", "tug-000")
    assert set(config.vda5050.actions) == {"hitch"} and config.vda5050.schemas is None
    assert [r.stream for r in config.routes] == ["robot_state"]  # up as telemetry, not as a task robot's state


def _message(name: str, serial: str, **fields: object) -> tuple[str, bytes]:
    return f"uagv/v2/acme/{serial}/{name}", json.dumps(fields).encode()


def test_the_tally_counts_per_vehicle_and_topic_and_the_report_shows_it() -> None:
    tally = VdaTally(Vda5050Topics(), schemas=None)
    for topic, payload in (_message("connection", "agv-001", connectionState="ONLINE"),
                           _message("order", "agv-001", orderId="o1"), _message("order", "agv-001", orderId="o1"),
                           _message("order", "agv-001", orderId="o2"), _message("state", "agv-001"),
                           _message("state", "stranger"), ("uagv/v2/acme/agv-001/nonsense", b"{}")):
        tally.count(topic, payload, 1)
    tally.count("uagv/v2/acme/agv-001/connection", b"", 2)  # a retained message cleared: not a message
    assert tally.unreadable == 1 and tally.orders == {"acme/agv-001": ["o1", "o2"]}
    vehicles = [v for v in VDA_FLEET if v.robot_id == "acme/agv-001"]
    figures = vda_figures(tally, vehicles, [{"robot_id": "acme/agv-001", "state": "done"}], None)
    (row,) = figures["vehicles"]
    assert (row["connection"], row["orders"], row["tasks"]) == ("ONLINE", 2, {"done": 1})
    assert row["messages"]["order"] == 3 and row["messages"]["state"] == 1
    assert figures["other_vehicles"] == {"acme/stranger": 1} and figures["messages"]["state"] == 2
    report = fleet_report([], replay_s=1.0, skipped={}, extra={"vda5050": {**figures, "pauses": []}})
    text = render(report)
    assert "VDA 5050 vehicles on uagv/v2/..., driven by the coordinator as master control:" in text
    assert "not checked against the official JSON Schemas" in text and "from vehicles not in the demo: 1" in text


def test_a_message_that_is_not_json_counts_as_invalid() -> None:
    tally = VdaTally(Vda5050Topics(), schemas=None)
    tally.count("uagv/v2/acme/agv-001/state", b"{not json", 1)
    assert tally.invalid == 1 and tally.problems[0].startswith("uagv/v2/acme/agv-001/state: not JSON")

