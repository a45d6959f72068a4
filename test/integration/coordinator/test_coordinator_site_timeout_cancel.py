"""A run timeout in the single-site coordinator (mode mqtt) on a real Mosquitto: the task fails and its VDA 5050
vehicle (test/support/vda_vehicles.py, written from the spec) gets cancelOrder, so it does not drive on to a goal
the coordinator gave up."""

from __future__ import annotations

from pathlib import Path

import pytest
from site_harness import wait_for
from vda_site import VdaSite
from vda_vehicles import VehicleSpec

from swarm_bridge.brokers import Mosquitto
from swarm_bridge.coordinator.core.tasks import TaskState


@pytest.mark.integration
def test_a_run_timeout_fails_the_task_and_stops_its_vehicle(mosquitto: Mosquitto, vda5050_schemas: Path) -> None:
    # 0.05 m/s to a goal 30 m away: its order's progress does not change for minutes, so no report moves the task
    site = VdaSite(mosquitto, vda5050_schemas, [VehicleSpec("acme", "slow", speed_mps=0.05)],
                   tasks={"run_timeout_s": 4.0, "robot_offline_after_s": 120.0})
    try:
        vehicle = site.vehicles["acme/slow"]
        site.submit("far", "navigate", 30.0, 0.0)
        site.wait_state("far", {TaskState.RUNNING})
        wait_for(lambda: vehicle.driving, 15, "the vehicle driving")
        site.wait_state("far", {TaskState.FAILED}, timeout_s=60)
        task = site.coordinator.task("far")
        assert task is not None and "no report from robot acme/slow" in task.reason
        wait_for(lambda: any(a["actionType"] == "cancelOrder" and a["actionStatus"] == "FINISHED"
                             for _t, doc in site.tap.on("state") for a in doc["actionStates"]), 30,
                 "cancelOrder FINISHED in the vehicle's state")
        wait_for(lambda: not vehicle.driving, 15, "the vehicle stopped")
        sent = [(a["actionType"], a["actionId"]) for _t, doc in site.tap.on("instantActions")
                for a in doc["actions"] if a["actionType"] != "stateRequest"]
        assert sent == [("cancelOrder", "far#1:cancel")]
        assert vehicle.x < 30.0
        assert site.check.wire_problems(site.tap.snapshot()) == []
    finally:
        site.close()
