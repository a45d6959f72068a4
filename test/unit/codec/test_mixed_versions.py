"""Two versions of one message in one fleet: records of either are read by readers of either, the writer's schema
resolved to the reader's (a field added, a field removed, an enum grown); a change the level forbids is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from swarm_bridge.codec.avro import avro_schema
from swarm_bridge.codec.envelope import Envelope
from swarm_bridge.codec.errors import CodecError, IncompatibleSchema, SchemaMismatch
from swarm_bridge.codec.registry import FileRegistry, Schema
from swarm_bridge.codec.rostypes import RosTypes
from swarm_bridge.codec.wire import registry_ids, wire_decoder, wire_encoder

READING = "mixed_msgs/msg/Reading"
V1 = "uint8 MODE_IDLE=0\nuint8 MODE_BUSY=1\nstring name\nuint8 mode\nfloat64 value\nstring note\n"
V2 = "uint8 MODE_IDLE=0\nuint8 MODE_BUSY=1\nuint8 MODE_CHARGING=2\nstring name\nuint8 mode\nfloat64 value\n" \
     "float32 voltage\n"  # voltage added, note removed, mode grew CHARGING
BROKEN = "string name\nuint8 mode\nstring value\n"  # value changes type: no level but NONE lets it through
SUBJECT = "fleet.telemetry.reading-value"


def version(tmp_path: Path, name: str, text: str) -> RosTypes:
    folder = tmp_path / name / "mixed_msgs" / "msg"
    folder.mkdir(parents=True)
    (folder / "Reading.msg").write_text(text)
    return RosTypes(extra_msg_dirs=[tmp_path / name])


@pytest.fixture()
def fleet(tmp_path: Path) -> tuple[RosTypes, RosTypes, str]:
    return version(tmp_path, "v1", V1), version(tmp_path, "v2", V2), str(tmp_path / "registry")


def _v1(seq: int) -> Envelope:
    return Envelope("amr_1", "reading", seq, 1, READING, {"name": "a", "mode": 1, "value": 2.5, "note": "n"})


def _v2(seq: int) -> Envelope:
    return Envelope("amr_2", "reading", seq, 1, READING, {"name": "b", "mode": 2, "value": 3.5, "voltage": 24.0})


V2_PROTO = V1.replace("uint8 MODE_BUSY=1\n", "uint8 MODE_BUSY=1\nuint8 MODE_CHARGING=2\n") + "float32 voltage\n"
# Protobuf numbers fields in ROS definition order, so a version may add fields at the end but not remove one:
# the fields after it would be renumbered, which the registry refuses (field numbers are permanent).


def test_kafka_readers_of_either_version_read_records_of_both_avro(fleet: tuple[RosTypes, RosTypes, str]) -> None:
    v1, v2, registry = fleet
    ids = registry_ids(registry)
    old = wire_encoder(READING, "avro", "kafka", subject=SUBJECT, register=ids, types=v1)
    new = wire_encoder(READING, "avro", "kafka", subject=SUBJECT, register=ids, types=v2)
    records = [old.encode(_v1(1)), new.encode(_v2(2))]
    assert FileRegistry(registry).versions(SUBJECT) == [1, 2]
    as_v1 = wire_decoder(READING, "avro", "kafka", subject=SUBJECT, lookup=ids, types=v1)
    as_v2 = wire_decoder(READING, "avro", "kafka", subject=SUBJECT, lookup=ids, types=v2)
    assert [as_v1.decode(r).body for r in records] == [
        {"name": "a", "mode": 1, "value": 2.5, "note": "n"},
        {"name": "b", "mode": 2, "value": 3.5, "note": ""}]  # note: the reader's default; voltage skipped
    assert [as_v2.decode(r).body for r in records] == [
        {"name": "a", "mode": 1, "value": 2.5, "voltage": 0.0},
        {"name": "b", "mode": 2, "value": 3.5, "voltage": 24.0}]
    assert [(e.robot_id, e.seq) for e in map(as_v1.decode, records)] == [("amr_1", 1), ("amr_2", 2)]


def test_kafka_readers_of_either_version_read_records_of_both_protobuf(tmp_path: Path,
                                                                       fleet: tuple[RosTypes, RosTypes, str]) -> None:
    v1, _v2types, registry = fleet
    v2 = version(tmp_path, "v2p", V2_PROTO)
    ids = registry_ids(registry)
    old = wire_encoder(READING, "protobuf", "kafka", subject=SUBJECT, register=ids, types=v1)
    new = wire_encoder(READING, "protobuf", "kafka", subject=SUBJECT, register=ids, types=v2)
    records = [old.encode(_v1(1)), new.encode(Envelope("amr_2", "reading", 2, 1, READING, {
        "name": "b", "mode": 2, "value": 3.5, "note": "m", "voltage": 24.0}))]
    assert FileRegistry(registry).versions("ros/mixed_msgs/msg/Reading.proto") == [1, 2]
    as_v1 = wire_decoder(READING, "protobuf", "kafka", subject=SUBJECT, lookup=ids, types=v1)
    as_v2 = wire_decoder(READING, "protobuf", "kafka", subject=SUBJECT, lookup=ids, types=v2)
    assert [as_v1.decode(r).body for r in records] == [
        {"name": "a", "mode": 1, "value": 2.5, "note": "n"}, {"name": "b", "mode": 2, "value": 3.5, "note": "m"}]
    assert [as_v2.decode(r).body for r in records] == [
        {"name": "a", "mode": 1, "value": 2.5, "note": "n", "voltage": 0.0},
        {"name": "b", "mode": 2, "value": 3.5, "note": "m", "voltage": 24.0}]


def test_mqtt_readers_resolve_a_registered_writer_by_its_fingerprint(fleet: tuple[RosTypes, RosTypes, str]) -> None:
    v1, v2, registry = fleet
    ids = registry_ids(registry)
    ids(SUBJECT, Schema.avro(avro_schema(READING, v2)))  # what a v2 robot bridge registers at its start
    record = wire_encoder(READING, "avro", "mqtt", subject=SUBJECT, types=v2).encode(_v2(5))
    resolved = wire_decoder(READING, "avro", "mqtt", subject=SUBJECT, lookup=ids, types=v1).decode(record)
    assert resolved.body == {"name": "b", "mode": 2, "value": 3.5, "note": ""}
    with pytest.raises(SchemaMismatch, match="fingerprint"):  # no registry to ask: refused as before
        wire_decoder(READING, "avro", "mqtt", subject=SUBJECT, types=v1).decode(record)


def test_a_record_of_another_message_is_no_version_of_it(fleet: tuple[RosTypes, RosTypes, str]) -> None:
    v1, _v2types, registry = fleet
    ids = registry_ids(registry)
    other = wire_encoder("std_msgs/msg/String", "avro", "kafka", subject="other-value", register=ids).encode(
        Envelope("amr_1", "s", 1, 1, "std_msgs/msg/String", {"data": "x"}))
    reader = wire_decoder(READING, "avro", "kafka", subject=SUBJECT, lookup=ids, types=v1)
    with pytest.raises(SchemaMismatch, match=r"std_msgs\.msg\.String"):
        reader.decode(other)


@pytest.mark.parametrize("fmt", ["avro", "protobuf"])
def test_a_forbidden_change_is_refused_naming_subject_rule_and_field(tmp_path: Path,
                                                                     fleet: tuple[RosTypes, RosTypes, str],
                                                                     fmt: str) -> None:
    v1, _v2types, registry = fleet
    ids = registry_ids(registry)
    wire_encoder(READING, fmt, "kafka", subject=SUBJECT, register=ids, types=v1)  # type: ignore[arg-type]
    broken = version(tmp_path, "v3", BROKEN)
    with pytest.raises(IncompatibleSchema) as refused:
        wire_encoder(READING, fmt, "kafka", subject=SUBJECT, register=ids, types=broken)  # type: ignore[arg-type]
    subject = SUBJECT if fmt == "avro" else "ros/mixed_msgs/msg/Reading.proto"
    assert refused.value.subject == subject and refused.value.rule == "BACKWARD"
    assert "value" in refused.value.field, refused.value
    assert f"subject {subject}: incompatible under BACKWARD: field '" in str(refused.value)


def test_a_route_pinned_to_an_earlier_version_writes_that_version(fleet: tuple[RosTypes, RosTypes, str]) -> None:
    """Rollback without a software change: a v2 robot pinned to version 1 writes records framed with version 1's
    id (Kafka) or fingerprint (MQTT), its message resolved to it; a v1 reader needs no registry for them."""
    v1, v2, registry = fleet
    ids = registry_ids(registry)
    wire_encoder(READING, "avro", "kafka", subject=SUBJECT, register=ids, types=v1)
    version1 = FileRegistry(registry).version(SUBJECT, 1)
    kafka = wire_encoder(READING, "avro", "kafka", subject=SUBJECT, register=ids, types=v2, pin=version1)
    record = kafka.encode(_v2(3))
    assert int.from_bytes(record[1:5], "big") == version1.id and FileRegistry(registry).versions(SUBJECT) == [1, 2]
    reader = wire_decoder(READING, "avro", "kafka", subject=SUBJECT, lookup=ids, types=v1)
    assert reader.decode(record).body == {"name": "b", "mode": 2, "value": 3.5, "note": ""}
    mqtt = wire_encoder(READING, "avro", "mqtt", subject=SUBJECT, types=v2, pin=version1).encode(_v2(4))
    plain = wire_decoder(READING, "avro", "mqtt", subject=SUBJECT, types=v1)  # no registry: its own fingerprint
    assert plain.decode(mqtt).body == {"name": "b", "mode": 2, "value": 3.5, "note": ""}
    with pytest.raises(CodecError, match="format json cannot be pinned"):
        wire_encoder(READING, "json", "mqtt", subject=SUBJECT, types=v2, pin=version1)
