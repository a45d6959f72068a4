"""VDA 5050 topics -> Kafka through the gateway, real Mosquitto and Kafka: a simulated vehicle's state,
connection and factsheet arrive keyed manufacturer/serialNumber, unchanged; a message sent twice arrives once;
after the vehicle restarts (its headerIds from 0 again) its messages still arrive."""

from __future__ import annotations

import json
import uuid
from functools import partial
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from gateway_harness import GatewayThread, read_topic, wait_for, write_config
from paho.mqtt.enums import CallbackAPIVersion
from vda_vehicles import VdaVehicles, VehicleSpec
from vda_wire import SchemaCheck, WireTap

from swarm_bridge.brokers import Kafka, Mosquitto
from swarm_bridge.transport import ensure_kafka_topics

pytestmark = pytest.mark.integration


def test_vda5050_messages_reach_kafka_once_across_a_counter_reset(tmp_path: Path, mosquitto: Mosquitto,
                                                                   kafka: Kafka, vda5050_schemas: Path) -> None:
    tag = uuid.uuid4().hex[:6]
    interface = f"uagv{tag}"
    streams = ["state", "connection", "factsheet"]
    ensure_kafka_topics(kafka.bootstrap, [f"vda_{tag}.{s}" for s in streams] + ["fleet.dlq"])
    config = write_config(tmp_path / "gw.yaml", gateway_id=f"gw_{tag}", fleet=f"fleet_{tag}",
                          mqtt_port=mosquitto.port, bootstrap=kafka.bootstrap, registry=tmp_path / "registry",
                          up=[{"mqtt": f"{interface}/v2/{{manufacturer}}/{{robot_id}}/{{stream}}",
                               "where": {"stream": streams}, "kafka_topic": f"vda_{tag}.{{stream}}",
                               "key": "{manufacturer}/{robot_id}", "payload": "vda5050"}], down=[])
    gateway = GatewayThread(config)
    tap = WireTap(mosquitto.host, mosquitto.port, interface)

    def states_at_least(count: int) -> bool:
        return len([p for t, p, _q, _r in tap.snapshot() if t.endswith("/state")]) >= count

    try:
        for run in range(2):  # the second run is the vehicle restarted: headerIds from 0 again
            vehicles = VdaVehicles([VehicleSpec("acme", "agv7")], host=mosquitto.host, port=mosquitto.port,
                                   interface=interface, state_period_s=0.1).start()
            assert wait_for(partial(states_at_least, 5 * (run + 1)), 15)
            vehicles.stop()
        states = [p for t, p, _q, _r in tap.snapshot() if t.endswith("/state")]
        ids = [json.loads(p)["headerId"] for p in states]
        assert ids.count(0) == 2  # both runs counted from 0
        again = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"vda-again-{tag}", protocol=paho.MQTTv5)
        again.connect(mosquitto.host, mosquitto.port)
        again.loop_start()
        for payload in (states[1], states[1], states[-1]):  # sent again: already in Kafka
            again.publish(f"{interface}/v2/acme/agv7/state", payload, qos=1).wait_for_publish(5)
        again.disconnect()
        again.loop_stop()
        assert wait_for(lambda: gateway.counts.duplicates >= 3, 15)
        records = read_topic(kafka.bootstrap, f"vda_{tag}.state", count=len(states) + 3, timeout_s=10)
        assert sorted(r.value() for r in records) == sorted(states)  # each once, unchanged
        assert {r.key() for r in records} == {b"acme/agv7"}
        connections = read_topic(kafka.bootstrap, f"vda_{tag}.connection", count=4, timeout_s=10)
        assert [json.loads(r.value())["connectionState"] for r in connections] == ["ONLINE", "OFFLINE"] * 2
        check = SchemaCheck(vda5050_schemas)
        assert check.wire_problems([(f"x/{topic}", r.value(), 0, False) for topic in streams
                                    for r in read_topic(kafka.bootstrap, f"vda_{tag}.{topic}", count=100,
                                                        timeout_s=3)]) == []
    finally:
        tap.close()
        gateway.close()


def test_an_order_from_kafka_drives_a_vehicle_and_its_state_comes_back(tmp_path: Path, mosquitto: Mosquitto,
                                                                        kafka: Kafka, vda5050_schemas: Path) -> None:
    """Master control on Kafka: an order keyed manufacturer/serialNumber goes down to the vehicle's MQTT topic
    unchanged, the vehicle drives it, its state comes up; a record for no vehicle, or for another vehicle than
    its key, goes to the DLQ."""
    from confluent_kafka import Producer

    tag = uuid.uuid4().hex[:6]
    interface = f"uagv{tag}"
    ensure_kafka_topics(kafka.bootstrap, [f"vda_{tag}.order", f"vda_{tag}.state", "fleet.dlq"])
    config = write_config(tmp_path / "gw.yaml", gateway_id=f"gw_{tag}", fleet=f"fleet_{tag}",
                          mqtt_port=mosquitto.port, bootstrap=kafka.bootstrap, registry=tmp_path / "registry",
                          up=[{"mqtt": f"{interface}/v2/{{manufacturer}}/{{robot_id}}/{{stream}}",
                               "where": {"stream": ["state"]}, "kafka_topic": f"vda_{tag}.{{stream}}",
                               "key": "{manufacturer}/{robot_id}", "payload": "vda5050"}],
                          down=[{"kafka_topic": f"vda_{tag}.order", "mqtt": f"{interface}/v2/{{robot_id}}/order",
                                 "payload": "vda5050"}])
    gateway = GatewayThread(config)
    vehicles = VdaVehicles([VehicleSpec("acme", "agv9", x=0.0, speed_mps=4.0)], host=mosquitto.host,
                           port=mosquitto.port, interface=interface, state_period_s=0.5).start()
    order = {"headerId": 0, "timestamp": "2026-12-06T10:00:00.00Z", "version": "2.1.0", "manufacturer": "acme",
             "serialNumber": "agv9", "orderId": "k1", "orderUpdateId": 0,
             "nodes": [{"nodeId": "a", "sequenceId": 0, "released": True, "actions": [],
                        "nodePosition": {"x": 0.0, "y": 0.0, "mapId": "map"}},
                       {"nodeId": "b", "sequenceId": 2, "released": True, "actions": [],
                        "nodePosition": {"x": 2.0, "y": 0.0, "mapId": "map"}}],
             "edges": [{"edgeId": "ab", "sequenceId": 1, "released": True, "startNodeId": "a", "endNodeId": "b",
                        "actions": []}]}
    assert SchemaCheck(vda5050_schemas).problems("order", order) == []
    producer = Producer({"bootstrap.servers": kafka.bootstrap})
    try:
        producer.produce(f"vda_{tag}.order", json.dumps(order).encode(), b"agv9")  # no manufacturer
        producer.produce(f"vda_{tag}.order", json.dumps({**order, "serialNumber": "agv8"}).encode(), b"acme/agv9")
        producer.produce(f"vda_{tag}.order", json.dumps(order).encode(), b"acme/agv9")
        producer.flush(10)
        vehicle = vehicles["acme/agv9"]

        def finished(doc: dict[str, object]) -> bool:
            return doc["orderId"] == "k1" and doc["lastNodeId"] == "b" and doc["nodeStates"] == []

        assert wait_for(lambda: vehicle.last_node == ("b", 2), 30), vehicle.received
        assert wait_for(lambda: any(finished(json.loads(r.value())) for r in read_topic(
            kafka.bootstrap, f"vda_{tag}.state", count=1000, timeout_s=1)), 30)
        assert [doc for topic, doc in vehicle.received if topic == "order"] == [order]  # only the good one, as is
        assert wait_for(lambda: gateway.counts.commands_dead == 2, 15)
        dead = read_topic(kafka.bootstrap, "fleet.dlq", count=1000, timeout_s=3)
        details = [dict(m.headers() or []).get("detail", b"").decode() for m in dead
                   if m.topic() == "fleet.dlq" and (m.key() or b"") in (b"agv9", b"acme/agv9")]
        assert any("is not a VDA 5050 vehicle: manufacturer/serialNumber" in d for d in details), details
        assert any("the message is for acme/agv8, its record key acme/agv9" in d for d in details), details
    finally:
        vehicles.stop()
        gateway.close()
