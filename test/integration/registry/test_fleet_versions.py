"""A fleet on two versions of RobotState at once, real Mosquitto, gateway, Kafka and Apicurio: half the robots
publish v1 (the installed message), half v2 (`charging` removed, `battery_voltage` added, mode grown by
MODE_DOCKING). The gateway forwards both, the coordinator folds both into its fleet view, a tap on a v2 hub and
confluent-kafka's `AvroDeserializer` read both; every record is read with its writer's schema, resolved to the
reader's. A third version the subject's level forbids is refused with subject, rule and field."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
import yaml
from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext
from gateway_harness import GatewayThread, read_topic, write_config
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from registry_server import apicurio

from swarm_bridge.brokers import Kafka, Mosquitto
from swarm_bridge.brokers.registry import SchemaRegistryServer
from swarm_bridge.codec.envelope import Envelope
from swarm_bridge.codec.errors import IncompatibleSchema
from swarm_bridge.codec.rostypes import RosTypes
from swarm_bridge.codec.wire import WireEncoder, registry_ids, wire_decoder, wire_encoder
from swarm_bridge.coordinator.core.fleet import FleetView, RobotMode
from swarm_bridge.coordinator.kafka.records import FleetRecords
from swarm_bridge.sim.records import robot_state_body
from swarm_bridge.transport import ensure_kafka_topics

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
ROBOT_STATE = "swarm_bridge_msgs/msg/RobotState"
ROBOTS, RECORDS = 20, 3
MODE_DOCKING = 7


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SchemaRegistryServer]:
    with apicurio(tmp_path_factory) as registry:
        yield registry


def _version(root: Path, text: str) -> RosTypes:
    folder = root / "swarm_bridge_msgs" / "msg"
    folder.mkdir(parents=True)
    (folder / "RobotState.msg").write_text(text)
    return RosTypes(extra_msg_dirs=[root])


def _v2_text() -> str:
    v1 = (REPO / "msg" / "RobotState.msg").read_text()
    assert "bool charging" in v1
    grown = f"uint8 MODE_EMERGENCY_STOP=6\nuint8 MODE_DOCKING={MODE_DOCKING}\n"
    return v1.replace("bool charging\n", "").replace("uint8 MODE_EMERGENCY_STOP=6\n", grown) + \
        "float32 battery_voltage\n"


def _body(robot_id: str, n: int, v2: bool) -> dict[str, object]:
    body = robot_state_body(robot_id, "amr", ["navigate"], x=float(n), y=1.0, battery=50.0 + n,
                            mode=MODE_DOCKING if v2 else 1)
    if v2:
        del body["charging"]
        body["battery_voltage"] = 24.0 + n
    else:
        body["charging"] = True
    return body


def test_robots_on_v1_and_v2_are_read_by_gateway_coordinator_tap_and_ecosystem(
        tmp_path: Path, mosquitto: Mosquitto, kafka: Kafka, server: SchemaRegistryServer) -> None:
    tag = uuid.uuid4().hex[:6]
    fleet, topic = f"fleet_{tag}", f"fleet.state.robot_state_{tag}"
    subject = f"{topic}-value"
    v2 = _version(tmp_path / "v2", _v2_text())
    ids = registry_ids(server.url)
    try:
        # each robot bridge, a registry configured, registers its version at start (what RobotBridge._encoder does)
        encoders: dict[bool, WireEncoder] = {
            False: wire_encoder(ROBOT_STATE, "avro", "mqtt", subject=subject, register=ids)}
        ids.registry.set_compatibility(subject, "FULL")
        encoders[True] = wire_encoder(ROBOT_STATE, "avro", "mqtt", subject=subject, register=ids, types=v2)
        assert ids.registry.versions(subject) == [1, 2]
        broken = _version(tmp_path / "v3", _v2_text().replace("float32 battery_percent", "string battery_percent"))
        with pytest.raises(IncompatibleSchema) as refused:
            wire_encoder(ROBOT_STATE, "avro", "mqtt", subject=subject, register=ids, types=broken)
        assert str(refused.value).startswith(f"subject {subject}: incompatible under FULL: field "
                                             "'RobotState.body.battery_percent'"), refused.value
    finally:
        ids.close()

    robots = {f"amr_{i:02d}_{tag}": i % 2 == 1 for i in range(ROBOTS)}  # odd robots run v2
    sent = {(robot, n): Envelope(robot, "robot_state", n, 1_000 + n, ROBOT_STATE, _body(robot, n, v2_robot))
            for robot, v2_robot in robots.items() for n in range(RECORDS)}
    payloads = {key: encoders[robots[key[0]]].encode(envelope) for key, envelope in sent.items()}
    ensure_kafka_topics(kafka.bootstrap, [topic])
    config = write_config(tmp_path / "gw.yaml", gateway_id=f"gw_{tag}", fleet=fleet, mqtt_port=mosquitto.port,
                          bootstrap=kafka.bootstrap, registry=server.url,  # type: ignore[arg-type]
                          up=[{"mqtt": "{prefix}/{fleet}/{robot_id}/{channel}/{stream}",
                               "kafka_topic": f"fleet.{{channel}}.{{stream}}_{tag}"}])
    gateway = GatewayThread(config)
    try:
        _publish(mosquitto.port, [(f"swarm/{fleet}/{robot}/state/robot_state", payload, encoders[False].content_type)
                                  for (robot, _n), payload in payloads.items()])
        records = read_topic(kafka.bootstrap, topic, count=len(sent), timeout_s=90)
    finally:
        gateway.close()
    assert gateway.counts.dead == {} and len(records) == len(sent)
    kafka_ids = {int.from_bytes(m.value()[1:5], "big") for m in records}
    assert len(kafka_ids) == 2  # each record under its writer's version

    # the coordinator (v1 installed): its own decoder and fleet view
    coordinator = FleetRecords(fmt="avro", registry=server.url, state_topic=topic, status_topic=f"{topic}.status",
                               commands_topic=f"{topic}.commands")
    view = FleetView()
    try:
        read = [coordinator.state_decoder.decode(m.value()) for m in records]
        for envelope in read:
            view.on_state(envelope.body, 1)
    finally:
        coordinator.close()
    assert {(e.robot_id, e.seq) for e in read} == set(sent)
    for envelope in read:
        v2_robot = robots[envelope.robot_id]
        assert envelope.body["charging"] is (not v2_robot)  # v2 writes none: the reader's default, false
        assert "battery_voltage" not in envelope.body
        assert envelope.body["battery_percent"] == 50.0 + envelope.seq and envelope.body["mode"] == (
            MODE_DOCKING if v2_robot else 1)
    assert len(view) == ROBOTS
    assert {r.mode for r in view} == {RobotMode.UNKNOWN, RobotMode(1)}  # a mode it does not know yet: UNKNOWN

    # a tap on a hub with v2 installed, as the demo's reads Kafka (wire_decoder with the registry)
    tap_ids = registry_ids(server.url)
    try:
        tap = wire_decoder(ROBOT_STATE, "avro", "kafka", subject=subject, lookup=tap_ids, types=v2)
        as_v2 = [tap.decode(m.value()) for m in records]
        mqtt_tap = wire_decoder(ROBOT_STATE, "avro", "mqtt", subject=subject, lookup=tap_ids)  # v1 on MQTT
        from_mqtt = {key: mqtt_tap.decode(payload) for key, payload in payloads.items()}
    finally:
        tap_ids.close()
    for envelope in as_v2:
        expected = 24.0 + envelope.seq if robots[envelope.robot_id] else 0.0
        assert envelope.body["battery_voltage"] == expected and "charging" not in envelope.body
    assert all(from_mqtt[key].body["charging"] is (not robots[key[0]]) for key in sent)

    # the ecosystem's reader: each record with its writer's schema, as written
    client = SchemaRegistryClient({"url": server.url})
    try:
        deserializer = AvroDeserializer(client)
        ecosystem = [deserializer(m.value(), SerializationContext(topic, MessageField.VALUE)) for m in records]
    finally:
        client.close()
    for record in ecosystem:
        v2_robot = robots[record["robot_id"]]
        assert ("battery_voltage" in record["body"]) is v2_robot and ("charging" in record["body"]) is not v2_robot


def _publish(port: int, items: list[tuple[str, bytes, str]]) -> None:
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"mixed-{uuid.uuid4().hex[:6]}",
                         protocol=paho.MQTTv5)
    client.connect("127.0.0.1", port)
    client.loop_start()
    for topic, payload, content_type in items:
        props = Properties(PacketTypes.PUBLISH)
        props.ContentType = content_type
        props.UserProperty = [("ros_type", ROBOT_STATE)]
        client.publish(topic, payload, qos=1, properties=props).wait_for_publish(timeout=10)
    client.disconnect()
    client.loop_stop()


def _read_keys(bootstrap: str, topic: str, keys: set[bytes], count: int) -> list[Any]:
    """The records of `topic` keyed with one of `keys` (other tests share the topic), once `count` are there."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"versions-{uuid.uuid4().hex[:6]}",
                         "enable.auto.commit": False})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        found: list[Any] = []
        deadline = time.monotonic() + 90
        while len(found) < count and time.monotonic() < deadline:
            found += [m for m in consumer.consume(100, 0.5) if m.error() is None and m.key() in keys]
        return found
    finally:
        consumer.close()


def test_a_canary_on_v2_then_its_rollback_by_pin_leaves_every_record_readable(
        tmp_path: Path, kafka: Kafka, server: SchemaRegistryServer, capsys: pytest.CaptureFixture[str]) -> None:
    """Robots on a Kafka uplink, as their bridges write: the fleet on v1; a dry run of the canary's software against
    the live registry; the canary on v2; then its route pinned back to version 1 with `schema pin`. The coordinator
    (v1) and confluent-kafka's reader read every record of the three phases."""
    from swarm_bridge.cli import main
    from swarm_bridge.config import RobotBridgeConfig, load_config

    tag = uuid.uuid4().hex[:6]
    topic, subject = "fleet.state.robot_state", "fleet.state.robot_state-value"
    v2_dir = tmp_path / "v2"
    v2 = _version(v2_dir, _v2_text())
    fleet_robot, canary = f"amr_fleet_{tag}", f"amr_canary_{tag}"
    route = {"topic": "/{robot_id}/robot_state", "type": ROBOT_STATE, "channel": "state", "stream": "robot_state",
             "qos": "reliable", "format": "avro"}
    config = tmp_path / "canary.yaml"
    config.write_text(yaml.safe_dump({"robot_id": canary, "fleet": f"fleet_{tag}", "registry": server.url,
                                      "uplink": {"kind": "kafka", "port": kafka.port}, "routes": [route]}))
    ensure_kafka_topics(kafka.bootstrap, [topic])
    producer = Producer({"bootstrap.servers": kafka.bootstrap})
    ids = registry_ids(server.url)
    sent: list[tuple[str, int, bool]] = []  # robot, seq, written as v2

    def produce(encoder: WireEncoder, robot: str, seq: int, v2_body: bool) -> None:
        producer.produce(topic, encoder.encode(Envelope(robot, "robot_state", seq, seq, ROBOT_STATE,
                                                        _body(robot, seq, v2_body))), key=robot.encode())
        sent.append((robot, seq, v2_body))

    try:
        fleet = wire_encoder(ROBOT_STATE, "avro", "kafka", subject=subject, register=ids)
        ids.registry.set_compatibility(subject, "FULL")
        produce(fleet, fleet_robot, 0, False)
        # 1. dry run of the canary's software: what its start would register, nothing written
        status = main(["schema", "check", "--config", str(config), "--msg-dir", str(v2_dir)])
        out = capsys.readouterr().out
        assert status == 0 and f"subject {subject}: new version 2, compatible (FULL)" in out, out
        assert ids.registry.versions(subject) == [1]
        # 2. the canary starts on v2: its bridge registers version 2
        produce(wire_encoder(ROBOT_STATE, "avro", "kafka", subject=subject, register=ids, types=v2), canary, 1, True)
        assert ids.registry.versions(subject) == [1, 2]
        # 3. rollback without a software change: the canary's route pinned to version 1, its bridge restarted
        status = main(["schema", "pin", "--config", str(config), "--stream", "robot_state", "--version", "1",
                       "--write"])
        assert status == 0, capsys.readouterr()
        pinned_route = load_config(config, RobotBridgeConfig).routes[0]
        assert pinned_route.schema_version == 1
        pin = ids.version(subject, pinned_route.schema_version)
        produce(wire_encoder(ROBOT_STATE, "avro", "kafka", subject=subject, register=ids, types=v2, pin=pin),
                canary, 2, True)
        produce(fleet, fleet_robot, 3, False)
        assert producer.flush(30) == 0
        status = main(["schema", "check", "--config", str(config), "--msg-dir", str(v2_dir)])
        out = capsys.readouterr().out
        assert status == 0 and f"pinned to version 1 (id {pin.id}): resolves" in out, out
    finally:
        ids.close()

    records = sorted(_read_keys(kafka.bootstrap, topic, {fleet_robot.encode(), canary.encode()}, len(sent)),
                     key=lambda m: int(m.timestamp()[1]))
    assert len(records) == len(sent)
    coordinator = FleetRecords(fmt="avro", registry=server.url, state_topic=topic, status_topic=f"{topic}.status",
                               commands_topic=f"{topic}.commands")
    try:
        read = {(e.robot_id, e.seq): e for e in (coordinator.state_decoder.decode(m.value()) for m in records)}
    finally:
        coordinator.close()
    assert set(read) == {(robot, seq) for robot, seq, _v2 in sent}
    assert [read[(canary, seq)].body["charging"] for seq in (1, 2)] == [False, False]  # v2 wrote none
    assert read[(fleet_robot, 0)].body["charging"] is True
    canary_ids = {seq: int.from_bytes(m.value()[1:5], "big") for m in records if m.key() == canary.encode()
                  for seq in [coordinator_seq(m)]}
    assert canary_ids[2] == pin.id != canary_ids[1]  # after the rollback the canary writes version 1 again
    client = SchemaRegistryClient({"url": server.url})
    try:
        ecosystem = [AvroDeserializer(client)(m.value(), SerializationContext(topic, MessageField.VALUE))
                     for m in records]
    finally:
        client.close()
    assert sorted((r["robot_id"], r["seq"], "battery_voltage" in r["body"]) for r in ecosystem) == sorted(
        (robot, seq, robot == canary and seq == 1) for robot, seq, _v2 in sent)


def coordinator_seq(message: Any) -> int:
    """The seq of a Confluent Avro RobotState record, from its envelope head."""
    from swarm_bridge.gateway.heads import avro_head

    return avro_head(message.value()[5:]).seq
