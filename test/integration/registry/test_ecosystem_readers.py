"""The project's Kafka records read by a consumer that knows nothing of swarm_bridge: confluent-kafka's own
`ProtobufDeserializer` and `AvroDeserializer` against a real Confluent-API registry (Apicurio), records written by
the gateway from MQTT (Protobuf kept Protobuf, its imports registered and referenced; Avro; Protobuf as Avro) and
by the project's Kafka encoder (the coordinator's and a Kafka robot's). The project registers no JSON Schemas (a
JSON record carries no schema id), so `JSONDeserializer` has nothing to read."""

from __future__ import annotations

import base64
import uuid
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from confluent_kafka import Producer
from confluent_kafka.schema_registry import Schema as ClientSchema
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext
from gateway_harness import GatewayThread, read_topic, write_config
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from registry_server import module_registry, registry_client  # noqa: F401  (fixtures server, client)

from swarm_bridge.brokers import Kafka, Mosquitto
from swarm_bridge.brokers.registry import SchemaRegistryServer
from swarm_bridge.codec.envelope import Envelope
from swarm_bridge.codec.rostypes import default_types
from swarm_bridge.codec.wire import registry_ids, wire_encoder
from swarm_bridge.transport import ensure_kafka_topics

pytestmark = pytest.mark.integration

BATTERY = "sensor_msgs/msg/BatteryState"
TASK_COMMAND = "swarm_bridge_msgs/msg/TaskCommand"


def _tag() -> str:
    return uuid.uuid4().hex[:6]


def message_class(client: SchemaRegistryClient, schema_id: int) -> Any:
    """The Protobuf class of a Confluent record, from the registry alone: the schema by id, each reference by
    subject and version (recursively) into one descriptor pool; the record is the file's first message."""
    pool = descriptor_pool.DescriptorPool()

    def add(schema: ClientSchema, name: str) -> descriptor_pb2.FileDescriptorProto:
        for ref in schema.references or []:
            imported, subject, version = str(ref.name), str(ref.subject), int(ref.version or 0)
            try:
                pool.FindFileByName(imported)
            except KeyError:
                add(client.get_version(subject, version).schema, imported)
        file = descriptor_pb2.FileDescriptorProto.FromString(base64.b64decode(str(schema.schema_str)))
        file.name = name
        pool.Add(file)
        return file

    file = add(client.get_schema(schema_id), f"schema-{schema_id}.proto")
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{file.package}.{file.message_type[0].name}"))


def _publish(port: int, items: list[tuple[str, bytes, str, tuple[tuple[str, str], ...]]]) -> None:
    """Publish with paho (no swarm_bridge client): topic, payload, content type, user properties."""
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{_tag()}", protocol=paho.MQTTv5)
    client.connect("127.0.0.1", port)
    client.loop_start()
    for topic, payload, content_type, user_properties in items:
        props = Properties(PacketTypes.PUBLISH)
        props.ContentType = content_type
        if user_properties:
            props.UserProperty = list(user_properties)
        client.publish(topic, payload, qos=1, properties=props).wait_for_publish(timeout=10)
    client.disconnect()
    client.loop_stop()


def _battery(robot_id: str, seq: int, voltage: float) -> Envelope:
    body = default_types().default_message(BATTERY)
    body.update(voltage=voltage, percentage=0.5, serial_number=f"sn-{seq}")
    body["header"]["frame_id"] = "base"
    return Envelope(robot_id, "battery", seq, 1_000 + seq, BATTERY, body)


def _through_gateway(tmp_path: Path, mosquitto: Mosquitto, kafka: Kafka, server: SchemaRegistryServer,
                     fmt: str, rule: dict[str, str], count: int) -> tuple[str, list[Any], list[Envelope]]:
    """`count` BatteryState records of one robot in `fmt` on MQTT, through a gateway with `rule` set on its up
    rule: the Kafka topic and its records (confluent-kafka messages), and the envelopes sent."""
    tag = _tag()
    fleet, robot = f"fleet_{tag}", f"amr_{tag}"
    kafka_topic = f"fleet.state.battery_{tag}"
    ensure_kafka_topics(kafka.bootstrap, [kafka_topic])
    config = write_config(tmp_path / "gw.yaml", gateway_id=f"gw_{tag}", fleet=fleet, mqtt_port=mosquitto.port,
                          bootstrap=kafka.bootstrap, registry=server.url,  # type: ignore[arg-type]
                          up=[{"mqtt": "{prefix}/{fleet}/{robot_id}/{channel}/{stream}",
                               "kafka_topic": f"fleet.{{channel}}.{{stream}}_{tag}", **rule}])
    encoder = wire_encoder(BATTERY, fmt, "mqtt", subject="unused")  # type: ignore[arg-type]
    sent = [_battery(robot, seq, 20.0 + seq) for seq in range(count)]
    gateway = GatewayThread(config)
    try:
        _publish(mosquitto.port, [(f"swarm/{fleet}/{robot}/state/battery", encoder.encode(e), encoder.content_type,
                                   encoder.user_properties) for e in sent])
        records = read_topic(kafka.bootstrap, kafka_topic, count=count, timeout_s=60)
    finally:
        gateway.close()
    assert gateway.counts.dead == {}
    return kafka_topic, records, sent


def test_protobuf_kept_protobuf_by_the_gateway_is_read_by_confluents_protobuf_deserializer(
        tmp_path: Path, mosquitto: Mosquitto, kafka: Kafka, server: SchemaRegistryServer,
        client: SchemaRegistryClient) -> None:
    topic, records, sent = _through_gateway(tmp_path, mosquitto, kafka, server, "protobuf",
                                            {"protobuf_format": "protobuf"}, 5)
    assert len(records) == 5
    schema_id = int.from_bytes(records[0].value()[1:5], "big")
    record_schema = client.get_schema(schema_id)
    assert record_schema.schema_type == "PROTOBUF"
    assert [(r.name, r.subject) for r in record_schema.references or []] == [
        ("ros/sensor_msgs/msg/BatteryState.proto", "ros/sensor_msgs/msg/BatteryState.proto")]
    header = client.get_latest_version("ros/std_msgs/msg/Header.proto").schema
    assert [r.subject for r in header.references or []] == ["ros/builtin_interfaces/msg/Time.proto"]
    deserializer = ProtobufDeserializer(message_class(client, schema_id), {"use.deprecated.format": False},
                                        schema_registry_client=client)
    read = [deserializer(m.value(), SerializationContext(topic, MessageField.VALUE)) for m in records]
    assert [(m.robot_id, m.stream, m.seq, m.ros_type) for m in read] == [
        (e.robot_id, "battery", e.seq, BATTERY) for e in sent]
    assert [(m.body.voltage, m.body.serial_number, m.body.header.frame_id) for m in read] == [
        (pytest.approx(e.body["voltage"]), e.body["serial_number"], "base") for e in sent]
    assert all(m.key() == sent[0].robot_id.encode() for m in records)


@pytest.mark.parametrize("fmt", ["avro", "protobuf"])
def test_avro_from_the_gateway_is_read_by_confluents_avro_deserializer(
        fmt: str, tmp_path: Path, mosquitto: Mosquitto, kafka: Kafka, server: SchemaRegistryServer,
        client: SchemaRegistryClient) -> None:
    """Avro single-object from MQTT (copied), and Protobuf from MQTT transcoded to Avro (the default)."""
    topic, records, sent = _through_gateway(tmp_path, mosquitto, kafka, server, fmt, {}, 4)
    deserializer = AvroDeserializer(client)
    read = [deserializer(m.value(), SerializationContext(topic, MessageField.VALUE)) for m in records]
    assert [(r["robot_id"], r["seq"], r["ros_type"]) for r in read] == [(e.robot_id, e.seq, BATTERY) for e in sent]
    assert [r["body"]["voltage"] for r in read] == [pytest.approx(e.body["voltage"]) for e in sent]
    assert [r["body"]["header"]["frame_id"] for r in read] == ["base"] * 4


@pytest.mark.parametrize("fmt", ["avro", "protobuf"])
def test_records_the_project_writes_to_kafka_are_read_by_confluents_deserializers(
        fmt: str, kafka: Kafka, server: SchemaRegistryServer, client: SchemaRegistryClient) -> None:
    """What a Kafka robot route or the coordinator writes (`wire_encoder(..., "kafka")`), as the ecosystem reads it."""
    topic = f"fleet.command.task_command_{_tag()}"
    ensure_kafka_topics(kafka.bootstrap, [topic])
    ids = registry_ids(server.url)
    try:
        encoder = wire_encoder(TASK_COMMAND, fmt, "kafka", subject=f"{topic}-value", register=ids)  # type: ignore[arg-type]
        body = default_types().default_message(TASK_COMMAND)
        body.update(task_id="t1", command_id="c1", robot_id="amr_1", kind="navigate")
        value = encoder.encode(Envelope("amr_1", "task_command", 3, 9, TASK_COMMAND, body))
    finally:
        ids.close()
    producer = Producer({"bootstrap.servers": kafka.bootstrap})
    producer.produce(topic, value, key=b"amr_1")
    assert producer.flush(30) == 0
    [message] = read_topic(kafka.bootstrap, topic, count=1)
    ctx = SerializationContext(topic, MessageField.VALUE)
    if fmt == "avro":
        read = AvroDeserializer(client)(message.value(), ctx)
        got = (read["robot_id"], read["seq"], read["body"]["command_id"], read["body"]["kind"])
    else:
        schema_id = int.from_bytes(message.value()[1:5], "big")
        proto = ProtobufDeserializer(message_class(client, schema_id), {"use.deprecated.format": False},
                                     schema_registry_client=client)(message.value(), ctx)
        got = (proto.robot_id, proto.seq, proto.body.command_id, proto.body.kind)
    assert got == ("amr_1", 3, "c1", "navigate")


def test_a_protobuf_command_goes_down_through_the_gateway_as_the_record_naming_its_message(
        tmp_path: Path, mosquitto: Mosquitto, kafka: Kafka, server: SchemaRegistryServer) -> None:
    from gateway_harness import wait_for

    from swarm_bridge.codec.framing import parse_proto_mqtt_properties
    from swarm_bridge.codec.wire import wire_decoder

    tag = _tag()
    fleet, topic = f"fleet_{tag}", f"cmd_{tag}"
    ensure_kafka_topics(kafka.bootstrap, [topic])
    config = write_config(tmp_path / "gw.yaml", gateway_id=f"gw_{tag}", fleet=fleet, mqtt_port=mosquitto.port,
                          bootstrap=kafka.bootstrap, registry=server.url,  # type: ignore[arg-type]
                          kafka={"command_group": f"group_{tag}"},
                          down=[{"kafka_topic": topic, "mqtt": "{prefix}/{fleet}/{robot_id}/command/task_command"}])
    got: list[tuple[str, bytes, str, list[tuple[str, str]]]] = []
    robot = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"robot-{tag}", protocol=paho.MQTTv5)
    robot.on_message = lambda _c, _u, m: got.append((m.topic, bytes(m.payload),
                                                     getattr(m.properties, "ContentType", ""),
                                                     list(getattr(m.properties, "UserProperty", []))))
    robot.connect("127.0.0.1", mosquitto.port)
    robot.subscribe(f"swarm/{fleet}/+/command/#", qos=1)
    robot.loop_start()
    ids = registry_ids(server.url)
    try:
        encoder = wire_encoder(TASK_COMMAND, "protobuf", "kafka", subject=f"{topic}-value", register=ids)
        body = default_types().default_message(TASK_COMMAND)
        body.update(task_id="t9", command_id="c9", robot_id="amr_9", kind="pick")
        producer = Producer({"bootstrap.servers": kafka.bootstrap})
        producer.produce(topic, encoder.encode(Envelope("amr_9", "task_command", 4, 2, TASK_COMMAND, body)),
                         key=b"amr_9")
        assert producer.flush(30) == 0
        gateway = GatewayThread(config)
        try:
            assert wait_for(lambda: len(got) >= 1, 60)
        finally:
            gateway.close()
    finally:
        ids.close()
        robot.loop_stop()
        robot.disconnect()
    [(mqtt_topic, payload, content_type, props)] = got
    assert mqtt_topic == f"swarm/{fleet}/amr_9/command/task_command"
    meta = parse_proto_mqtt_properties(content_type, props)
    assert (meta.full_name, meta.extra["ros_type"]) == (f"swarm_bridge.record.{TASK_COMMAND.replace('/', '.')}",
                                                        TASK_COMMAND)
    command = wire_decoder(TASK_COMMAND, "protobuf", "mqtt", subject="unused").decode(payload)
    assert (command.seq, command.body["command_id"], command.body["kind"]) == (4, "c9", "pick")
