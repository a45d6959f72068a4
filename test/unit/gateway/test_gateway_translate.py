"""MQTT payload -> Kafka records (split batches, Avro -> Confluent, Protobuf/JSON), dead letters, the ledger."""

from __future__ import annotations

from pathlib import Path

import pytest

from swarm_bridge.codec.envelope import Envelope
from swarm_bridge.codec.errors import RecordError
from swarm_bridge.codec.framing import frame_batch, frame_json_batch, frame_single_object, parse_confluent
from swarm_bridge.codec.json_codec import decode_json
from swarm_bridge.codec.records import record_codec
from swarm_bridge.codec.registry import FileRegistry
from swarm_bridge.codec.rostypes import default_types
from swarm_bridge.codec.wire import wire_encoder
from swarm_bridge.config import GatewayConfig
from swarm_bridge.gateway.heads import avro_head
from swarm_bridge.gateway.ledger import InFlight, Ledger
from swarm_bridge.gateway.rules import UpRoute, up_rules
from swarm_bridge.gateway.schemas import SchemaBook
from swarm_bridge.gateway.translate import Translator
from swarm_bridge.sim import SimRobot, StreamSpec

ODOM = StreamSpec("odometry", "telemetry", "nav_msgs/msg/Odometry")
BATTERY = StreamSpec("battery", "state", "sensor_msgs/msg/BatteryState")


@pytest.fixture()
def registry(tmp_path: Path) -> FileRegistry:
    return FileRegistry(tmp_path / "registry")


@pytest.fixture()
def translator(registry: FileRegistry) -> Translator:
    return Translator(SchemaBook(registry), max_payload=4096)


def _route(topic: str, json_format: str = "passthrough", **formats: str) -> UpRoute:
    config = GatewayConfig.model_validate({"gateway_id": "gw", "fleet": "f", "up": [
        {"mqtt": "{prefix}/{fleet}/{robot_id}/{channel}/{stream}", "kafka_topic": "fleet.{channel}.{stream}",
         "json_format": json_format, **formats}]})
    route = up_rules(config).route(topic)
    assert route is not None
    return route


def test_avro_single_object_becomes_confluent_with_the_registered_id(translator: Translator,
                                                                    registry: FileRegistry) -> None:
    robot = SimRobot("amr_1", "f", [ODOM])
    publish = robot.next(ODOM)
    out = translator.translate(_route(publish.topic), publish.payload, publish.content_type,
                               publish.user_properties)
    assert out.dead == [] and len(out.records) == 1
    record = out.records[0]
    frame = parse_confluent(record.value)
    registered = registry.latest("fleet.telemetry.odometry-value")
    assert frame.schema_id == registered.id
    assert frame.payload == publish.payload[10:]  # the body, unchanged
    assert (record.topic, record.key, record.head) == ("fleet.telemetry.odometry", b"amr_1",
                                                       ("amr_1", "odometry", 1 << 32, "nav_msgs/msg/Odometry"))
    decoded = record_codec("nav_msgs/msg/Odometry", "avro").decode(frame.payload)
    assert decoded.seq == 1 << 32 and decoded.robot_id == "amr_1"


def test_the_common_case_in_one_step_gives_what_translate_gives(translator: Translator) -> None:
    """`avro_record` (the up path's one-step case: one Avro record on a records route of a schema the topic has
    registered) gives the same record as `translate`; for anything else it gives None, and `translate` decides."""
    robot = SimRobot("amr_1", "f", [ODOM])
    first = robot.next(ODOM)
    route = _route(first.topic)
    assert translator.avro_record(route, first.payload) is None  # the schema's first record registers it
    assert translator.translate(route, first.payload, first.content_type, first.user_properties).dead == []
    publish = robot.next(ODOM)
    quick = translator.avro_record(route, publish.payload)
    assert quick is not None
    assert [quick] == translator.translate(route, publish.payload, publish.content_type,
                                           publish.user_properties).records
    other = SimRobot("amr_2", "f", [ODOM]).next(ODOM)  # another robot's record on amr_1's topic
    raw = UpRoute(route.mqtt_topic, route.kafka_topic, route.key, "amr_1", "odometry", "raw", "passthrough")
    for payload, on in ((other.payload, route), (publish.payload, raw),
                        (publish.payload, _route(first.topic, avro_format="protobuf")),
                        (publish.payload[:10], route), (b'{"robot_id": "amr_1"}', route),
                        (publish.payload + bytes(5000), route)):  # over max_payload
        assert translator.avro_record(on, payload) is None


def test_avro_head_reads_long_names_and_never_a_cut_off_head() -> None:
    """The head reader's quick path (names under 64 bytes) and its field-by-field one agree: long names are
    read right, and a body cut anywhere inside the head is an error naming the field, never a wrong head."""
    for robot_id, ros_type in (("amr_1", "nav_msgs/msg/Odometry"), ("r" * 200, "nav_msgs/msg/Odometry")):
        spec = StreamSpec("s" * 70 if len(robot_id) > 100 else "odometry", "telemetry", ros_type)
        body = SimRobot(robot_id, "f", [spec], run=3).record(spec)[10:]
        head = avro_head(body)
        assert head == (robot_id, spec.name, 3 << 32, ros_type)
        for cut in range(len(robot_id) + len(spec.name) + len(ros_type) + 8):  # all inside the head
            with pytest.raises(RecordError) as refused:
                avro_head(body[:cut])
            assert refused.value.field in ("robot_id", "stream", "seq", "stamp_ns", "ros_type"), refused.value
    assert avro_head(b"\x0aamr_1\x04ab\x02\x02\x0ex/y/Abc") == ("amr_1", "ab", 1, "x/y/Abc")
    with pytest.raises(RecordError, match="not UTF-8"):
        avro_head(b"\x04\xff\xfe\x04ab\x02\x02\x0ex/y/Abc")


def test_a_batch_becomes_one_record_each_and_bad_records_are_dead_letters(translator: Translator) -> None:
    robot = SimRobot("amr_1", "f", [BATTERY])
    good = [robot.record(BATTERY) for _ in range(3)]
    foreign = SimRobot("amr_2", "f", [BATTERY]).record(BATTERY)
    batch = frame_batch([good[0], b"\xc3\x01\x00", good[1], foreign, good[2], b"\x07garbage"])
    out = translator.translate(_route(robot.topic(BATTERY)), batch, "avro/binary; encoding=single-object")
    assert [avro_head(r.value[5:]).seq for r in out.records] == [1 << 32, 1 << 32 | 1, 1 << 32 | 2]
    assert [(d.reason, d.index) for d in out.dead] == [("bad_record", 1), ("envelope_mismatch", 3),
                                                       ("unknown_framing", 5)]
    assert out.dead[1].payload == foreign
    headers = dict(out.dead[2].headers("avro/binary"))
    assert headers["reason"] == b"unknown_framing" and headers["batch_index"] == b"5"
    assert headers["mqtt_topic"] == robot.topic(BATTERY).encode()


def test_a_json_array_of_records_becomes_one_record_each(translator: Translator) -> None:
    types = default_types()
    body = types.default_message("sensor_msgs/msg/BatteryState")
    encoder = wire_encoder("sensor_msgs/msg/BatteryState", "json", "mqtt", subject="x")
    records = [encoder.encode(Envelope("amr_1", "battery", seq, 1, "sensor_msgs/msg/BatteryState", body))
               for seq in range(3)]
    batch = frame_json_batch([records[0], b'{"robot_id": "amr_1"}', records[1], records[2]])
    out = translator.translate(_route("swarm/f/amr_1/state/battery"), batch, "application/json")
    assert [r.value for r in out.records] == records
    assert [(d.reason, d.index) for d in out.dead] == [("bad_record", 1)]
    cut = translator.translate(_route("swarm/f/amr_1/state/battery"), batch[:-1], "application/json")
    assert [d.reason for d in cut.dead] == ["malformed_batch"] and cut.records == []


def test_whole_payload_dead_letters(translator: Translator) -> None:
    route = _route("swarm/f/amr_1/state/battery")
    cut = translator.translate(route, b"\x00SB\x01\x00\x00\x00\x09abc")
    assert [(d.reason, d.payload) for d in cut.dead] == [("malformed_batch", b"\x00SB\x01\x00\x00\x00\x09abc")]
    assert "says 9 bytes, only 3 left" in cut.dead[0].detail
    big = translator.translate(route, b"{" + b" " * 5000)
    assert big.records == [] and big.dead[0].reason == "too_large"
    unknown = frame_single_object(0x1234, SimRobot("amr_1", "f", [BATTERY]).record(BATTERY)[10:])
    out = translator.translate(route, unknown)
    assert out.dead[0].reason == "unknown_schema" and "0x0000000000001234" in out.dead[0].detail


def test_json_passes_through_or_becomes_avro_when_the_rule_asks(translator: Translator) -> None:
    types = default_types()
    body = types.default_message("sensor_msgs/msg/BatteryState")
    encoder = wire_encoder("sensor_msgs/msg/BatteryState", "json", "mqtt", subject="x")
    payload = encoder.encode(Envelope("amr_1", "battery", 7, 1, "sensor_msgs/msg/BatteryState", body))
    plain = translator.translate(_route("swarm/f/amr_1/state/battery"), payload, "application/json")
    assert plain.records[0].value == payload and decode_json(plain.records[0].value).seq == 7
    avro = translator.translate(_route("swarm/f/amr_1/state/battery", "avro"), payload, "application/json")
    frame = parse_confluent(avro.records[0].value)
    assert record_codec("sensor_msgs/msg/BatteryState", "avro").decode(frame.payload).seq == 7
    bad = translator.translate(_route("swarm/f/amr_1/state/battery"), b'{"robot_id": "amr_1"}')
    assert bad.dead[0].reason == "bad_record" and "stream" in bad.dead[0].detail


def test_protobuf_becomes_avro(translator: Translator) -> None:
    types = default_types()
    body = types.default_message("sensor_msgs/msg/BatteryState")
    body["voltage"] = 24.5
    encoder = wire_encoder("sensor_msgs/msg/BatteryState", "protobuf", "mqtt", subject="x")
    payload = encoder.encode(Envelope("amr_1", "battery", 9, 1, "sensor_msgs/msg/BatteryState", body))
    out = translator.translate(_route("swarm/f/amr_1/state/battery"), payload, encoder.content_type,
                               encoder.user_properties)
    assert out.dead == []
    decoded = record_codec("sensor_msgs/msg/BatteryState", "avro").decode(parse_confluent(out.records[0].value).payload)
    assert (decoded.seq, decoded.body["voltage"]) == (9, pytest.approx(24.5))
    garbage = translator.translate(_route("swarm/f/amr_1/state/battery"), b"\x08\xff\xff", encoder.content_type,
                                   encoder.user_properties)
    assert garbage.dead[0].reason == "bad_record"


def test_protobuf_stays_protobuf_on_kafka_with_its_imports_referenced(translator: Translator,
                                                                     registry: FileRegistry) -> None:
    body = default_types().default_message("sensor_msgs/msg/BatteryState")
    body["voltage"] = 24.5
    encoder = wire_encoder("sensor_msgs/msg/BatteryState", "protobuf", "mqtt", subject="x")
    payload = encoder.encode(Envelope("amr_1", "battery", 9, 1, "sensor_msgs/msg/BatteryState", body))
    route = _route("swarm/f/amr_1/state/battery", protobuf_format="protobuf")
    out = translator.translate(route, payload, encoder.content_type, encoder.user_properties)
    assert out.dead == [] and out.records[0].head == ("amr_1", "battery", 9, "sensor_msgs/msg/BatteryState")
    frame = parse_confluent(out.records[0].value, message_indexes=True)
    registered = registry.latest("fleet.state.battery-value")
    assert (frame.schema_id, frame.message_indexes, frame.payload) == (registered.id, [0], payload)
    assert [r.subject for r in registered.schema.references] == ["ros/sensor_msgs/msg/BatteryState.proto"]
    assert "ros/std_msgs/msg/Header.proto" in registry.subjects()


def test_avro_becomes_protobuf_on_kafka_when_the_rule_asks(translator: Translator, registry: FileRegistry) -> None:
    robot = SimRobot("amr_1", "f", [ODOM])
    publish = robot.next(ODOM)
    route = _route(publish.topic, avro_format="protobuf")
    out = translator.translate(route, publish.payload, publish.content_type, publish.user_properties)
    assert out.dead == []
    frame = parse_confluent(out.records[0].value, message_indexes=True)
    assert frame.schema_id == registry.latest("fleet.telemetry.odometry-value").id
    decoded = record_codec("nav_msgs/msg/Odometry", "protobuf").decode(frame.payload)
    assert (decoded.robot_id, decoded.seq) == ("amr_1", 1 << 32)


def test_a_protobuf_command_goes_down_as_the_bare_record_naming_its_message(registry: FileRegistry,
                                                                            tmp_path: Path) -> None:
    from swarm_bridge.codec.framing import parse_proto_mqtt_properties
    from swarm_bridge.codec.wire import registry_ids
    from swarm_bridge.gateway.kafka_to_mqtt import command_publish

    ros_type, topic = "swarm_bridge_msgs/msg/TaskCommand", "fleet.command.task_command"
    kafka = wire_encoder(ros_type, "protobuf", "kafka", subject=f"{topic}-value",
                         register=registry_ids(str(tmp_path / "registry")))
    body = default_types().default_message(ros_type)
    body.update(task_id="t1", command_id="c1", robot_id="amr_1", kind="navigate")
    value = kafka.encode(Envelope("amr_1", "task_command", 7, 1, ros_type, body))
    payload, content_type, props = command_publish(value, SchemaBook(registry))
    meta = parse_proto_mqtt_properties(content_type, props)
    assert (meta.full_name, meta.extra["ros_type"]) == ("swarm_bridge.record.swarm_bridge_msgs.msg.TaskCommand",
                                                        ros_type)
    decoded = record_codec(ros_type, "protobuf").decode(payload)
    assert (decoded.seq, decoded.body["command_id"]) == (7, "c1")


def test_raw_routes_forward_unchanged(translator: Translator) -> None:
    config = GatewayConfig(gateway_id="gw", fleet="f")
    route = up_rules(config).route("swarm/f/amr_1/presence/status")
    assert route is not None
    out = translator.translate(route, b'{"state": "offline"}')
    assert [(r.topic, r.key, r.value, r.head) for r in out.records] == [
        ("fleet.presence.status", b"amr_1", b'{"state": "offline"}', None)]


def _entry(ledger: Ledger, ident: tuple[str, str, int] | None) -> InFlight:
    return InFlight("t", b"k", b"v", None, ident, lambda _e, _err: None)


def test_ledger_acks_a_message_once_all_its_records_are_in_kafka() -> None:
    ledger = Ledger()
    first = ledger.message(1, 1, 0)
    a, b = _entry(ledger, ("r", "s", 1)), _entry(ledger, ("r", "s", 2))
    ledger.expect(first, a)
    ledger.expect(first, b)
    assert not ledger.seal(first)
    resend = ledger.message(2, 1, 0)  # the same record again, while the first copy is in flight
    ledger.join(resend, ("r", "s", 1))
    assert not ledger.seal(resend)
    assert ledger.delivered(a) == [resend]
    assert ledger.delivered(b) == [first]
    late = ledger.message(3, 1, 0)  # a resend of what is already in Kafka: acked at once
    ledger.join(late, ("r", "s", 1))
    assert ledger.seal(late)


def test_ledger_never_acks_messages_of_a_lost_connection() -> None:
    ledger = Ledger()
    old = ledger.message(5, 1, 0)
    record = _entry(ledger, ("r", "s", 1))
    ledger.expect(old, record)
    ledger.seal(old)
    ledger.new_connection()
    again = ledger.message(5, 1, 0)  # the broker resends it with its packet id
    ledger.join(again, ("r", "s", 1))
    ledger.seal(again)
    assert ledger.delivered(record) == [again]


def test_a_signed_command_is_reframed_for_mqtt_and_still_verifies(registry: FileRegistry, tmp_path: Path) -> None:
    from swarm_bridge.codec.wire import registry_ids, wire_decoder
    from swarm_bridge.commands import CommandSigner, CommandVerifier, Keyring, generate_key_pair
    from swarm_bridge.gateway.kafka_to_mqtt import command_publish

    ros_type, topic = "swarm_bridge_msgs/msg/TaskCommand", "fleet.command.task_command"
    kafka = wire_encoder(ros_type, "avro", "kafka", subject=f"{topic}-value",
                         register=registry_ids(str(tmp_path / "registry")))
    from swarm_bridge_msgs.msg import TaskCommand

    from swarm_bridge.ros.convert import message_to_dict

    body = message_to_dict(TaskCommand(task_id="t1", command_id="c1", robot_id="amr_1", kind="navigate"))
    record = kafka.encode(Envelope("amr_1", "task_command", 7, 1, ros_type, body))
    private, _public = generate_key_pair("fleet-2026", tmp_path / "keys")
    signed = CommandSigner.from_file(private).sign(record)
    payload, content_type, _props = command_publish(signed, SchemaBook(registry))
    assert content_type.startswith("avro/binary")
    verdict, inner = CommandVerifier(Keyring.from_dir(tmp_path / "keys"), required=True).verify(payload)
    assert verdict is None and inner[:2] == b"\xc3\x01"  # Avro single-object inside the same signature
    decoded = wire_decoder(ros_type, "avro", "mqtt", subject=f"{topic}-value").decode(inner)
    assert (decoded.seq, decoded.body["command_id"], decoded.body["robot_id"]) == (7, "c1", "amr_1")
    tampered = payload[:-1] + bytes([payload[-1] ^ 1])
    assert CommandVerifier(Keyring.from_dir(tmp_path / "keys"), required=True).verify(tampered)[0] is not None


def test_a_command_record_in_no_kafka_shape_of_a_commands_format_is_refused_naming_what_is_read(
        registry: FileRegistry) -> None:
    from swarm_bridge.codec.errors import CodecError
    from swarm_bridge.gateway.kafka_to_mqtt import command_publish

    assert command_publish(b'{"task_id": "t1"}', SchemaBook(registry)) == (b'{"task_id": "t1"}', "application/json", [])
    for value in (b"\xc3\x01" + bytes(12), b"\x07\x08garbage"):  # Avro single-object is MQTT's shape, not Kafka's
        with pytest.raises(CodecError) as refused:
            command_publish(value, SchemaBook(registry))
        assert "command record: it " in str(refused.value)
        assert "on Kafka the gateway reads avro-confluent" in str(refused.value) and " or json " in str(refused.value)
