"""VDA 5050 topics <-> Kafka through the gateway, on real Mosquitto, Kafka and a Confluent-API schema registry
(Apicurio): a simulated vehicle's state, connection and factsheet arrive as Confluent-framed Avro keyed
manufacturer/serialNumber, read back by confluent-kafka's own AvroDeserializer equal to what the vehicle sent; a
message sent twice arrives once, also after the vehicle restarted (headerIds from 0 again); a property the schema
does not name travels in `_extra`; a message that does not fit its record goes to the DLQ by reason; an order
written by confluent-kafka's AvroSerializer reaches the vehicle as the JSON it was, which drives it. Every MQTT
message is checked against the official JSON Schemas."""

from __future__ import annotations

import json
import uuid
from functools import partial
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from gateway_harness import GatewayThread, read_topic, wait_for, write_config
from paho.mqtt.enums import CallbackAPIVersion
from registry_server import module_registry, registry_client  # noqa: F401  (fixtures server, client)
from vda_vehicles import VdaVehicles, VehicleSpec
from vda_wire import SchemaCheck, WireTap

from swarm_bridge.brokers import Kafka, Mosquitto
from swarm_bridge.brokers.registry import SchemaRegistryServer
from swarm_bridge.transport import ensure_kafka_topics
from swarm_bridge.vda5050.avro import VdaAvro
from swarm_bridge.vda5050.avro_schemas import packaged

pytestmark = pytest.mark.integration


def plain(datum: Any) -> Any:
    """An Avro datum as AvroDeserializer gives it -> the JSON message: absent optional fields are null there."""
    if isinstance(datum, dict):
        return {key: plain(value) for key, value in datum.items() if value is not None}
    if isinstance(datum, list):
        return [plain(item) for item in datum]
    return datum


def publish(port: int, topic: str, payloads: list[bytes], tag: str) -> None:
    """Publish with paho at QoS 1 (another client than the vehicle's: what a resend looks like to the broker)."""
    again = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"vda-again-{tag}", protocol=paho.MQTTv5)
    again.connect("127.0.0.1", port)
    again.loop_start()
    for payload in payloads:
        again.publish(topic, payload, qos=1).wait_for_publish(5)
    again.disconnect()
    again.loop_stop()


def test_vda5050_messages_reach_kafka_as_avro_once_across_a_counter_reset(
        tmp_path: Path, mosquitto: Mosquitto, kafka: Kafka, server: SchemaRegistryServer,
        client: SchemaRegistryClient, vda5050_schemas: Path) -> None:
    tag = uuid.uuid4().hex[:6]
    interface = f"uagv{tag}"
    streams = ["state", "connection", "factsheet"]
    ensure_kafka_topics(kafka.bootstrap, [f"vda_{tag}.{s}" for s in streams] + ["fleet.dlq"])
    config = write_config(tmp_path / "gw.yaml", gateway_id=f"gw_{tag}", fleet=f"fleet_{tag}",
                          mqtt_port=mosquitto.port, bootstrap=kafka.bootstrap,
                          registry=server.url,  # type: ignore[arg-type]
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
            assert wait_for(partial(states_at_least, 5 * (run + 1)), 30)
            vehicles.stop()
        states = [p for t, p, _q, _r in tap.snapshot() if t.endswith("/state")]
        assert [json.loads(p)["headerId"] for p in states].count(0) == 2  # both runs counted from 0
        topic = f"{interface}/v2/acme/agv7/state"
        publish(mosquitto.port, topic, [states[1], states[1], states[-1]], tag)  # sent again: already in Kafka
        unfit = json.loads(states[-1]) | {"headerId": 9999, "driving": "yes"}  # no boolean: does not fit
        extra = json.loads(states[-1]) | {"headerId": 10_000, "vendorField": {"fw": "1.2"}}  # fits, in _extra
        publish(mosquitto.port, topic, [json.dumps(unfit).encode(), b"not json", json.dumps(extra).encode()], tag)
        assert wait_for(lambda: gateway.counts.duplicates >= 3, 30)
        assert wait_for(lambda: gateway.counts.dead.get("vda5050_wrong_type", 0) == 1
                        and gateway.counts.dead.get("bad_record", 0) == 1, 30), gateway.counts
        deserializer = AvroDeserializer(client)  # the writer's schema by the id in each record, from the registry

        def read(stream: str, count: int, timeout_s: float) -> list[tuple[bytes, Any]]:
            ctx = SerializationContext(f"vda_{tag}.{stream}", MessageField.VALUE)
            return [(m.key(), plain(deserializer(m.value(), ctx)))
                    for m in read_topic(kafka.bootstrap, f"vda_{tag}.{stream}", count=count, timeout_s=timeout_s)]

        records = read("state", len(states) + 5, 10)
        assert sorted(json.dumps(doc, sort_keys=True) for _k, doc in records if "_extra" not in doc) == sorted(
            json.dumps(json.loads(p), sort_keys=True) for p in states)  # each once, the message it was
        [with_extra] = [doc for _k, doc in records if "_extra" in doc]  # AvroDeserializer sees the field itself
        assert json.loads(with_extra.pop("_extra")) == {"vendorField": {"fw": "1.2"}}
        assert with_extra == {k: v for k, v in extra.items() if k != "vendorField"}
        assert {key for key, _doc in records} == {b"acme/agv7"}
        connections = read("connection", 4, 10)
        assert [doc["connectionState"] for _k, doc in connections] == ["ONLINE", "OFFLINE"] * 2
        factsheets = read("factsheet", 2, 10)
        sent = [json.loads(p) for t, p, _q, _r in tap.snapshot() if t.endswith("/factsheet")]
        assert [doc for _k, doc in factsheets] == sent[:2]
        subjects = client.get_subjects()
        assert {f"vda_{tag}.{s}-value" for s in streams} <= set(subjects)
        registered = client.get_latest_version(f"vda_{tag}.state-value").schema
        assert json.loads(str(registered.schema_str)) == packaged("state")
        check = SchemaCheck(vda5050_schemas)
        assert check.wire_problems([w for w in tap.snapshot() if b'"driving": "yes"' not in w[1]
                                    and w[1] != b"not json"]) == []
        assert check.wire_problems([(f"x/{s}", json.dumps(doc).encode(), 0, False) for s, docs in
                                    (("state", records), ("connection", connections), ("factsheet", factsheets))
                                    for _k, doc in docs]) == []
        dead = [m for m in read_topic(kafka.bootstrap, "fleet.dlq", count=1000, timeout_s=3)
                if dict(m.headers() or []).get("mqtt_topic") == topic.encode()]
        reasons = sorted(dict(m.headers() or [])["reason"].decode() for m in dead)
        assert reasons == ["bad_record", "vda5050_wrong_type"]
        assert any(b"driving: expected true or false" in dict(m.headers() or [])["detail"] for m in dead)
    finally:
        tap.close()
        gateway.close()


def test_an_avro_order_from_kafka_drives_a_vehicle_as_json(tmp_path: Path, mosquitto: Mosquitto, kafka: Kafka,
                                                           server: SchemaRegistryServer,
                                                           client: SchemaRegistryClient,
                                                           vda5050_schemas: Path) -> None:
    """Master control on Kafka writes orders with confluent-kafka's AvroSerializer (the packaged order record,
    registered by that client); the gateway sends each to its vehicle's MQTT topic as the JSON message it was,
    which the vehicle drives; a record keyed without a manufacturer, or for another vehicle than its key, goes to
    the DLQ. A JSON order still passes unchanged."""
    tag = uuid.uuid4().hex[:6]
    interface = f"uagv{tag}"
    ensure_kafka_topics(kafka.bootstrap, [f"vda_{tag}.order", f"vda_{tag}.state", "fleet.dlq"])
    config = write_config(tmp_path / "gw.yaml", gateway_id=f"gw_{tag}", fleet=f"fleet_{tag}",
                          mqtt_port=mosquitto.port, bootstrap=kafka.bootstrap,
                          registry=server.url,  # type: ignore[arg-type]
                          up=[{"mqtt": f"{interface}/v2/{{manufacturer}}/{{robot_id}}/{{stream}}",
                               "where": {"stream": ["state"]}, "kafka_topic": f"vda_{tag}.{{stream}}",
                               "key": "{manufacturer}/{robot_id}", "payload": "vda5050"}],
                          down=[{"kafka_topic": f"vda_{tag}.order", "mqtt": f"{interface}/v2/{{robot_id}}/order",
                                 "payload": "vda5050"}])
    gateway = GatewayThread(config)
    tap = WireTap(mosquitto.host, mosquitto.port, interface)
    vehicles = VdaVehicles([VehicleSpec("acme", "agv9", x=0.0, speed_mps=4.0)], host=mosquitto.host,
                           port=mosquitto.port, interface=interface, state_period_s=0.5).start()
    order: dict[str, Any] = {
        "headerId": 0, "timestamp": "2026-12-06T10:00:00.00Z", "version": "2.1.0", "manufacturer": "acme",
        "serialNumber": "agv9", "orderId": "k1", "orderUpdateId": 0,
        "nodes": [{"nodeId": "a", "sequenceId": 0, "released": True, "actions": [],
                   "nodePosition": {"x": 0.0, "y": 0.0, "mapId": "map"}},
                  {"nodeId": "b", "sequenceId": 2, "released": True,
                   "nodePosition": {"x": 2.0, "y": 0.0, "theta": 1.5, "allowedDeviationXY": 0.5, "mapId": "map"},
                   "actions": [{"actionId": "p1", "actionType": "pick", "blockingType": "HARD",
                                "actionParameters": [{"key": "sku", "value": "A7"}, {"key": "count", "value": 3},
                                                     {"key": "weight", "value": 2.5}, {"key": "fragile", "value": True},
                                                     {"key": "slots", "value": [1, "b", None]},
                                                     {"key": "dims", "value": {"w": 0.4, "h": [1, 2]}}]}]}],
        "edges": [{"edgeId": "ab", "sequenceId": 1, "released": True, "startNodeId": "a", "endNodeId": "b",
                   "maxSpeed": 1.5, "actions": []}]}
    check = SchemaCheck(vda5050_schemas)
    assert check.problems("order", order) == []
    codec = VdaAvro()
    serializer = AvroSerializer(client, json.dumps(packaged("order")),
                                lambda doc, _ctx: codec.datum("order", doc))  # the documented representation
    ctx = SerializationContext(f"vda_{tag}.order", MessageField.VALUE)
    producer = Producer({"bootstrap.servers": kafka.bootstrap})
    try:
        producer.produce(f"vda_{tag}.order", serializer(order, ctx), b"agv9")  # no manufacturer
        producer.produce(f"vda_{tag}.order", serializer({**order, "serialNumber": "agv8"}, ctx), b"acme/agv9")
        producer.produce(f"vda_{tag}.order", serializer(order, ctx), b"acme/agv9")
        producer.flush(10)
        vehicle = vehicles["acme/agv9"]

        def finished(doc: dict[str, Any]) -> bool:
            return doc["orderId"] == "k1" and doc["lastNodeId"] == "b" and doc["nodeStates"] == []

        assert wait_for(lambda: vehicle.last_node == ("b", 2), 60), vehicle.received
        state_reader = AvroDeserializer(client)
        state_ctx = SerializationContext(f"vda_{tag}.state", MessageField.VALUE)
        assert wait_for(lambda: any(finished(plain(state_reader(r.value(), state_ctx))) for r in read_topic(
            kafka.bootstrap, f"vda_{tag}.state", count=1000, timeout_s=1)), 60)
        assert [doc for topic, doc in vehicle.received if topic == "order"] == [order]  # the good one, as it was
        json_order = json.dumps({**order, "orderId": "k2", "headerId": 1}).encode()
        producer.produce(f"vda_{tag}.order", json_order, b"acme/agv9")
        producer.flush(10)
        assert wait_for(lambda: len([t for t, _d in vehicle.received if t == "order"]) == 2, 60)
        assert [p for t, p, _q, _r in tap.snapshot() if t.endswith("/order")][-1] == json_order  # JSON as it is
        assert wait_for(lambda: gateway.counts.commands_dead == 2, 30)
        dead = read_topic(kafka.bootstrap, "fleet.dlq", count=1000, timeout_s=3)
        details = [dict(m.headers() or []).get("detail", b"").decode() for m in dead
                   if dict(m.headers() or []).get("kafka_topic") == f"vda_{tag}.order".encode()]
        assert any("is not a VDA 5050 vehicle: manufacturer/serialNumber" in d for d in details), details
        assert any("the message is for acme/agv8, its record key acme/agv9" in d for d in details), details
        assert check.wire_problems(tap.snapshot()) == []
    finally:
        vehicles.stop()
        tap.close()
        gateway.close()
