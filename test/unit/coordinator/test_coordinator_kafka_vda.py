"""The Kafka coordinator's VDA 5050 side without a broker: records of the gateway's topics (key
manufacturer/serialNumber) folded into the fleet view, orders as records for its down rules, an order another
instance sent adopted once the task is known."""

from __future__ import annotations

import json
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


def config() -> CoordinatorConfig:
    return validate_config({"fleet": "f", "shards": 2, "kafka": {"port": 9092},
                            "capabilities": {"agv": ["navigate", "pick"]},
                            "vda5050": {"manufacturers": {"acme": "agv"}, "kafka_topic": "v.{stream}"}},
                           CoordinatorConfig)


def payload(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc).encode()


def test_vehicles_come_from_the_gateway_s_topics_and_orders_go_to_its_down_topics() -> None:
    book = TaskBook()
    vda = KafkaVda(config(), lambda: book)
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
    assert json.loads(record.value)["orderId"] == "t1#1"
    with pytest.raises(MessageInvalid, match="manufacturer/serialNumber"):
        vda.fold("v.state", b"agv1", payload(state_doc()), fleet, 4)


def test_an_order_another_instance_sent_is_adopted_once_its_task_is_read() -> None:
    book = TaskBook()
    vda = KafkaVda(config(), lambda: book)
    fleet = FleetView()
    running = payload(state_doc(order_id="t1#1", last_node_id="start", nodes=[("t1#1:goal", 2)], edges=[("e", 1)]))
    vda.fold("v.state", b"acme/agv1", running, fleet, 1)
    assert vda.reports == []  # the task's event not read yet
    book.apply(assigned(new_task(TaskRequest("t1", "navigate"), 0), "acme/agv1", 1))
    vda.fold("v.state", b"acme/agv1", running, fleet, 2)
    assert [(r.task_id, r.state) for r in vda.reports] == [("t1", TaskState.RUNNING)]
