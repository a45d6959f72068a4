"""Protobuf records of any ROS type: derived descriptors and .proto text, lossless round trips, CDR fast path."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from codec_cases import (
    CODEC_EXAMPLES,
    cached_codec,
    check_round_trip,
    codec_types,
    covered_types,
    edge_envelope,
    messages,
)
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_tools import protoc
from hypothesis import given
from hypothesis import strategies as st

from swarm_bridge.codec import CodecError, Envelope, ProtoRecordCodec, RecordError, RosTypes, default_types
from swarm_bridge.codec.protobuf import file_descriptors, proto_text

EVERYTHING = "codec_test_msgs/msg/Everything"
_F = descriptor_pb2.FieldDescriptorProto


def _codec(ros_type: str) -> ProtoRecordCodec:
    codec: ProtoRecordCodec = cached_codec(ProtoRecordCodec, ros_type)
    return codec


@pytest.mark.parametrize("ros_type", covered_types())
def test_descriptors_load_and_are_deterministic(ros_type: str) -> None:
    files = file_descriptors(ros_type, codec_types())
    pool = descriptor_pool.DescriptorPool()
    for file in files:
        pool.AddSerializedFile(file.SerializeToString())
    assert pool.FindMessageTypeByName("ros." + ros_type.replace("/", "."))
    again = [f.SerializeToString(deterministic=True) for f in file_descriptors(ros_type, codec_types())]
    assert [f.SerializeToString(deterministic=True) for f in files] == again
    assert proto_text(ros_type, codec_types()) == proto_text(ros_type, codec_types())
    if not ros_type.startswith("codec_test_msgs/"):
        fresh = [f.SerializeToString(deterministic=True) for f in file_descriptors(ros_type, RosTypes())]
        assert fresh == again


def test_one_file_per_message_then_the_record() -> None:
    files = {f.name: f for f in file_descriptors("sensor_msgs/msg/Imu", default_types())}
    assert list(files) == ["ros/geometry_msgs/msg/Quaternion.proto", "ros/geometry_msgs/msg/Vector3.proto",
                           "ros/builtin_interfaces/msg/Time.proto", "ros/std_msgs/msg/Header.proto",
                           "ros/sensor_msgs/msg/Imu.proto", "swarm_bridge/record/sensor_msgs/msg/Imu.proto"]
    sensor = files["ros/sensor_msgs/msg/Imu.proto"]
    assert (sensor.package, sensor.syntax) == ("ros.sensor_msgs.msg", "proto3")
    assert list(sensor.dependency) == ["ros/geometry_msgs/msg/Quaternion.proto", "ros/geometry_msgs/msg/Vector3.proto",
                                       "ros/std_msgs/msg/Header.proto"]
    assert [m.name for m in files["ros/geometry_msgs/msg/Vector3.proto"].message_type] == ["Vector3"]
    other = {f.name: f for f in file_descriptors("geometry_msgs/msg/PoseStamped", default_types())}
    assert other["ros/std_msgs/msg/Header.proto"] == files["ros/std_msgs/msg/Header.proto"]  # shared as a subject
    imu = sensor.message_type[0]
    assert [(f.name, f.number) for f in imu.field][:3] == [("header", 1), ("orientation", 2),
                                                            ("orientation_covariance", 3)]
    record = files["swarm_bridge/record/sensor_msgs/msg/Imu.proto"]
    assert record.package == "swarm_bridge.record.sensor_msgs.msg"
    assert [(f.name, f.number, f.type) for f in record.message_type[0].field] == [
        ("robot_id", 1, _F.TYPE_STRING), ("stream", 2, _F.TYPE_STRING), ("seq", 3, _F.TYPE_INT64),
        ("stamp_ns", 4, _F.TYPE_INT64), ("ros_type", 5, _F.TYPE_STRING), ("schema_version", 6, _F.TYPE_INT32),
        ("body", 7, _F.TYPE_MESSAGE)]
    assert record.message_type[0].field[6].type_name == ".ros.sensor_msgs.msg.Imu"


def test_type_mapping_is_exact() -> None:
    files = file_descriptors(EVERYTHING, codec_types())
    message = next(m for f in files if f.package == "ros.codec_test_msgs.msg" for m in f.message_type
                   if m.name == "Everything")
    got = {f.name: (f.type, f.label == _F.LABEL_REPEATED) for f in message.field}
    expected = {
        "b": _F.TYPE_BOOL, "by": _F.TYPE_UINT32, "ch": _F.TYPE_UINT32, "i8": _F.TYPE_INT32, "u8": _F.TYPE_UINT32,
        "i16": _F.TYPE_INT32, "u16": _F.TYPE_UINT32, "i32": _F.TYPE_INT32, "u32": _F.TYPE_UINT32,
        "i64": _F.TYPE_INT64, "u64": _F.TYPE_UINT64, "f32": _F.TYPE_FLOAT, "f64": _F.TYPE_DOUBLE,
        "s": _F.TYPE_STRING, "ws": _F.TYPE_STRING, "bs": _F.TYPE_STRING, "inner": _F.TYPE_MESSAGE,
        "t": _F.TYPE_MESSAGE, "empty": _F.TYPE_MESSAGE,
    }
    for name, kind in expected.items():
        assert got[name] == (kind, False), name
    for name in ("fu8", "fby", "su8", "sby", "bu8"):
        assert got[name] == (_F.TYPE_BYTES, False), name
    for name, kind in {"fb": _F.TYPE_BOOL, "fi8": _F.TYPE_INT32, "fu64": _F.TYPE_UINT64, "sf32": _F.TYPE_FLOAT,
                       "fch": _F.TYPE_UINT32, "bss": _F.TYPE_STRING, "finner": _F.TYPE_MESSAGE,
                       "empties": _F.TYPE_MESSAGE}.items():
        assert got[name] == (kind, True), name
    assert [f.number for f in message.field] == list(range(1, len(message.field) + 1))


def test_proto_text_compiles_to_the_same_descriptors(tmp_path: Path) -> None:
    """The rendered .proto files, compiled by protoc, give our descriptors back (json names aside)."""
    ros_type = EVERYTHING
    text = proto_text(ros_type, codec_types())
    assert "message Everything {" in text and "repeated double ff64 = 24;  // float64[3]" in text
    assert "string bs = 16;  // string<=5" in text and "int32 i8 = 4;  // int8" in text
    names = []
    for chunk in text.split("// file: ")[1:]:
        name, source = chunk.split("\n", 1)
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(source)
        names.append(name)
    out = tmp_path / "set.pb"
    assert protoc.main(["protoc", f"-I{tmp_path}", f"--descriptor_set_out={out}", "--include_imports", *names]) == 0
    compiled = {f.name: f for f in descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file}
    for ours in file_descriptors(ros_type, codec_types()):
        theirs = compiled[ours.name]
        for message in theirs.message_type:
            for field in message.field:
                field.ClearField("json_name")
        assert theirs == ours, ours.name


@pytest.mark.parametrize("ros_type", covered_types())
@CODEC_EXAMPLES
@given(data=st.data())
def test_round_trips(ros_type: str, data: st.DataObject) -> None:
    """dict -> Protobuf -> dict is lossless; raw CDR -> Protobuf -> raw CDR is byte-identical; upb reads the
    transcoded bytes as the message."""
    codec = _codec(ros_type)
    message = data.draw(messages(codec_types(), ros_type))
    _payload, fast = check_round_trip(codec, ros_type, message)
    upb = codec.record_class.FromString(fast)
    assert upb.SerializeToString(deterministic=True) == codec.record_class.FromString(
        upb.SerializeToString()).SerializeToString(deterministic=True)


def test_upb_written_records_decode_too() -> None:
    """A producer using upb (defaults left out, any field order) is read the same."""
    codec = _codec("nav_msgs/msg/Odometry")
    body = codec_types().default_message("nav_msgs/msg/Odometry")
    body["pose"]["pose"]["position"]["x"] = 1.5
    record = codec.record_class(robot_id="amr_007", stream="odom", seq=4, stamp_ns=5,
                                ros_type="nav_msgs/msg/Odometry", schema_version=1, body=body)
    decoded = codec.decode(record.SerializeToString())
    assert decoded.body == body and decoded.seq == 4
    assert codec.decode_cdr(record.SerializeToString())[1] == codec_types().dict_to_cdr(body, "nav_msgs/msg/Odometry")


def _sample(ros_type: str = "nav_msgs/msg/Odometry") -> tuple[ProtoRecordCodec, bytes, bytes]:
    types = codec_types()
    message = types.default_message(ros_type)
    message["header"]["frame_id"] = "odom"
    raw = types.dict_to_cdr(message, ros_type)
    return _codec(ros_type), raw, _codec(ros_type).encode(edge_envelope(ros_type, message))


def test_truncated_garbage_and_foreign_payloads_are_record_errors() -> None:
    codec, raw, payload = _sample()
    for cut in range(len(payload)):
        with pytest.raises(RecordError, match="nav_msgs/msg/Odometry"):
            codec.decode(payload[:cut])
        with pytest.raises(RecordError):
            codec.decode_cdr(payload[:cut])
    with pytest.raises(RecordError):
        codec.decode(_sample("sensor_msgs/msg/Imu")[2])
    with pytest.raises(RecordError, match="nav_msgs/msg/Odometry"):
        codec.encode_cdr(raw[:30], robot_id="r", stream="s", seq=0, stamp_ns=0)
    short = codec.record_class(ros_type="nav_msgs/msg/Odometry")
    short.body.pose.covariance.extend([1.0, 2.0])
    with pytest.raises(RecordError, match="expected 36 items") as caught:
        codec.decode_cdr(short.SerializeToString())  # a foreign producer's wrong fixed-size array
    assert caught.value.field == "body.pose.covariance"


def test_bad_envelopes_and_bodies_name_the_field() -> None:
    codec = _codec("sensor_msgs/msg/Imu")
    body = codec_types().default_message("sensor_msgs/msg/Imu")
    with pytest.raises(RecordError, match="expected a string") as caught:
        codec.encode(Envelope(7, "s", 0, 0, "sensor_msgs/msg/Imu", body))  # type: ignore[arg-type]
    assert caught.value.field == "robot_id"
    with pytest.raises(RecordError, match="out of range") as caught:
        codec.encode(Envelope("r", "s", 0, 0, "sensor_msgs/msg/Imu", body, schema_version=2**40))
    assert caught.value.field == "schema_version"
    body["linear_acceleration"]["x"] = "fast"
    with pytest.raises(RecordError, match="expected a number") as caught:
        codec.encode(edge_envelope("sensor_msgs/msg/Imu", body))
    assert caught.value.field == "body.linear_acceleration.x"


@CODEC_EXAMPLES
@given(payload=st.one_of(st.binary(max_size=400), st.binary(max_size=60).map(lambda b: _sample()[2][:200] + b)))
def test_fuzz_decode(payload: bytes) -> None:
    codec = _codec("nav_msgs/msg/Odometry")
    for decode in (codec.decode, codec.decode_cdr):
        with contextlib.suppress(CodecError):
            decode(payload)
