"""RosTypes: definitions from the store, the ament index and extra dirs; CDR <-> dict checked against rosbags
(against rclpy: integration/ros/test_codec_rostypes.py; the shared helpers: support/codec_cases.py).
"""

from __future__ import annotations

import atexit
import contextlib
import shutil
import struct
import tempfile
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from codec_cases import CODEC_EXAMPLES, EXTRA_TYPES, KITCHEN, codec_types, covered_types, messages, same
from hypothesis import given
from hypothesis import strategies as st
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

from swarm_bridge.codec import (
    CodecError,
    RecordError,
    RosField,
    RosTypes,
    SchemaParseError,
    UnknownRosType,
    default_types,
)

REPO = Path(__file__).resolve().parents[3]


# ---------------------------------------------------------------------------------------------------- registry


def test_message_types_come_from_store_index_and_extra_dirs() -> None:
    types = codec_types()
    names = types.message_types()
    assert names == sorted(names)
    assert "tf2_msgs/msg/TFMessage" in names  # only in rosbags' store (no wheel)
    assert "swarm_bridge_msgs/msg/TaskCommand" in names  # installed by this project
    assert set(EXTRA_TYPES) <= set(names)
    assert types.has("sensor_msgs/msg/Imu") and not types.has("sensor_msgs/msg/Imu2")


def test_field_descriptions() -> None:
    fields = {f.name: f for f in codec_types().fields("codec_test_msgs/msg/Everything")}
    assert fields["u64"] == RosField("u64", "base", "uint64")
    assert fields["ws"] == RosField("ws", "base", "wstring")
    assert fields["bws"] == RosField("bws", "base", "wstring", str_bound=4)
    assert fields["bss"] == RosField("bss", "sequence", "string", size=2, str_bound=3)
    assert fields["ff64"] == RosField("ff64", "array", "float64", size=3)
    assert fields["inner"] == RosField("inner", "nested", "codec_test_msgs/msg/Inner")
    assert fields["binner"] == RosField("binner", "sequence", "codec_test_msgs/msg/Inner", size=2)
    assert fields["t"].type == "builtin_interfaces/msg/Time"
    assert fields["su8"].is_bytes and fields["fby"].is_bytes and not fields["si32"].is_bytes
    odom = {f.name: f for f in default_types().fields("nav_msgs/msg/Odometry")}
    assert odom["header"] == RosField("header", "nested", "std_msgs/msg/Header")
    pose = default_types().fields("geometry_msgs/msg/PoseWithCovariance")
    assert pose[1] == RosField("covariance", "array", "float64", size=36)
    assert default_types().fields("std_msgs/msg/Empty") == ()  # rosidl's dummy member is not a ROS field


def test_unknown_type_suggests_the_near_miss() -> None:
    with pytest.raises(UnknownRosType, match="did you mean 'sensor_msgs/msg/Imu'") as caught:
        default_types().fields("sensor_msgs/msg/Imuu")
    assert caught.value.ros_type == "sensor_msgs/msg/Imuu"
    with pytest.raises(UnknownRosType, match="did you mean 'nav_msgs/msg/Odometry'"):
        default_types().cdr_to_dict(b"\x00\x01\x00\x00", "nav_msgs/Odometry")
    assert isinstance(caught.value, CodecError)


def test_default_types_is_built_once() -> None:
    assert default_types() is default_types()


def test_extra_dir_layouts_and_overrides(tmp_path: Path) -> None:
    nested = tmp_path / "tree" / "my_pkg" / "msg"
    nested.mkdir(parents=True)
    (nested / "Ping.msg").write_text("uint32 id\n")
    override = tmp_path / "tree" / "std_msgs" / "msg"
    override.mkdir(parents=True)
    (override / "String.msg").write_text("string data\nuint8 extra\n")
    flat = tmp_path / "whatever_dir"
    flat.mkdir()
    (flat / "package.xml").write_text("<package><name>flat_pkg</name></package>")
    (flat / "Pong.msg").write_text("my_pkg/Ping ping\n")
    types = RosTypes(extra_msg_dirs=[tmp_path / "tree", flat, REPO / "msg"])
    assert types.fields("my_pkg/msg/Ping") == (RosField("id", "base", "uint32"),)
    assert [f.name for f in types.fields("std_msgs/msg/String")] == ["data", "extra"]  # extra dirs override
    assert types.fields("flat_pkg/msg/Pong") == (RosField("ping", "nested", "my_pkg/msg/Ping"),)
    assert types.has("swarm_bridge_msgs/msg/RobotState")  # the repository's own msg/ package dir


def test_broken_msg_file_is_a_schema_parse_error(tmp_path: Path) -> None:
    (tmp_path / "bad_pkg" / "msg").mkdir(parents=True)
    (tmp_path / "bad_pkg" / "msg" / "Bad.msg").write_text("float64[ x\n")
    types = RosTypes(extra_msg_dirs=[tmp_path])
    assert types.has("bad_pkg/msg/Bad")  # parsed on first use only
    with pytest.raises(SchemaParseError, match=r"Bad\.msg: not a valid \.msg definition of bad_pkg/msg/Bad"):
        types.fields("bad_pkg/msg/Bad")


def test_ament_prefix_path_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "share" / "ament_index" / "resource_index" / "rosidl_interfaces").mkdir(parents=True)
    (tmp_path / "share" / "ament_index" / "resource_index" / "rosidl_interfaces" / "robot_msgs").write_text("")
    (tmp_path / "share" / "robot_msgs" / "msg").mkdir(parents=True)
    (tmp_path / "share" / "robot_msgs" / "msg" / "Beep.msg").write_text("float32 volume\n")
    monkeypatch.setenv("AMENT_PREFIX_PATH", str(tmp_path))
    types = RosTypes()
    assert types.fields("robot_msgs/msg/Beep") == (RosField("volume", "base", "float32"),)
    assert types.has("sensor_msgs/msg/Imu")  # still in the store


# ----------------------------------------------------------------------------------------------------- CDR


@pytest.mark.parametrize("ros_type", covered_types())
@CODEC_EXAMPLES
@given(data=st.data())
def test_dict_cdr_dict_is_lossless(ros_type: str, data: st.DataObject) -> None:
    types = codec_types()
    message = data.draw(messages(types, ros_type))
    raw = types.dict_to_cdr(message, ros_type)
    assert same(types.cdr_to_dict(raw, ros_type), message)
    assert len(raw) % 4 == 0 or not types.is_fixed_size(ros_type)


@cache
def _rosbags_store() -> Any:
    store = get_typestore(Stores.ROS2_KILTED)
    for name in ("Inner", "Aligned", "Fixed"):
        store.register(get_types_from_msg(KITCHEN[name], f"codec_test_msgs/msg/{name}"))
    return store


@pytest.mark.parametrize("ros_type", ["codec_test_msgs/msg/Aligned", "codec_test_msgs/msg/Fixed",
                                      "sensor_msgs/msg/PointCloud2", "diagnostic_msgs/msg/DiagnosticArray",
                                      "nav_msgs/msg/OccupancyGrid", "sensor_msgs/msg/JointState"])
@CODEC_EXAMPLES
@given(data=st.data())
def test_layout_agrees_with_rosbags(ros_type: str, data: st.DataObject) -> None:
    """rosbags, an independent CDR implementation, reads our bytes and writes the same bytes back."""
    types, store = codec_types(), _rosbags_store()
    raw = types.dict_to_cdr(data.draw(messages(types, ros_type)), ros_type)
    theirs = store.serialize_cdr(store.deserialize_cdr(raw, ros_type), ros_type)
    assert raw[: len(theirs)] == bytes(theirs)
    assert raw[len(theirs) :] == bytes(len(raw) - len(theirs))  # our zero padding of fixed-size types


@CODEC_EXAMPLES
@given(data=st.data())
def test_big_endian_cdr_is_read(data: st.DataObject) -> None:
    types, store = codec_types(), _rosbags_store()
    ros_type = "codec_test_msgs/msg/Aligned"
    message = data.draw(messages(types, ros_type))
    little = types.dict_to_cdr(message, ros_type)
    big = bytes(store.serialize_cdr(store.deserialize_cdr(little, ros_type), ros_type, little_endian=False))
    assert big[:2] == b"\x00\x00"
    assert same(types.cdr_to_dict(big, ros_type), message)


def test_wstring_layout_is_fast_dds() -> None:
    """wstring: uint32 count of UTF-16 code units, each as a uint32 (rosidl_typesupport_fastrtps)."""
    types = RosTypes(extra_msg_dirs=[_write_pkg("w_msgs", {"W": "uint8 a\nwstring w\n"})])
    raw = types.dict_to_cdr({"a": 1, "w": "a😀"}, "w_msgs/msg/W")
    assert raw == bytes.fromhex("00010000" "01000000" "03000000") + struct.pack("<3I", 0x61, 0xD83D, 0xDE00)
    assert types.cdr_to_dict(raw, "w_msgs/msg/W") == {"a": 1, "w": "a😀"}


def _write_pkg(package: str, files: dict[str, str]) -> Path:
    root = Path(tempfile.mkdtemp(prefix="msgs_"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    (root / package / "msg").mkdir(parents=True)
    for name, text in files.items():
        (root / package / "msg" / f"{name}.msg").write_text(text)
    return root


def test_empty_and_fixed_size_messages_match_rclpy_sizes() -> None:
    types = default_types()
    assert types.dict_to_cdr({}, "std_msgs/msg/Empty") == bytes.fromhex("0001000000000000")
    assert types.dict_to_cdr({"data": -2}, "std_msgs/msg/Int16") == bytes.fromhex("00010000feff0000")
    assert types.cdr_to_dict(bytes.fromhex("0001000000550000"), "std_msgs/msg/Empty") == {}  # rclpy's junk padding


@pytest.mark.parametrize(
    ("change", "field", "problem"),
    [(lambda m: m["pose"].update(covariance=[0.0] * 35), "pose.covariance", "expected 36 items, got 35"),
     (lambda m: m["header"]["stamp"].update(sec=2**31), "header.stamp.sec", "out of range for int32"),
     (lambda m: m["header"].pop("frame_id"), "header.frame_id", "missing field"),
     (lambda m: m["header"].update(frame_id="a\x00b"), "header.frame_id", "cannot contain NUL"),
     (lambda m: m["twist"]["twist"]["linear"].update(x="fast"), "twist.twist.linear.x", "expected a number"),
     (lambda m: m.update(child_frame_id=7), "child_frame_id", "expected a string")],
)
def test_bad_dicts_name_the_field(change: Callable[[dict[str, Any]], Any], field: str, problem: str) -> None:
    types = default_types()
    message = types.default_message("nav_msgs/msg/Odometry")
    change(message)
    with pytest.raises(RecordError, match=problem) as caught:
        types.dict_to_cdr(message, "nav_msgs/msg/Odometry")
    assert caught.value.field == field
    assert "nav_msgs/msg/Odometry" in str(caught.value)


def test_bounds_are_enforced() -> None:
    types = codec_types()
    message = types.default_message("codec_test_msgs/msg/Everything")
    for name, value, problem in [("bs", "abcdef", "at most 5 bytes"), ("bi16", [1, 2, 3, 4], "at most 3 items"),
                                 ("fu8", b"\x00", "expected 4 items")]:
        with pytest.raises(RecordError, match=problem) as caught:
            types.dict_to_cdr({**message, name: value}, "codec_test_msgs/msg/Everything")
        assert caught.value.field == name


def test_byte_arrays_accept_lists_and_rclpy_bytes_items() -> None:
    types = default_types()
    for data in ([1, 2, 255], b"\x01\x02\xff", bytearray(b"\x01\x02\xff"), [b"\x01", b"\x02", b"\xff"]):
        raw = types.dict_to_cdr({"layout": {"dim": [], "data_offset": 0}, "data": data}, "std_msgs/msg/ByteMultiArray")
        assert types.cdr_to_dict(raw, "std_msgs/msg/ByteMultiArray")["data"] == b"\x01\x02\xff"


def test_short_and_garbage_cdr_is_a_record_error_naming_the_type() -> None:
    types = default_types()
    message = types.default_message("nav_msgs/msg/Odometry")
    message["header"]["frame_id"] = "odom"
    raw = types.dict_to_cdr(message, "nav_msgs/msg/Odometry")
    for cut in range(len(raw)):
        with pytest.raises(RecordError, match="nav_msgs/msg/Odometry"):
            types.cdr_to_dict(raw[:cut], "nav_msgs/msg/Odometry")
    with pytest.raises(RecordError, match="not CDR"):
        types.cdr_to_dict(b"\x07\x07" + raw[2:], "nav_msgs/msg/Odometry")


@CODEC_EXAMPLES
@given(raw=st.one_of(st.binary(max_size=200), st.binary(max_size=200).map(lambda b: b"\x00\x01\x00\x00" + b)))
def test_fuzz_cdr_decode(raw: bytes) -> None:
    for ros_type in ("nav_msgs/msg/Odometry", "codec_test_msgs/msg/Everything", "std_msgs/msg/String"):
        with contextlib.suppress(CodecError):
            codec_types().cdr_to_dict(raw, ros_type)
