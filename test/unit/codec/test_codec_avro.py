"""Avro records of any ROS type: derived schemas, lossless round trips, CDR fast path, typed errors on bad input.

Also `record_codec`, which picks the Avro, Protobuf or JSON codec by name.
"""

from __future__ import annotations

import contextlib
import io
import json
from decimal import Decimal
from typing import Any

import fastavro
import pytest
from codec_cases import (
    CODEC_EXAMPLES,
    cached_codec,
    check_round_trip,
    codec_types,
    covered_types,
    edge_envelope,
    messages,
    same,
)
from hypothesis import given
from hypothesis import strategies as st

from swarm_bridge.codec import (
    AvroRecordCodec,
    CodecError,
    Envelope,
    RecordError,
    RosTypes,
    UnknownRosType,
    avro_schema,
    default_types,
    record_codec,
)

EVERYTHING = "codec_test_msgs/msg/Everything"


def _codec(ros_type: str) -> AvroRecordCodec:
    codec: AvroRecordCodec = cached_codec(AvroRecordCodec, ros_type)
    return codec


@pytest.mark.parametrize("ros_type", covered_types())
def test_schema_parses_and_is_deterministic(ros_type: str) -> None:
    schema = avro_schema(ros_type, codec_types())
    fastavro.parse_schema(schema)
    assert json.dumps(schema) == json.dumps(avro_schema(ros_type, codec_types()))
    if not ros_type.startswith("codec_test_msgs/"):
        assert json.dumps(schema) == json.dumps(avro_schema(ros_type, RosTypes()))


def test_names_andedge_envelope() -> None:
    schema = avro_schema("sensor_msgs/msg/Imu", default_types())
    assert f"{schema['namespace']}.{schema['name']}" == "swarm_bridge.record.sensor_msgs.msg.Imu"
    assert [(f["name"], f["type"]) for f in schema["fields"][:6]] == [
        ("robot_id", "string"), ("stream", "string"), ("seq", "long"), ("stamp_ns", "long"),
        ("ros_type", "string"), ("schema_version", "int")]
    body = schema["fields"][6]
    assert body["name"] == "body"
    assert (body["type"]["namespace"], body["type"]["name"]) == ("ros.sensor_msgs.msg", "Imu")
    assert body["type"]["ros.type"] == "sensor_msgs/msg/Imu"
    text = json.dumps(schema)
    assert text.count('"name": "Vector3"') == 1  # defined once ...
    assert text.count('"ros.geometry_msgs.msg.Vector3"') == 1  # ... then referenced by full name
    assert text.count('"name": "Time"') == 1  # builtin Time is a nested record too


def test_type_mapping_is_exact() -> None:
    body = avro_schema(EVERYTHING, codec_types())["fields"][6]["type"]
    got = {f["name"]: f["type"] for f in body["fields"]}
    decimal = {"type": "bytes", "logicalType": "decimal", "precision": 20, "scale": 0}
    expected = {
        "b": "boolean", "by": "int", "ch": "int", "i8": "int", "u8": "int", "i16": "int", "u16": "int",
        "i32": "int", "u32": "long", "i64": "long", "u64": decimal, "f32": "float", "f64": "double",
        "s": "string", "ws": "string", "bs": {"type": "string", "ros.max_length": 5},
        "bws": {"type": "string", "ros.max_length": 4},
        "fb": {"type": "array", "items": "boolean", "ros.size": 3},
        "fu64": {"type": "array", "items": decimal, "ros.size": 2},
        "ff32": {"type": "array", "items": "float", "ros.size": 2},
        "fu8": {"type": "bytes", "ros.size": 4}, "fby": {"type": "bytes", "ros.size": 3},
        "fch": {"type": "array", "items": "int", "ros.size": 2},
        "si32": {"type": "array", "items": "int"}, "su8": "bytes", "sby": "bytes",
        "bi16": {"type": "array", "items": "int", "ros.max_size": 3},
        "bss": {"type": "array", "items": {"type": "string", "ros.max_length": 3}, "ros.max_size": 2},
        "bu8": {"type": "bytes", "ros.max_size": 5},
        "finner": {"type": "array", "items": "ros.codec_test_msgs.msg.Inner", "ros.size": 2},
        "durations": {"type": "array", "items": {
            "type": "record", "name": "Duration", "namespace": "ros.builtin_interfaces.msg",
            "ros.type": "builtin_interfaces/msg/Duration",
            "fields": [{"name": "sec", "type": "int", "default": 0},
                       {"name": "nanosec", "type": "long", "default": 0}]}},
        "empty": {"type": "record", "name": "Empty", "namespace": "ros.std_msgs.msg",
                  "ros.type": "std_msgs/msg/Empty", "fields": []},
        "empties": {"type": "array", "items": "ros.std_msgs.msg.Empty"},
    }
    for name, avro_type in expected.items():
        assert got[name] == avro_type, name
    assert got["inner"]["name"] == "Inner"
    defaults = {f["name"]: f["default"] for f in body["fields"]}
    assert (defaults["b"], defaults["f64"], defaults["s"], defaults["u64"], defaults["si32"]) == (
        False, 0.0, "", "\x00", [])
    assert (defaults["fu8"], defaults["fu64"], defaults["durations"]) == ("\x00" * 4, ["\x00"] * 2, [])
    assert defaults["empty"] == {} and set(defaults["inner"]) == {f.name for f in codec_types().fields(
        "codec_test_msgs/msg/Inner")}


@pytest.mark.parametrize("ros_type", covered_types())
@CODEC_EXAMPLES
@given(data=st.data())
def test_round_trips(ros_type: str, data: st.DataObject) -> None:
    """dict -> Avro -> dict is lossless; raw CDR -> Avro -> raw CDR is byte-identical; the fast path writes
    exactly what fastavro writes."""
    codec = _codec(ros_type)
    payload, fast = check_round_trip(codec, ros_type, data.draw(messages(codec_types(), ros_type)))
    assert fast == payload


def test_uint64_is_lossless_and_readable_as_decimal() -> None:
    codec = _codec("std_msgs/msg/UInt64")
    payload = codec.encode(edge_envelope("std_msgs/msg/UInt64", {"data": 2**64 - 1}))
    assert codec.decode(payload).body == {"data": 2**64 - 1}
    plain: Any = fastavro.schemaless_reader(io.BytesIO(payload), fastavro.parse_schema(codec.schema), None)
    assert plain["body"]["data"] == Decimal(2**64 - 1)  # what any Avro reader sees
    for value in (0, 1, 127, 128, 255, 256, 2**63, 2**64 - 1):
        raw = default_types().dict_to_cdr({"data": value}, "std_msgs/msg/UInt64")
        assert codec.encode_cdr(raw, robot_id="r", stream="s", seq=0, stamp_ns=0) == codec.encode(
            Envelope("r", "s", 0, 0, "std_msgs/msg/UInt64", {"data": value}))
    with pytest.raises(RecordError, match="data"):
        codec.encode(edge_envelope("std_msgs/msg/UInt64", {"data": 2**64}))


def test_rclpy_style_bodies_are_accepted() -> None:
    """message_to_dict gives uint8[] as a list of ints; records carry them as bytes."""
    codec = _codec("std_msgs/msg/UInt8MultiArray")
    body = {"layout": {"dim": [{"label": "x", "size": 3, "stride": 3}], "data_offset": 0}, "data": [1, 2, 255]}
    record = codec.encode(edge_envelope("std_msgs/msg/UInt8MultiArray", body))
    assert codec.decode(record).body["data"] == b"\x01\x02\xff"


def _sample(ros_type: str = "nav_msgs/msg/Odometry") -> tuple[AvroRecordCodec, bytes, bytes]:
    types = codec_types()
    message = types.default_message(ros_type)
    raw = types.dict_to_cdr(message, ros_type)
    return _codec(ros_type), raw, _codec(ros_type).encode(edge_envelope(ros_type, message))


def test_truncated_garbage_and_foreign_payloads_are_record_errors() -> None:
    codec, raw, payload = _sample()
    for cut in range(len(payload)):
        with pytest.raises(RecordError, match="nav_msgs/msg/Odometry"):
            codec.decode(payload[:cut])
        with pytest.raises(RecordError):
            codec.decode_cdr(payload[:cut])
    with pytest.raises(RecordError, match="left over"):
        codec.decode(payload + b"\x00")
    imu = _sample("sensor_msgs/msg/Imu")[2]
    with pytest.raises(RecordError):
        codec.decode(imu)
    with pytest.raises(RecordError, match="nav_msgs/msg/Odometry"):
        codec.encode_cdr(raw[:20], robot_id="r", stream="s", seq=0, stamp_ns=0)
    with pytest.raises(RecordError, match="nav_msgs/msg/Odometry"):
        codec.encode_cdr(b"\xff" + raw, robot_id="r", stream="s", seq=0, stamp_ns=0)


def test_bad_envelopes_and_bodies_name_the_field() -> None:
    codec = _codec("nav_msgs/msg/Odometry")
    body = codec_types().default_message("nav_msgs/msg/Odometry")
    with pytest.raises(RecordError, match="expected a 64-bit integer") as caught:
        codec.encode(Envelope("r", "s", "7", 0, "nav_msgs/msg/Odometry", body))  # type: ignore[arg-type]
    assert caught.value.field == "seq"
    body["pose"]["covariance"] = [0.0]
    with pytest.raises(RecordError, match="expected 36 items") as caught:
        codec.encode(edge_envelope("nav_msgs/msg/Odometry", body))
    assert caught.value.field == "body.pose.covariance"
    with pytest.raises(RecordError, match="ros_type"):
        codec.encode(edge_envelope("sensor_msgs/msg/Imu", body))


@CODEC_EXAMPLES
@given(payload=st.one_of(st.binary(max_size=400), st.binary(max_size=60).map(lambda b: _sample()[2][:300] + b)))
def test_fuzz_decode(payload: bytes) -> None:
    codec = _codec("nav_msgs/msg/Odometry")
    for decode in (codec.decode, codec.decode_cdr):
        with contextlib.suppress(CodecError):
            decode(payload)


# ------------------------------------------------------------------------------------------- record_codec


@pytest.mark.parametrize("fmt", ["avro", "protobuf", "json"])
def test_record_codec_offers_every_format(fmt: Any) -> None:
    types = codec_types()
    codec = record_codec("sensor_msgs/msg/Imu", fmt, types)
    message = types.default_message("sensor_msgs/msg/Imu")
    message["orientation_covariance"][0] = float("nan")
    envelope = edge_envelope("sensor_msgs/msg/Imu", message)
    assert same(codec.decode(codec.encode(envelope)).body, message)
    raw = types.dict_to_cdr(message, "sensor_msgs/msg/Imu")
    payload = codec.encode_cdr(raw, robot_id="amr_007", stream="telemetry", seq=1, stamp_ns=2)
    header, back = codec.decode_cdr(payload)
    assert back == raw
    assert (header.robot_id, header.seq, header.body) == ("amr_007", 1, {})
    with pytest.raises(RecordError):
        record_codec("nav_msgs/msg/Odometry", fmt, types).decode(payload)


def test_record_codec_rejects_unknown_names() -> None:
    with pytest.raises(CodecError, match="Valid options are: avro, protobuf, json"):
        record_codec("sensor_msgs/msg/Imu", "xml", default_types())  # type: ignore[arg-type]
    with pytest.raises(UnknownRosType, match="sensor_msgs/msg/Imu"):
        record_codec("sensor_msgs/Imu", "avro", default_types())


@pytest.mark.parametrize("fmt", ["avro", "protobuf", "json"])
def test_big_endian_cdr_is_accepted(fmt: Any) -> None:
    from rosbags.typesys import Stores, get_typestore

    store, types = get_typestore(Stores.ROS2_KILTED), default_types()
    message = types.default_message("sensor_msgs/msg/BatteryState")
    message["cell_voltage"] = [3.7, 3.8]
    little = types.dict_to_cdr(message, "sensor_msgs/msg/BatteryState")
    decoded = store.deserialize_cdr(little, "sensor_msgs/msg/BatteryState")
    big = bytes(store.serialize_cdr(decoded, "sensor_msgs/msg/BatteryState", little_endian=False))
    codec = record_codec("sensor_msgs/msg/BatteryState", fmt, types)
    payload = codec.encode_cdr(big, robot_id="r", stream="battery", seq=1, stamp_ns=2)
    assert payload == codec.encode_cdr(little, robot_id="r", stream="battery", seq=1, stamp_ns=2)
    assert codec.decode_cdr(payload)[1] == little
