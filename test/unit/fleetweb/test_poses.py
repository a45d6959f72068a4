"""Poses from the robots' own pose streams, read by the fingerprint their Avro records carry; other telemetry is
left alone, and the pose a stream gives puts the robot on the map."""

from __future__ import annotations

from typing import Any

from swarm_bridge.codec.envelope import Envelope
from swarm_bridge.codec.framing import frame_batch
from swarm_bridge.codec.rostypes import default_types
from swarm_bridge.codec.wire import wire_encoder
from swarm_bridge.fleetweb.model import FleetPage
from swarm_bridge.fleetweb.poses import POSE_TYPES, PoseReader
from swarm_bridge.sim.records import robot_state_body

S = 1_000_000_000


def record(ros_type: str, x: float, y: float, frame: str = "odom", seq: int = 1) -> bytes:
    body: dict[str, Any] = default_types().default_message(ros_type)
    body["header"]["frame_id"] = frame
    pose = body["pose"]["pose"] if "pose" in body["pose"] else body["pose"]
    pose["position"]["x"], pose["position"]["y"] = x, y
    encoder = wire_encoder(ros_type, "avro", "mqtt", subject="swarm/f/r/telemetry/pose")
    return encoder.encode(Envelope("r", "pose", seq, 0, ros_type, body))


def test_every_pose_type_is_read_with_its_frame() -> None:
    reader = PoseReader()
    for ros_type in POSE_TYPES:
        pose = reader.pose(record(ros_type, 3.5, -2.0, "odom"))
        assert pose is not None and (pose.x, pose.y, pose.frame) == (3.5, -2.0, "odom"), ros_type


def test_other_telemetry_and_other_formats_are_no_pose() -> None:
    reader = PoseReader()
    imu: dict[str, Any] = default_types().default_message("sensor_msgs/msg/Imu")
    other = wire_encoder("sensor_msgs/msg/Imu", "avro", "mqtt", subject="s").encode(
        Envelope("r", "imu", 1, 0, "sensor_msgs/msg/Imu", imu))
    assert reader.pose(other) is None
    assert reader.pose(b'{"robot_id": "r"}') is None and reader.pose(b"") is None


def test_a_batch_gives_its_last_pose() -> None:
    batch = frame_batch([record("nav_msgs/msg/Odometry", 1.0, 1.0, seq=1), record("nav_msgs/msg/Odometry", 2.0, 5.0,
                                                                                   seq=2)])
    pose = PoseReader().pose(batch)
    assert pose is not None and (pose.x, pose.y) == (2.0, 5.0)


def test_a_pose_stream_puts_the_robot_on_the_map() -> None:
    page = FleetPage(fleet="f", stale_after_ns=10 * S)
    page.on_state(robot_state_body("r", "amr", ["navigate"], x=0.0, y=0.0, battery=50.0), S)
    page.on_pose("r", 4.0, 2.0, "odom")
    robot = page.snapshot(S)["robots"][0]
    assert (robot["x"], robot["y"], robot["frame"]) == (4.0, 2.0, "odom")


def test_a_records_stamp_is_read_from_its_head() -> None:
    from swarm_bridge.fleetweb.stamps import record_stamp_ns

    odom = record("nav_msgs/msg/Odometry", 0.0, 0.0)
    assert record_stamp_ns(odom) == 0  # stamped 0: no stamp
    encoder = wire_encoder("sensor_msgs/msg/Imu", "avro", "mqtt", subject="s")
    imu: dict[str, Any] = default_types().default_message("sensor_msgs/msg/Imu")
    stamped = [encoder.encode(Envelope("robot_with_a_long_name" * 4, "imu", (7 << 32) + n, 1_700_000_000_123_456_789
                                       + n, "sensor_msgs/msg/Imu", imu)) for n in range(3)]
    assert record_stamp_ns(stamped[0]) == 1_700_000_000_123_456_789
    assert record_stamp_ns(frame_batch(stamped)) == 1_700_000_000_123_456_791
    assert record_stamp_ns(b'{"stamp_ns": 5}') == 0 and record_stamp_ns(stamped[0][:14]) == 0
    assert record_stamp_ns(b"") == 0


def test_a_varint_too_long_is_no_stamp() -> None:
    from swarm_bridge.codec.framing import SINGLE_OBJECT_MAGIC
    from swarm_bridge.fleetweb.stamps import record_stamp_ns

    assert record_stamp_ns(SINGLE_OBJECT_MAGIC + bytes(8) + b"\x02a\x02b\x02" + b"\xff" * 12) == 0
