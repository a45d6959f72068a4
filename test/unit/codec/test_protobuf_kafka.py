"""Protobuf records on Kafka in Confluent's wire format, against the embedded file registry: the framing, every
imported .proto its own subject referenced by the record's, and a reader that builds its classes from the registry."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from swarm_bridge.codec.envelope import Envelope
from swarm_bridge.codec.errors import SchemaMismatch
from swarm_bridge.codec.framing import parse_confluent
from swarm_bridge.codec.registry import FileRegistry, Schema
from swarm_bridge.codec.wire import registry_ids, wire_decoder, wire_encoder

IMU = "sensor_msgs/msg/Imu"
TOPIC = "fleet.telemetry.imu"
BODY = {"header": {"stamp": {"sec": 3, "nanosec": 4}, "frame_id": "base"},
        "orientation": {"x": 0.0, "y": 0.0, "z": 0.0, "w": 1.0}, "orientation_covariance": [0.5] * 9,
        "angular_velocity": {"x": 1.0, "y": 2.0, "z": 3.0}, "angular_velocity_covariance": [0.0] * 9,
        "linear_acceleration": {"x": 0.0, "y": 0.0, "z": 9.8}, "linear_acceleration_covariance": [0.0] * 9}
ENVELOPE = Envelope("amr_1", "imu", 7, 11, IMU, BODY)


def _encoder(root: Path, ros_type: str = IMU, topic: str = TOPIC):  # type: ignore[no-untyped-def]
    return wire_encoder(ros_type, "protobuf", "kafka", subject=f"{topic}-value", register=registry_ids(str(root)))


def test_the_record_travels_in_confluent_protobuf_framing_and_decodes(tmp_path: Path) -> None:
    value = _encoder(tmp_path).encode(ENVELOPE)
    frame = parse_confluent(value, message_indexes=True)
    registered = FileRegistry(tmp_path).latest(f"{TOPIC}-value")
    assert value[:1] == b"\x00" and frame.schema_id == registered.id and value[5:6] == b"\x00"
    assert frame.message_indexes == [0]
    decoder = wire_decoder(IMU, "protobuf", "kafka", subject=f"{TOPIC}-value", lookup=registry_ids(str(tmp_path)))
    assert decoder.decode(value) == ENVELOPE


def test_every_import_is_a_subject_of_its_own_and_referenced(tmp_path: Path) -> None:
    _encoder(tmp_path).encode(ENVELOPE)
    registry = FileRegistry(tmp_path)
    record = registry.latest(f"{TOPIC}-value").schema
    assert record.kind == "PROTOBUF"
    assert [(r.name, r.subject, r.version) for r in record.references] == [
        ("ros/sensor_msgs/msg/Imu.proto", "ros/sensor_msgs/msg/Imu.proto", 1)]
    imu = registry.latest("ros/sensor_msgs/msg/Imu.proto").schema
    assert [r.name for r in imu.references] == ["ros/geometry_msgs/msg/Quaternion.proto",
                                                 "ros/geometry_msgs/msg/Vector3.proto", "ros/std_msgs/msg/Header.proto"]
    assert [r.name for r in registry.latest("ros/std_msgs/msg/Header.proto").schema.references] == [
        "ros/builtin_interfaces/msg/Time.proto"]
    # another record importing the same files reuses their subjects: no new version of Header
    _encoder(tmp_path, "geometry_msgs/msg/PoseStamped", "fleet.telemetry.pose").encode(Envelope(
        "amr_1", "pose", 1, 1, "geometry_msgs/msg/PoseStamped", {"header": BODY["header"], "pose": {
            "position": {"x": 1.0, "y": 2.0, "z": 0.0}, "orientation": BODY["orientation"]}}))
    assert registry.versions("ros/std_msgs/msg/Header.proto") == [1]


def test_a_reader_builds_the_record_class_from_the_registry_alone(tmp_path: Path) -> None:
    """What any Confluent reader does: schema by id, its references by subject and version, into one pool."""
    value = _encoder(tmp_path).encode(ENVELOPE)
    registry = FileRegistry(tmp_path)
    frame = parse_confluent(value, message_indexes=True)
    pool = descriptor_pool.DescriptorPool()

    def add(schema: Schema, name: str) -> descriptor_pb2.FileDescriptorProto:
        for ref in schema.references:
            if not _known(pool, ref.name):
                add(registry.version(ref.subject, ref.version).schema, ref.name)
        file = descriptor_pb2.FileDescriptorProto.FromString(base64.b64decode(schema.text))
        assert file.name == name
        pool.Add(file)
        return file

    file = add(registry.by_id(frame.schema_id), "swarm_bridge/record/sensor_msgs/msg/Imu.proto")
    message: Any = message_factory.GetMessageClass(pool.FindMessageTypeByName(
        f"{file.package}.{file.message_type[(frame.message_indexes or [0])[0]].name}"))()
    message.ParseFromString(frame.payload)
    assert (message.robot_id, message.seq, message.body.header.frame_id) == ("amr_1", 7, "base")
    assert list(message.body.orientation_covariance) == [0.5] * 9


def _known(pool: descriptor_pool.DescriptorPool, name: str) -> bool:
    try:
        pool.FindFileByName(name)
    except KeyError:
        return False
    return True


def test_a_record_of_another_message_is_refused_naming_it(tmp_path: Path) -> None:
    _encoder(tmp_path).encode(ENVELOPE)
    other = _encoder(tmp_path, "std_msgs/msg/String", "fleet.telemetry.s").encode(
        Envelope("amr_1", "s", 1, 1, "std_msgs/msg/String", {"data": "x"}))
    decoder = wire_decoder(IMU, "protobuf", "kafka", subject=f"{TOPIC}-value", lookup=registry_ids(str(tmp_path)))
    with pytest.raises(SchemaMismatch, match=r"swarm_bridge\.record\.std_msgs\.msg\.String"):
        decoder.decode(other)
