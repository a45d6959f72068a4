"""The fleet page on Kafka with VDA 5050 vehicles, in headless Chromium: a Kafka coordinator drives a test vehicle
(test/support/vda_vehicles.py) through a real gateway between real Mosquitto and Kafka; the page shows the vehicle
(kind, presence, position, the task it runs), a task cancelled with `task cancel` through its states to cancelled
with its reason, and the gateway that carries it up."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from coordinator_fleet import Stepping, coordinator_config, write_config
from fleet_page import (
    chromium,
    gateways_shown,
    robots_shown,
    screenshot,
    task_counts_shown,
    task_shown,
    updates,
    wait_until,
)
from gateway_harness import GatewayThread
from vda_site import vda_gateway_config
from vda_vehicles import VdaVehicles, VehicleSpec

from swarm_bridge.brokers import Kafka, Mosquitto
from swarm_bridge.cli import main as cli_main
from swarm_bridge.coordinator.kafka.runner import CoordinatorInstance
from swarm_bridge.coordinator.kafka.snapshot import submit_tasks
from swarm_bridge.fleetweb import FleetWeb, WebSettings

pytestmark = pytest.mark.integration


def test_the_page_on_kafka_shows_vda5050_vehicles_and_a_cancelled_task(tmp_path: Path, mosquitto: Mosquitto,
                                                                       kafka: Kafka) -> None:
    tag = uuid.uuid4().hex[:6]
    interface = f"uagv{tag}"
    config = coordinator_config(kafka, tmp_path, kafka={"instance_id": "solo"},
                                topics={"gateway_health": f"t{tag}.health"},
                                capabilities={"agv": ["navigate", "pick"]},
                                vda5050={"manufacturers": {"acme": "agv"}, "interface_name": interface,
                                         "kafka_topic": f"vda_{tag}.{{stream}}"})
    coordinator = Stepping(CoordinatorInstance(config))  # makes its topics, the vda_{tag}.* ones too
    gateway_id = f"gw_{tag}"
    gateway = GatewayThread(vda_gateway_config(
        tmp_path / "gw.yaml", tag, interface, mosquitto=mosquitto, bootstrap=kafka.bootstrap,
        registry=tmp_path / "registry", kafka={"dlq_topic": f"dlq_{tag}"},
        health={"topic": f"t{tag}.health", "interval_s": 1.0}))
    vehicles = VdaVehicles([VehicleSpec("acme", "agv1", x=1.0, y=2.0, speed_mps=2.0)], host=mosquitto.host,
                           port=mosquitto.port, interface=interface, state_period_s=0.5).start()
    web = FleetWeb(config, WebSettings(port=0, period_s=0.5)).start()
    browser = chromium(tmp_path / "chromium")
    cli_config = write_config(json.loads(config.model_dump_json()), tmp_path / "coordinator.yaml")
    try:
        browser.get(web.url)
        wait_until(lambda: updates(browser) > 0, 60, "the page's first snapshot")
        def online() -> dict[str, str] | None:
            row = robots_shown(browser).get("acme/agv1")
            return row if row is not None and row["presence"] == "online" else None

        vehicle = wait_until(online, 90, "the vehicle acme/agv1 online on the page")
        assert vehicle["kind"] == "agv" and vehicle["position"] == "(1.0, 2.0)"
        assert submit_tasks(config, [{"task_id": "far", "kind": "navigate", "target": {"x": 400.0}}]) == 0
        wait_until(lambda: (task_shown(browser, "far") or {}).get("state") == "running", 90, "far running")
        wait_until(lambda: robots_shown(browser)["acme/agv1"]["task"] == "far · running", 60,
                   "the vehicle's row naming the task it runs")
        assert cli_main(["task", "cancel", "--config", str(cli_config), "--task-id", "far",
                         "--reason", "aisle blocked"]) == 0
        def cancelled() -> dict[str, str] | None:
            row = task_shown(browser, "far")
            return row if row is not None and row["state"] == "cancelled" else None

        far = wait_until(cancelled, 90, "far cancelled on the page")
        assert far["robot"] == "acme/agv1" and far["reason"].startswith("aisle blocked")
        assert far["history"].split(" → ")[-2:] == ["running", "cancelled"]
        assert task_counts_shown(browser)["cancelled"] == 1
        wait_until(lambda: not vehicles["acme/agv1"].driving, 30, "the vehicle stopped")
        here = vehicles["acme/agv1"]
        wait_until(lambda: robots_shown(browser)["acme/agv1"]["position"] == f"({here.x:.1f}, {here.y:.1f})", 30,
                   "the vehicle where it stopped")
        assert robots_shown(browser)["acme/agv1"]["task"] == "–"  # nothing under way any more
        assert gateways_shown(browser)[gateway_id]["state"] == "up"
        screenshot(browser, tmp_path, "fleet_page_kafka_vda5050.png")
    finally:
        browser.quit()
        web.stop()
        vehicles.stop()
        gateway.close()
        coordinator.close()
    assert coordinator.error is None
