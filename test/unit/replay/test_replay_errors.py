"""Bad replay input: a clear error naming the file and the fix, exit 2 from the command, never a traceback."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
from rosbags.rosbag1 import Writer as Writer1
from rosbags.rosbag2 import Writer as Writer2
from rosbags.typesys import Stores, get_typestore

from swarm_bridge.cli import main
from swarm_bridge.replay import Bag, ReplayError, ReplayTypes, open_bags

STORE = get_typestore(Stores.ROS2_KILTED)
TYPES = ReplayTypes(installed=False)


def _empty_rosbag2(path: Path) -> Path:
    with Writer2(path, version=9) as writer:
        writer.add_connection("/odom", "nav_msgs/msg/Odometry", typestore=STORE)
    return path


def _one_message_rosbag2(path: Path) -> Path:
    with Writer2(path, version=9) as writer:
        connection = writer.add_connection("/mode", "std_msgs/msg/String", typestore=STORE)
        writer.write(connection, 5, STORE.serialize_cdr(STORE.types["std_msgs/msg/String"](data="auto"),
                                                        "std_msgs/msg/String"))
    return path


def _cli_error(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(["replay", *args, "--wait", "0", "--no-progress"]) == 2
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out
    return captured.err


def test_missing_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nowhere.bag"
    with pytest.raises(ReplayError, match=r"nowhere\.bag: no such file or folder\. Fix: check the path"):
        Bag(missing, TYPES)
    assert f"replay: {missing}: no such file or folder" in _cli_error(capsys, str(missing))


@pytest.mark.parametrize("name", ["broken.bag", "broken.mcap", "broken.db3"])
def test_corrupt_file(tmp_path: Path, name: str, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / name
    path.write_bytes(b"this is not a bag \x00\x01\x02" * 40)
    with pytest.raises(ReplayError, match=rf"{name}: cannot be opened .*Fix: the file is damaged or not a bag"):
        Bag(path, TYPES)
    assert f"{path}: cannot be opened" in _cli_error(capsys, str(path))


def test_corrupt_rosbag2_metadata(tmp_path: Path) -> None:
    folder = _one_message_rosbag2(tmp_path / "bag")
    (folder / "metadata.yaml").write_text("rosbag2_bagfile_information: [unclosed\n")
    with pytest.raises(ReplayError, match=r"bag: cannot be opened"):
        Bag(folder, TYPES)


def test_truncated_ros1_bag_names_the_file(tmp_path: Path, shared_bags: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    original = shared_bags / "inorbit_fake_sensors_ros1/fake_sensors_sample.bag"
    cut = tmp_path / "cut.bag"
    cut.write_bytes(original.read_bytes()[:6000])
    with pytest.raises(ReplayError, match=r"cut\.bag: .*Fix: the file is damaged"), Bag(cut, TYPES) as bag:
        list(bag.messages())
    assert f"{cut}: " in _cli_error(capsys, str(cut), "--rate", "1000")


@pytest.mark.parametrize("name", ["recording.txt", "recording.bag.gz", "recording"])
def test_unsupported_format(tmp_path: Path, name: str, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / name
    path.write_bytes(b"data")
    with pytest.raises(ReplayError, match=r"unsupported storage format .*Fix: replay reads a rosbag2 folder"):
        Bag(path, TYPES)
    assert "unsupported storage format" in _cli_error(capsys, str(path))


def test_folder_without_metadata_names_the_bags_inside(tmp_path: Path) -> None:
    inner = _one_message_rosbag2(tmp_path / "set" / "run1")
    with pytest.raises(ReplayError, match=rf"folder without metadata.yaml.*bags in it: {inner}"):
        Bag(tmp_path / "set", TYPES)


def test_zero_message_bags(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                           capsys: pytest.CaptureFixture[str]) -> None:
    empty = _empty_rosbag2(tmp_path / "empty")
    empty1 = tmp_path / "empty.bag"
    with Writer1(empty1) as writer:
        writer.add_connection("/odom", "nav_msgs/msg/Odometry", typestore=get_typestore(Stores.ROS1_NOETIC))
    with pytest.raises(ReplayError, match=r"no messages in any of the bags"):
        open_bags([empty], TYPES)
    assert "no messages in any of the bags" in _cli_error(capsys, str(empty1))
    with caplog.at_level(logging.WARNING):
        bags = open_bags([empty, _one_message_rosbag2(tmp_path / "one")], TYPES)
    assert [b.path.name for b in bags] == ["one"]
    assert f"{empty}: the bag has no messages (topics: /odom)" in caplog.text
    for bag in bags:
        bag.close()


def test_bad_msg_dirs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ReplayError, match=r"--msg-dir .*: is not a directory"):
        ReplayTypes(msg_dirs=[tmp_path / "nope"], installed=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ReplayError, match=r"holds no \.msg files"):
        ReplayTypes(msg_dirs=[tmp_path / "empty"], installed=False)
    broken = tmp_path / "defs" / "my_msgs" / "msg"
    broken.mkdir(parents=True)
    (broken / "Thing.msg").write_text("int32[ x\n")
    with pytest.raises(ReplayError, match=r"Thing\.msg: not a readable \.msg definition of my_msgs/msg/Thing"):
        ReplayTypes(msg_dirs=[tmp_path / "defs"], installed=False)
    bag = _one_message_rosbag2(tmp_path / "bag")
    assert "Thing.msg: not a readable .msg definition" in _cli_error(capsys, str(bag), "--msg-dir",
                                                                        str(tmp_path / "defs"))


@pytest.mark.parametrize(("option", "message"), [
    (["--robots", "0"], "--robots must be >= 1"),
    (["--rate", "-2"], "--rate: must be a finite number > 0"),
    (["--loop", "-1"], "--loop N must be >= 1"),
    (["--robot-prefix", "a/b"], "--robot-prefix must be a ROS name token"),
    (["--topics", "/mod"], "--topics /mod: is in none of the bags. Fix: did you mean '/mode'?"),
])
def test_bad_options(tmp_path: Path, capsys: pytest.CaptureFixture[str], option: list[str], message: str) -> None:
    bag = _one_message_rosbag2(tmp_path / "bag")
    assert message in _cli_error(capsys, str(bag), *option)


def test_list_shows_topics_and_why_they_are_skipped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "bag"
    shutil.rmtree(folder, ignore_errors=True)
    _one_message_rosbag2(folder)
    assert main(["replay", str(folder), "--list"]) == 0
    out = capsys.readouterr().out
    assert f"{folder} (rosbag2, 1 messages, definitions: its own)" in out
    assert "/mode  std_msgs/msg/String  1  publish" in out
