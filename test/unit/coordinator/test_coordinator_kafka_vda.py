"""The Kafka coordinator's VDA 5050 side without a broker: records of the gateway's topics (key
manufacturer/serialNumber; Confluent Avro or JSON) folded into the fleet view, orders as records for its down
rules (Avro by default, JSON by choice), an order another instance sent adopted once the task is known."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from vda_docs import connection_doc, state_doc

from swarm_bridge.config import CoordinatorConfig, validate_config
from swarm_bridge.coordinator.core.dispatch import ASSIGN, Command
from swarm_bridge.coordinator.core.events import TaskBook
from swarm_bridge.coordinator.core.fleet import FleetView
from swarm_bridge.coordinator.core.tasks import TaskRequest, TaskState, assigned, new_task
from swarm_bridge.coordinator.kafka.vda import KafkaVda
from swarm_bridge.vda5050 import MessageInvalid


def config(tmp_path: Path, **vda: str) -> CoordinatorConfig:
    """A Kafka coordinator's config with VDA 5050 vehicles, its registry a file registry under `tmp_path`."""
    return validate_config({"fleet": "f", "shards": 2, "kafka": {"port": 9092}, "registry": str(tmp_path / "reg"),
                            "capabilities": {"agv": ["navigate", "pick"]},
                            "vda5050": {"manufacturers": {"acme": "agv"}, "kafka_topic": "v.{stream}", **vda}},
                           CoordinatorConfig)


def test_avro_records_of_the_gateway_fold_and_orders_go_down_as_avro(tmp_path: Path) -> None:
    book = TaskBook()
    vda = KafkaVda(config(tmp_path), lambda: book)
    fleet = FleetView()
    gateway = vda.records  # the gateway writes the same records (swarm_bridge.vda5050.kafka)
    assert vda.fold("v.connection", b"acme/agv1", gateway.avro("v.connection", "connection", connection_doc()),
                    fleet, 1)
    assert vda.fold("v.state", b"acme/agv1", gateway.avro("v.state", "state", state_doc()), fleet, 2)
    robot = fleet.get("acme/agv1")
    assert robot is not None and robot.online and robot.kind == "agv"
    task = assigned(new_task(TaskRequest("t1", "pick", parameters=(("sku", "A7"),)), 0), "acme/agv1", 1)
    [record] = vda.command(Command(0, "acme/agv1", ASSIGN, task, task.command_id), 3)
    assert (record.topic, record.key, record.value[:1]) == ("v.order", "acme/agv1", b"\x00")
    topic, order = vda.records.read(record.value)
    assert topic == "order" and order["orderId"] == "t1#1"
    assert vda.registry.registry.subjects() == ["v.connection-value", "v.order-value", "v.state-value"]
    with pytest.raises(MessageInvalid, match=r"record of vda5050\.v2\.Order where a state is expected"):
        vda.fold("v.state", b"acme/agv1", record.value, fleet, 4)
    vda.close()


def test_kafka_format_json_writes_orders_as_json(tmp_path: Path) -> None:
    book = TaskBook()
    vda = KafkaVda(config(tmp_path, kafka_format="json"), lambda: book)
    fleet = FleetView()
    vda.fold("v.state", b"acme/agv1", payload(state_doc()), fleet, 2)
    task = assigned(new_task(TaskRequest("t1", "navigate"), 0), "acme/agv1", 1)
    [record] = vda.command(Command(0, "acme/agv1", ASSIGN, task, task.command_id), 3)
    assert json.loads(record.value)["orderId"] == "t1#1"


def payload(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc).encode()


def test_vehicles_come_from_the_gateway_s_topics_and_orders_go_to_its_down_topics(tmp_path: Path) -> None:
    book = TaskBook()
    vda = KafkaVda(config(tmp_path), lambda: book)
    fleet = FleetView()
    assert vda.up == ["v.state", "v.connection", "v.factsheet"]
    assert not vda.fold("v.order", b"acme/agv1", b"{}", fleet, 1)  # not an up topic: not its record
    assert vda.fold("v.connection", b"acme/agv1", payload(connection_doc()), fleet, 1)
    assert vda.fold("v.state", b"acme/agv1", payload(state_doc()), fleet, 2)
    robot = fleet.get("acme/agv1")
    assert robot is not None and robot.online and robot.kind == "agv" and vda.knows("acme/agv1")
    task = assigned(new_task(TaskRequest("t1", "navigate"), 0), "acme/agv1", 1)
    [record] = vda.command(Command(0, "acme/agv1", ASSIGN, task, task.command_id), 3)
    assert (record.topic, record.key) == ("v.order", "acme/agv1")
    assert vda.records.read(record.value)[1]["orderId"] == "t1#1"
    with pytest.raises(MessageInvalid, match="manufacturer/serialNumber"):
        vda.fold("v.state", b"agv1", payload(state_doc()), fleet, 4)


def test_an_order_another_instance_sent_is_adopted_once_its_task_is_read(tmp_path: Path) -> None:
    book = TaskBook()
    vda = KafkaVda(config(tmp_path), lambda: book)
    fleet = FleetView()
    running = payload(state_doc(order_id="t1#1", last_node_id="start", nodes=[("t1#1:goal", 2)], edges=[("e", 1)]))
    vda.fold("v.state", b"acme/agv1", running, fleet, 1)
    assert vda.reports == []  # the task's event not read yet
    book.apply(assigned(new_task(TaskRequest("t1", "navigate"), 0), "acme/agv1", 1))
    vda.fold("v.state", b"acme/agv1", running, fleet, 2)
    assert [(r.task_id, r.state) for r in vda.reports] == [("t1", TaskState.RUNNING)]
