"""VDA 5050 vehicles and the single-site coordinator across a Mosquitto restart (its own broker, persistence on):
the broker publishes the vehicle's Last Will (CONNECTIONBROKEN), the vehicle keeps driving its order without the
broker (section 6.2) and keeps its task for robot_offline_after_s, both sides reconnect, the task ends done on the
first attempt, and a task submitted afterwards is done too; every message valid."""

from __future__ import annotations

from pathlib import Path

import pytest
from vda_site import VdaSite
from vda_vehicles import VehicleSpec

from swarm_bridge.brokers import Mosquitto, free_port
from swarm_bridge.coordinator.core.tasks import TaskState

pytestmark = pytest.mark.integration


def test_a_task_survives_a_broker_restart(tmp_path: Path, vda5050_schemas: Path) -> None:
    broker = Mosquitto(run_dir=tmp_path / "mosquitto", port=free_port())
    broker.start()
    site = None
    try:
        site = VdaSite(broker, vda5050_schemas, [VehicleSpec("acme", "patient", speed_mps=0.5)],
                       mqtt={"session_expiry_s": 600})
        site.submit("through", "navigate", 4.0, 0.0)
        site.wait_state("through", {TaskState.RUNNING})
        broker.stop()
        broker.start()
        site.wait_state("through", {TaskState.DONE, TaskState.FAILED}, 60)
        task = site.coordinator.task("through")
        assert task is not None
        assert task.state is TaskState.DONE and task.attempts == 1, task.reason
        site.submit("after", "navigate", 0.0, 0.0)
        site.wait_state("after", {TaskState.DONE, TaskState.FAILED}, 60)
        assert site.state_of("after") is TaskState.DONE
        assert site.check.wire_problems(site.tap.snapshot()) == []
    finally:
        if site is not None:
            site.close()
        broker.stop()
