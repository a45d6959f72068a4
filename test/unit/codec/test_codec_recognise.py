"""How a reader recognises a record's format (`codec.recognise`), and `FormatWatch` naming a mismatch once."""

from __future__ import annotations

import pytest

from swarm_bridge.codec.envelope import Envelope
from swarm_bridge.codec.framing import frame_batch, frame_confluent
from swarm_bridge.codec.recognise import SHAPES, FormatWatch, expected_shape, recognise
from swarm_bridge.codec.signing import wrap_signed
from swarm_bridge.codec.wire import wire_encoder
from swarm_bridge.coordinator.core.records import ROBOT_STATE
from swarm_bridge.sim.records import robot_state_body

STATE = Envelope("amr_1", "robot_state", 1, 5, ROBOT_STATE, robot_state_body("amr_1", "amr", ["navigate"], x=1.0,
                                                                             y=2.0, battery=80.0))


def record(fmt: str) -> bytes:
    """A RobotState record in `fmt` as a robot bridge puts it on MQTT."""
    return wire_encoder(ROBOT_STATE, fmt, "mqtt", subject="s").encode(STATE)  # type: ignore[arg-type]


def test_every_shape_is_recognised_from_what_the_encoders_write() -> None:
    avro, js = record("avro"), record("json")
    confluent = frame_confluent(7, avro[10:])
    proto = wire_encoder(ROBOT_STATE, "protobuf", "mqtt", subject="s")
    proto_kafka = frame_confluent(7, proto.encode(STATE), message_indexes=[0])
    cases = {
        "protobuf-confluent": (proto_kafka, None),
        "avro-single-object": (avro, None),
        "json": (js, "application/json"),
        "avro-confluent": (confluent, None),
        "protobuf-mqtt": (proto.encode(STATE), proto.content_type),
    }
    for name, (data, content_type) in cases.items():
        shape = recognise(data, content_type)
        assert shape is not None and shape.name == name, name
    assert {s.name for s in SHAPES} == {*cases, "record-batch", "signed"}


def test_containers_answer_for_the_record_inside() -> None:
    batch = frame_batch([record("avro"), record("avro")])
    assert recognise(batch).name == "avro-single-object"  # type: ignore[union-attr]
    assert recognise(batch, unwrap=False).name == "record-batch"  # type: ignore[union-attr]
    signed = wrap_signed("coord-1", bytes(64), record("json"))
    assert recognise(signed).name == "json"  # type: ignore[union-attr]
    damaged = signed[:5]
    assert recognise(damaged).name == "signed"  # type: ignore[union-attr]


@pytest.mark.parametrize("data", [b"", b"\x07garbage", b"\x00\x01", b"[1, 2]"])
def test_unknown_bytes_are_no_shape(data: bytes) -> None:
    assert recognise(data) is None


def test_expected_shape_per_format_and_transport() -> None:
    assert expected_shape("avro", "kafka").name == "avro-confluent"  # type: ignore[union-attr]
    assert expected_shape("avro", "mqtt").name == "avro-single-object"  # type: ignore[union-attr]
    assert expected_shape("json", "kafka").name == "json"  # type: ignore[union-attr]
    assert expected_shape("protobuf", "kafka").name == "protobuf-confluent"  # type: ignore[union-attr]


def test_a_mismatch_is_named_at_the_first_record_then_only_counted() -> None:
    watch = FormatWatch("coordinator reading kafka:fleet.state.robot_state", "avro", "kafka",
                        "robot_format (coordinator config)", "the robot bridges (format: of their robot_state route)")
    found = [watch.mismatch(record("json"), where=f"offset {i}") for i in range(5)]
    assert [m is not None and m.first for m in found] == [True, False, False, False, False]
    assert watch.counts == {"json": 5} and watch.total == 5
    text = str(found[0])
    assert text.startswith("coordinator reading kafka:fleet.state.robot_state: format mismatch at the first such "
                           "record (offset 0): it is json (starts '{' (0x7b)), but robot_format (coordinator config)"
                           " is avro (starts 00, then a 4-byte schema id, then not 00). Sent by the robot bridges "
                           "(format: of their robot_state route). Fix: set robot_format (coordinator config) to json, "
                           "or make that side send avro.")
    assert "counted" in text and "not logged" in text


def test_records_of_the_expected_shape_or_no_known_shape_are_no_mismatch() -> None:
    watch = FormatWatch("reader", "avro", "kafka", "key", "sender")
    assert watch.mismatch(frame_confluent(3, b"\x02")) is None
    assert watch.mismatch(b"\x07garbage") is None
    assert watch.total == 0


def test_only_shapes_of_the_readers_transport_count_as_another_format() -> None:
    kafka = FormatWatch("reader", "json", "kafka", "robot_format", "the producer")
    assert kafka.mismatch(record("avro")) is None  # single-object Avro on Kafka: malformed, not a format choice
    assert kafka.mismatch(frame_confluent(3, b"\x02")) is not None
    mqtt = FormatWatch("reader", "json", "mqtt", "format", "the coordinator")
    assert mqtt.mismatch(b"\x00\xffnot a record") is None  # 00 on MQTT: no Confluent record, garbage
    assert mqtt.mismatch(record("avro")) is not None
