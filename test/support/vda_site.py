"""The VDA 5050 test site: a single-site coordinator with a vda5050: section, simulated VDA 5050 vehicles, optional
swarm_bridge robots, and a tap on every VDA 5050 topic of its interface (a name of its own per site, so tests that
share a broker keep their retained messages apart)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from gateway_harness import write_config as gateway_config
from site_harness import site_doc, wait_for
from vda_vehicles import VdaVehicles, VehicleSpec
from vda_wire import SchemaCheck, WireTap

from swarm_bridge.brokers import Mosquitto
from swarm_bridge.config import CoordinatorConfig, validate_config
from swarm_bridge.coordinator.core.tasks import TaskState
from swarm_bridge.coordinator.site.runner import SiteCoordinator
from swarm_bridge.sim.records import SiteRobotRecords
from swarm_bridge.sim.site_fleet import SiteFleet
from swarm_bridge.sim.task_robots import TaskRobot

__all__ = ["CAPABILITIES", "VdaSite"]

CAPABILITIES = {"agv": ["navigate", "pick"], "amr": ["navigate", "charge"]}


class VdaSite:
    """A site coordinator with a vda5050: section, simulated VDA vehicles, optional swarm_bridge robots, and a tap
    on every VDA 5050 topic (started before anyone, so it sees every message)."""

    def __init__(self, broker: Mosquitto, schemas: Path, specs: list[VehicleSpec],
                 robots: list[TaskRobot] | None = None, *, state_period_s: float = 1.0, **overrides: Any) -> None:
        self.interface = f"uagv{uuid.uuid4().hex[:6]}"  # tests share a broker: retained messages stay apart
        self.tap = WireTap(broker.host, broker.port, self.interface)
        self.check = SchemaCheck(schemas)
        doc = site_doc(broker, capabilities=CAPABILITIES,
                       vda5050={"manufacturers": {"acme": "agv"}, "actions": {"pick": "pick"},
                                "schemas": str(schemas), "interface_name": self.interface}, **overrides)
        doc["capabilities"] = CAPABILITIES
        self.doc = doc
        self.config = validate_config(doc, CoordinatorConfig)
        self.coordinator = SiteCoordinator(self.config).start()
        self.vehicles = VdaVehicles(specs, host=broker.host, port=broker.port, interface=self.interface,
                                    state_period_s=state_period_s).start()
        self.robots: SiteFleet | None = None
        if robots:
            records = SiteRobotRecords(self.coordinator.topics, fmt=self.config.robot_format)
            self.robots = SiteFleet(host=broker.host, port=broker.port, records=records, robots=robots).start()
        every = [f"acme/{s.serial}" for s in specs] + [r.robot_id for r in robots or []]
        wait_for(lambda: all((seen := self.coordinator.dispatch.fleet.get(r)) is not None and seen.kind
                             and seen.online for r in every), 15, "every vehicle and robot online with its kind")

    def submit(self, task_id: str, kind: str, x: float, y: float, **fields: Any) -> None:
        answer = self.coordinator.submit({"task_id": task_id, "kind": kind, "target": {"x": x, "y": y}, **fields})
        assert answer.accepted, answer

    def state_of(self, task_id: str) -> TaskState:
        task = self.coordinator.task(task_id)
        assert task is not None
        return task.state

    def wait_state(self, task_id: str, states: set[TaskState], timeout_s: float = 30) -> None:
        wait_for(lambda: self.state_of(task_id) in states, timeout_s, f"task {task_id} in {sorted(states)}")

    def close(self) -> None:
        if self.robots is not None:
            self.robots.stop()
        self.vehicles.stop()
        self.coordinator.stop()
        self.tap.close()


@pytest.fixture(name="vda_site")
def vda_site_fixture(mosquitto: Mosquitto, vda5050_schemas: Path) -> Iterator[Callable[..., VdaSite]]:
    """Fixture `vda_site`: makes VdaSites on the test's Mosquitto (vehicles, robots, a site coordinator), all
    closed at the end."""
    sites: list[VdaSite] = []

    def make(specs: list[VehicleSpec], robots: list[TaskRobot] | None = None, **options: Any) -> VdaSite:
        site = VdaSite(mosquitto, vda5050_schemas, specs, robots, **options)
        sites.append(site)
        return site

    yield make
    for site in sites:
        site.close()


def vda_gateway_config(path: Path, tag: str, interface: str, *, mosquitto: Mosquitto, bootstrap: str,
                       registry: Path, fmt: str | None = None, **extra: Any) -> Path:
    """A gateway between VDA 5050 vehicles on `interface` and the coordinator's Kafka topics `vda_{tag}.*`: state,
    connection and factsheet up (format `fmt`, default the gateway's), order and instantActions down; `registry`
    must be the coordinator's (the Avro records' ids are looked up there)."""
    up: dict[str, Any] = {"mqtt": f"{interface}/v2/{{manufacturer}}/{{robot_id}}/{{stream}}",
                          "where": {"stream": ["state", "connection", "factsheet"]},
                          "kafka_topic": f"vda_{tag}.{{stream}}", "key": "{manufacturer}/{robot_id}",
                          "payload": "vda5050"}
    if fmt is not None:
        up["vda5050_format"] = fmt
    down = [{"kafka_topic": f"vda_{tag}.{name}", "mqtt": f"{interface}/v2/{{robot_id}}/{name}", "payload": "vda5050"}
            for name in ("order", "instantActions")]
    return gateway_config(path, gateway_id=f"gw_{tag}", fleet=f"fleet_{tag}", mqtt_port=mosquitto.port,
                          bootstrap=bootstrap, registry=registry, up=[up], down=down, **extra)
