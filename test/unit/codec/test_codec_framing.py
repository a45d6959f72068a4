"""Wire framing: Confluent (Kafka), Avro single-object and Protobuf over MQTT 5; layouts, limits, fuzzing."""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path
from typing import Any

import fastavro
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swarm_bridge.codec import CodecError, FramingError
from swarm_bridge.codec.framing import (
    BATCH,
    BATCH_MAGIC,
    BATCHES,
    CONFLUENT,
    PROTO_MQTT,
    SINGLE_OBJECT,
    avro_fingerprint,
    check_size,
    frame_batch,
    frame_confluent,
    frame_json_batch,
    frame_single_object,
    parse_confluent,
    parse_proto_mqtt_properties,
    parse_single_object,
    proto_mqtt_properties,
    split_batch,
)

SCHEMAS = Path(__file__).resolve().parents[3] / "schemas"
_U64 = (1 << 64) - 1


# --- Confluent ---------------------------------------------------------------------------------


def test_confluent_avro_layout_is_magic_then_big_endian_id_then_payload() -> None:
    framed = frame_confluent(0x01020304, b"body")
    assert framed == b"\x00\x01\x02\x03\x04body"
    assert parse_confluent(framed) == (0x01020304, None, b"body")


def test_confluent_protobuf_first_message_is_one_zero_byte() -> None:
    framed = frame_confluent(7, b"pb", message_indexes=[0])
    assert framed == b"\x00\x00\x00\x00\x07\x00pb"
    assert parse_confluent(framed, message_indexes=True) == (7, [0], b"pb")


def test_confluent_protobuf_index_path_is_zigzag_count_then_zigzag_indexes() -> None:
    framed = frame_confluent(7, b"pb", message_indexes=[1, 0, 70])
    # count 3 -> zigzag 6; 1 -> 2; 0 -> 0; 70 -> 140 = 0x8c 0x01 (two varint bytes)
    assert framed[5:] == b"\x06\x02\x00\x8c\x01pb"
    assert parse_confluent(framed, message_indexes=True) == (7, [1, 0, 70], b"pb")


def test_confluent_agrees_with_the_confluent_kafka_client() -> None:
    """The reference: confluent-kafka's own SchemaId writes and reads the same bytes."""
    from confluent_kafka.schema_registry.common.serde import SchemaId

    for indexes in ([0], [2], [1, 0, 70], [300, 5]):
        theirs = SchemaId("PROTOBUF", 4242, message_indexes=indexes).id_to_bytes()
        assert frame_confluent(4242, b"", message_indexes=indexes) == theirs
        parsed = SchemaId("PROTOBUF")
        rest = parsed.from_bytes(io.BytesIO(frame_confluent(4242, b"tail", message_indexes=indexes)))
        assert (parsed.id, parsed.message_indexes, rest.read()) == (4242, indexes, b"tail")


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"", "too short: 0 bytes"),
        (b"\x00\x00\x01", "too short: 3 bytes"),
        (b"\x05\x00\x00\x00\x01x", "wrong magic byte 0x05, expected 0x00"),
        (b"\xc3\x01\x00\x00\x00\x01", "wrong magic byte 0xc3"),
        (b"\x01" + bytes(16), r"schema GUID framing\) is not supported"),
        (b"\x00\xff\xff\xff\xffx", "schema id 4294967295 out of range"),
    ],
)
def test_confluent_bad_frames_name_the_framing(data: bytes, problem: str) -> None:
    with pytest.raises(FramingError, match=problem) as caught:
        parse_confluent(data)
    assert caught.value.framing == CONFLUENT
    assert str(caught.value).startswith("confluent: ")


@pytest.mark.parametrize(
    ("tail", "problem"),
    [
        (b"", "truncated varint in the message index count"),
        (b"\x80", "truncated varint in the message index count"),
        (b"\xff\xff\xff\xff\xff\x01", "longer than 5 bytes"),
        (b"\x01", "message index count -1 out of range"),
        (b"\x06\x02", "truncated varint in the message index 1"),
        (b"\x02\x01", r"message index 0 out of range 0\.\.2147483647 \(-1\)"),
        (b"\x02\xfe\xff\xff\xff\x7f", r"message index 0 out of range 0\.\.2147483647 \(17179869183\)"),
        (b"\xfe\x01", "message index count 127 out of range"),
    ],
)
def test_confluent_bad_message_indexes(tail: bytes, problem: str) -> None:
    with pytest.raises(FramingError, match=problem):
        parse_confluent(b"\x00\x00\x00\x00\x01" + tail, message_indexes=True)


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"schema_id": -1}, "schema id must be an integer in 0..2147483647"),
        ({"schema_id": 1 << 31}, "schema id must be an integer"),
        ({"schema_id": True}, "schema id must be an integer"),
        ({"schema_id": 1, "message_indexes": []}, "must not be empty"),
        ({"schema_id": 1, "message_indexes": [-2]}, "message index must be an integer"),
        ({"schema_id": 1, "message_indexes": [0] * 65}, "65 message indexes exceed the limit"),
    ],
)
def test_confluent_refuses_to_write_what_it_could_not_read(kwargs: dict[str, Any], problem: str) -> None:
    with pytest.raises(FramingError, match=problem):
        frame_confluent(payload=b"x", **kwargs)


def test_oversized_payloads_are_refused_both_ways_and_the_limit_is_configurable() -> None:
    with pytest.raises(FramingError, match="payload of 1048581 bytes exceeds the limit of 1048576 bytes"):
        frame_confluent(1, bytes(1 << 20))
    framed = frame_confluent(1, bytes(100), max_payload=0)  # 0: no limit
    with pytest.raises(FramingError, match="exceeds the limit of 50 bytes"):
        parse_confluent(framed, max_payload=50)
    assert parse_confluent(framed, max_payload=105).payload == bytes(100)
    with pytest.raises(FramingError, match="avro-single-object: payload of 20 bytes exceeds"):
        parse_single_object(frame_single_object(1, bytes(10)), max_payload=19)
    with pytest.raises(FramingError, match="protobuf-mqtt: payload of 3 bytes exceeds the limit of 2 bytes"):
        check_size(PROTO_MQTT, b"abc", 2)


def test_non_bytes_input_is_a_framing_error() -> None:
    with pytest.raises(FramingError, match="expected bytes, got str"):
        parse_confluent("text")  # type: ignore[arg-type]
    assert parse_single_object(bytearray(frame_single_object(5, b"z"))) == (5, b"z")


# --- Avro single-object -----------------------------------------------------------------------


def _spec_crc64_avro(data: bytes) -> int:
    """CRC-64-AVRO written from the Avro specification's description (an independent check of fastavro)."""
    empty = 0xC15D213AA4D7A795
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (empty & -(fp & 1))
        table.append(fp & _U64)
    fp = empty
    for byte in data:
        fp = (fp >> 8) ^ table[(fp ^ byte) & 0xFF]
    return fp


# Fingerprints published with the Avro specification's test data (share/test/data/schema-tests.txt),
# written there as signed Java longs.
SPEC_VECTORS = [
    ('"null"', 7195948357588979594),
    ('"int"', 8247732601305521295),
    ('"long"', -3434872931120570953),
    ('"string"', -8142146995180207161),
    ('{"fields":[], "type":"record", "name":"foo"}', -4824392279771201922),
    ('{"fields":[], "type":"record", "name":"foo", "namespace":"x.y"}', 5916914534497305771),
    ('{"type":"enum", "name":"foo", "symbols":["A1"]}', -6342190197741309591),
    ('{"name":"foo","type":"fixed","size":15}', 1756455273707447556),
    ('{"values":"string", "type":"map"}', -8732877298790414990),
    (
        '{"name":"PigValue","type":"record","fields":[{"name":"value","type":["null","int","long","PigValue"]}]}',
        -1759257747318642341,
    ),
]


@pytest.mark.parametrize(("schema", "signed"), SPEC_VECTORS)
def test_fingerprint_matches_the_avro_spec_vectors(schema: str, signed: int) -> None:
    assert avro_fingerprint(schema) == signed & _U64


def test_fingerprint_of_int_and_its_wire_bytes() -> None:
    # 8247732601305521295 == 0x7275D51A3F395C8F; on the wire little-endian: 8f 5c 39 3f 1a d5 75 72.
    assert avro_fingerprint("int") == 0x7275D51A3F395C8F
    assert frame_single_object(avro_fingerprint("int"), b"\x02") == bytes.fromhex("c3018f5c393f1ad5757202")


@pytest.mark.parametrize("path", sorted(SCHEMAS.glob("*.avsc")), ids=lambda p: p.name)
def test_fingerprint_is_crc64_avro_of_the_parsing_canonical_form(path: Path) -> None:
    schema = json.loads(path.read_text())
    canonical = fastavro.schema.to_parsing_canonical_form(schema)
    assert avro_fingerprint(schema) == _spec_crc64_avro(canonical.encode()) == avro_fingerprint(path.read_text())


def test_single_object_round_trip_with_fastavro() -> None:
    schema = json.loads((SCHEMAS / "heartbeat.v1.avsc").read_text())
    record = {"robot_id": "amr_007", "seq": 3, "stamp_ns": 1_700_000_000_000_000_000, "uptime_ns": 42,
              "bridge_version": "0.1"}
    body = io.BytesIO()
    fastavro.schemaless_writer(body, fastavro.parse_schema(schema), record)
    framed = frame_single_object(avro_fingerprint(schema), body.getvalue())
    assert framed[:2] == b"\xc3\x01"
    fingerprint, payload = parse_single_object(framed)
    assert fingerprint == avro_fingerprint(schema)
    assert fastavro.schemaless_reader(io.BytesIO(payload), fastavro.parse_schema(schema), None) == record


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"", "too short: 0 bytes"),
        (b"\xc3", "too short: 1 bytes"),
        (b"\xc3\x01\x00\x01", "too short: 4 bytes, need at least 10"),
        (b"\x00\x00\x00\x00\x01\x02\x03\x04\x05\x06", "wrong marker 00 00, expected c3 01"),
        (b"\xc3\x02" + bytes(8), "wrong marker c3 02"),
    ],
)
def test_single_object_bad_frames(data: bytes, problem: str) -> None:
    with pytest.raises(FramingError, match=problem) as caught:
        parse_single_object(data)
    assert caught.value.framing == SINGLE_OBJECT


def test_single_object_refuses_a_fingerprint_that_is_not_64_bit() -> None:
    with pytest.raises(FramingError, match="unsigned 64-bit"):
        frame_single_object(1 << 64, b"")
    with pytest.raises(FramingError, match="unsigned 64-bit"):
        frame_single_object(-1, b"")


def test_fingerprint_of_a_bad_schema_is_a_parse_error() -> None:
    from swarm_bridge.codec import SchemaParseError

    with pytest.raises(SchemaParseError, match="not JSON"):
        avro_fingerprint('{"type": ')
    with pytest.raises(SchemaParseError, match="avro schema"):
        avro_fingerprint({"type": "record", "name": "A", "fields": [{"name": "x", "type": "nope"}]})


# --- Protobuf over MQTT 5 ---------------------------------------------------------------------


def test_proto_mqtt_properties_layout_and_round_trip() -> None:
    props = proto_mqtt_properties(
        "swarm_bridge.fleet.v1.TaskCommand",
        2,
        subject="fleet.commands-value",
        ros_type="swarm_bridge_msgs/msg/TaskCommand",
    )
    assert props.content_type == "application/x-protobuf; messageType=swarm_bridge.fleet.v1.TaskCommand"
    assert props.user_properties == [
        ("schema-version", "2"),
        ("ros_type", "swarm_bridge_msgs/msg/TaskCommand"),
        ("subject", "fleet.commands-value"),
    ]
    meta = parse_proto_mqtt_properties(props.content_type, props.user_properties)
    assert meta == ("swarm_bridge.fleet.v1.TaskCommand", 2,
                    {"ros_type": "swarm_bridge_msgs/msg/TaskCommand", "subject": "fleet.commands-value"})
    # a mapping works too, and parameters are matched without regard to case and spacing
    again = parse_proto_mqtt_properties('Application/X-Protobuf ;  MESSAGETYPE="a.B"', {"schema-version": "1"})
    assert again == ("a.B", 1, {})


@pytest.mark.parametrize(
    ("content_type", "props", "problem"),
    [
        (None, [("schema-version", "1")], "no content type"),
        ("application/json", [("schema-version", "1")], "'application/json' is not 'application/x-protobuf'"),
        ("application/x-protobuf", [("schema-version", "1")], "has no valid messageType"),
        ("application/x-protobuf; messageType=1bad", [("schema-version", "1")], "has no valid messageType"),
        ("application/x-protobuf; messageType=a.B", [], "'schema-version' missing"),
        ("application/x-protobuf; messageType=a.B", [("schema-version", "x")], "must be an integer >= 1"),
        ("application/x-protobuf; messageType=a.B", [("schema-version", "0")], "must be an integer >= 1"),
        ("application/x-protobuf; messageType=a.B", [("schema-version", "9" * 5000)], "must be an integer >= 1"),
        ("application/x-protobuf; messageType=a.B", [("schema-version",)], "string pairs"),
    ],
)
def test_proto_mqtt_bad_properties(content_type: str | None, props: Any, problem: str) -> None:
    with pytest.raises(FramingError, match=problem) as caught:
        parse_proto_mqtt_properties(content_type, props)
    assert caught.value.framing == PROTO_MQTT


@pytest.mark.parametrize(
    ("args", "extra", "problem"),
    [
        (("not a name", 1), {}, "dotted Protobuf full name"),
        (("a.B", 0), {}, "schema version must be an integer >= 1"),
        (("a.B", 1), {"k": 1.5}, "user property 'k' must be a str or int"),
    ],
)
def test_proto_mqtt_properties_refuses_bad_values(args: tuple[Any, ...], extra: dict[str, Any], problem: str) -> None:
    with pytest.raises(FramingError, match=problem):
        proto_mqtt_properties(*args, **extra)


# --- fuzzing: arbitrary input gives a result or a CodecError, never another exception ---------


@settings(max_examples=600, deadline=None)
@given(st.binary(max_size=64), st.booleans(), st.integers(min_value=0, max_value=80))
def test_fuzz_parse_confluent(data: bytes, indexes: bool, limit: int) -> None:
    try:
        frame = parse_confluent(data, message_indexes=indexes, max_payload=limit)
    except CodecError:
        return
    assert frame.payload == data[len(data) - len(frame.payload) :]


@settings(max_examples=600, deadline=None)
@given(st.one_of(st.binary(max_size=40), st.binary(max_size=30).map(lambda b: b"\x00\x00\x00\x00\x01" + b)))
def test_fuzz_parse_confluent_protobuf_near_valid(data: bytes) -> None:
    with contextlib.suppress(CodecError):
        parse_confluent(data, message_indexes=True)


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.binary(max_size=40), st.binary(max_size=30).map(lambda b: b"\xc3\x01" + b)))
def test_fuzz_parse_single_object(data: bytes) -> None:
    try:
        fingerprint, payload = parse_single_object(data)
    except CodecError:
        return
    assert 0 <= fingerprint <= _U64 and data.endswith(payload)


@settings(max_examples=400, deadline=None)
@given(
    st.one_of(st.none(), st.text(max_size=60), st.text(max_size=20).map(lambda t: f"application/x-protobuf;{t}")),
    st.lists(st.tuples(st.text(max_size=15), st.text(max_size=15)), max_size=4),
)
def test_fuzz_parse_proto_mqtt_properties(content_type: str | None, props: list[tuple[str, str]]) -> None:
    with contextlib.suppress(CodecError):
        parse_proto_mqtt_properties(content_type, props)


@settings(max_examples=300, deadline=None)
@given(
    st.integers(min_value=0, max_value=(1 << 31) - 1),
    st.one_of(st.none(), st.lists(st.integers(min_value=0, max_value=(1 << 31) - 1), min_size=1, max_size=8)),
    st.binary(max_size=32),
)
def test_confluent_round_trip_property(schema_id: int, indexes: list[int] | None, payload: bytes) -> None:
    framed = frame_confluent(schema_id, payload, message_indexes=indexes)
    assert parse_confluent(framed, message_indexes=indexes is not None) == (schema_id, indexes, payload)


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=_U64), st.binary(max_size=32))
def test_single_object_round_trip_property(fingerprint: int, payload: bytes) -> None:
    assert parse_single_object(frame_single_object(fingerprint, payload)) == (fingerprint, payload)


# --- Record batches -----------------------------------------------------------------------------


def test_batch_layout_is_magic_then_length_prefixed_records() -> None:
    framed = frame_batch([b"ab", frame_single_object(7, b"xyz")])
    assert framed[:4] == BATCH_MAGIC == b"\x00SB\x01"
    assert framed[4:10] == b"\x00\x00\x00\x02ab"
    assert split_batch(framed) == [b"ab", frame_single_object(7, b"xyz")]


def test_a_record_that_is_not_a_batch_is_its_own_only_record() -> None:
    single = frame_single_object(1, b"body")
    assert split_batch(single) == [single]
    assert split_batch(b'{"seq": 1}') == [b'{"seq": 1}']


@pytest.mark.parametrize(("data", "problem"), [
    (BATCH_MAGIC, "empty batch"),
    (BATCH_MAGIC + b"\x00\x00", "length cut off"),
    (BATCH_MAGIC + b"\x00\x00\x00\x09abc", "says 9 bytes, only 3 left"),
    (frame_batch([b"a"]) + b"\x00", "record 1: length cut off"),
])
def test_batch_bad_frames(data: bytes, problem: str) -> None:
    with pytest.raises(FramingError, match=problem) as caught:
        split_batch(data)
    assert caught.value.framing == BATCH


def test_a_json_batch_is_a_json_array_of_the_records_as_they_were() -> None:
    records = [b'{"seq": 1, "body": {"data": "a,]\\"[x"}}', '{"seq": 2, "body": {"data": "é"}}'.encode()]
    framed = frame_json_batch(records)
    assert json.loads(framed) == [json.loads(r) for r in records]  # a plain JSON reader reads it
    assert split_batch(framed) == records  # each record byte for byte
    assert split_batch(b' [ {"a": 1} ,\n{"b": 2} ] '.strip()) == [b'{"a": 1}', b'{"b": 2}']
    assert BATCHES["json"] is frame_json_batch and BATCHES["avro"] is BATCHES["protobuf"] is frame_batch


@pytest.mark.parametrize(("data", "problem"), [
    (b"[]", "empty JSON batch"),
    (b'[{"a": 1}', "expected ',' or a final ']'"),
    (b'[{"a": 1} {"b": 2}]', "expected ',' or a final ']'"),
    (b'[{"a": 1}]x', "expected ',' or a final ']'"),
    (b'[{"a": 1},', "record 1: Expecting value"),
    (b"[\xff]", "not UTF-8"),
])
def test_json_batch_bad_frames(data: bytes, problem: str) -> None:
    with pytest.raises(FramingError, match=re.escape(problem)) as caught:
        split_batch(data)
    assert caught.value.framing == BATCH


def test_batch_refuses_nothing_and_oversize() -> None:
    with pytest.raises(FramingError, match="at least one record"):
        frame_batch([])
    with pytest.raises(FramingError, match="exceeds the limit"):
        frame_batch([b"x" * 60, b"y" * 60], max_payload=100)


@settings(max_examples=300)
@given(st.lists(st.binary(max_size=64), min_size=1, max_size=20))
def test_batch_round_trip_property(records: list[bytes]) -> None:
    assert split_batch(frame_batch(records)) == records


@settings(max_examples=500)
@given(st.binary(max_size=64))
def test_fuzz_split_batch(data: bytes) -> None:
    with contextlib.suppress(FramingError):
        split_batch(BATCH_MAGIC + data)
