"""VDA 5050 vehicles driven by the Kafka coordinator through the gateway, on real Mosquitto and Kafka: the test
vehicles (test/support/vda_vehicles.py, written from the spec) on MQTT, the gateway's `payload: vda5050` rules
carrying their state, connection and factsheet up and the coordinator's orders and instant actions down, as
Confluent Avro of the records derived from the official JSON Schemas (the default) or as JSON (the choice kept);
a task done, a task cancelled (cancelOrder, confirmed by the vehicle's state), every MQTT message checked against
the official JSON Schemas."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from coordinator_fleet import Stepping, TaskLog, coordinator_config, wait_for, write_config
from gateway_harness import GatewayThread, read_topic
from vda_site import vda_gateway_config
from vda_vehicles import VdaVehicles, VehicleSpec
from vda_wire import SchemaCheck, WireTap

from swarm_bridge.brokers import Kafka, Mosquitto
from swarm_bridge.cli import main as cli_main
from swarm_bridge.codec.registry import FileRegistry
from swarm_bridge.coordinator.core.tasks import TaskState
from swarm_bridge.coordinator.kafka.runner import CoordinatorInstance
from swarm_bridge.coordinator.kafka.snapshot import cancel_task, submit_tasks
from swarm_bridge.transport import ensure_kafka_topics
from swarm_bridge.vda5050.kafka import VdaKafka

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("fmt", ["avro", "json"])
def test_the_kafka_coordinator_drives_vda5050_vehicles_through_the_gateway(
        tmp_path: Path, mosquitto: Mosquitto, kafka: Kafka, vda5050_schemas: Path,
        capsys: pytest.CaptureFixture[str], fmt: str) -> None:
    tag = uuid.uuid4().hex[:6]
    interface = f"uagv{tag}"
    config = coordinator_config(kafka, tmp_path, kafka={"instance_id": "solo"},
                                capabilities={"agv": ["navigate", "pick"]},
                                vda5050={"manufacturers": {"acme": "agv"}, "actions": {"pick": "pick"},
                                         "interface_name": interface, "kafka_topic": f"vda_{tag}.{{stream}}",
                                         "schemas": str(vda5050_schemas), "kafka_format": fmt})
    coordinator = Stepping(CoordinatorInstance(config))  # makes the vda_{tag}.* topics
    ensure_kafka_topics(kafka.bootstrap, ["fleet.dlq"])
    gateway = GatewayThread(vda_gateway_config(tmp_path / "gw.yaml", tag, interface, mosquitto=mosquitto,
                                               bootstrap=kafka.bootstrap, registry=tmp_path / "registry", fmt=fmt))
    tap = WireTap(mosquitto.host, mosquitto.port, interface)
    log = TaskLog(kafka, config)
    vehicles = VdaVehicles([VehicleSpec("acme", "agv1", x=0.0, speed_mps=2.0)], host=mosquitto.host,
                           port=mosquitto.port, interface=interface, state_period_s=0.5).start()
    dispatch = coordinator.instance.dispatch

    def state_of(task_id: str) -> TaskState | None:
        event = log.last().get(task_id)
        return None if event is None else event.task.state

    try:
        wait_for(lambda: (seen := dispatch.fleet.get("acme/agv1")) is not None and seen.online and bool(seen.kind),
                 60, "acme/agv1 online with its kind in the coordinator's view")
        assert submit_tasks(config, [{"task_id": "pick-1", "kind": "pick", "target": {"x": 2.0, "y": 0.0},
                                      "parameters": {"sku": "A7"}}]) == 0
        wait_for(lambda: state_of("pick-1") is TaskState.DONE, 90, "pick-1 done by acme/agv1")
        assert submit_tasks(config, [{"task_id": "far", "kind": "navigate", "target": {"x": 400.0}}]) == 0
        wait_for(lambda: state_of("far") is TaskState.RUNNING and vehicles["acme/agv1"].driving, 60,
                 "far running, the vehicle driving")
        assert cancel_task(config, "far", "aisle blocked") == 0
        wait_for(lambda: state_of("far") is TaskState.CANCELLED, 60, "far cancelled")
        wait_for(lambda: not vehicles["acme/agv1"].driving, 30, "the vehicle stopped")
        wire = tap.snapshot()
        on_kafka = {name: read_topic(kafka.bootstrap, f"vda_{tag}.{name}", count=1000, timeout_s=3)
                    for name in ("order", "instantActions", "state")}
        cli_config = write_config(json.loads(config.model_dump_json()), tmp_path / "coordinator.yaml")
        capsys.readouterr()
        assert cli_main(["fleet", "status", "--config", str(cli_config), "--json"]) == 0
        status = json.loads(capsys.readouterr().out)
    finally:
        vehicles.stop()
        log.close()
        tap.close()
        gateway.close()
        coordinator.close()
    assert coordinator.error is None
    orders = tap.on("order")
    assert [doc["orderId"] for _t, doc in orders] == ["pick-1#1", "far#1"]
    assert [a["actionType"] for a in orders[0][1]["nodes"][-1]["actions"]] == ["pick"]
    cancels = [a for _t, doc in tap.on("instantActions") for a in doc["actions"] if a["actionType"] == "cancelOrder"]
    assert [a["actionId"] for a in cancels] == ["far#1:cancel"]
    far = log.last()["far"].task
    assert far.reason.startswith("aisle blocked") and far.robot_id == "acme/agv1"
    assert vehicles["acme/agv1"].x < 400.0
    assert SchemaCheck(vda5050_schemas).wire_problems(wire) == []
    # on Kafka: Avro (Confluent framing, 00 + the registry id) or JSON as configured; each order on Kafka is the
    # JSON the vehicle got
    assert {m.value()[:1] for records in on_kafka.values() for m in records} == {b"\x00" if fmt == "avro" else b"{"}
    records = VdaKafka(register=FileRegistry(tmp_path / "registry").register,
                       by_id=FileRegistry(tmp_path / "registry").by_id)
    assert [records.read(m.value(), "order")[1] for m in on_kafka["order"]] == [doc for _t, doc in orders]
    assert set(log.terminal().values()) == {1}
    # `fleet status` reads the vehicles from the gateway's topics as the coordinator does
    assert [(r["robot_id"], r["kind"], r["online"]) for r in status["robots"]] == [("acme/agv1", "agv", True)]
    assert status["tasks"]["done"] == 1 and status["tasks"]["cancelled"] == 1
