"""Bags of older ROS 2 distributions: read with that distribution's definitions, replayed in the installed layout.

The types whose definition changed between Humble and the installed interfaces are found here, by comparing
rosbags' Humble typestore with the installed .msg files the bridge reads; every one of them is replayed from
a Humble-era bag made at test time and must decode with the bridge's own CDR codec, values carried over and
new fields at their defaults.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from old_bags import humble_db3, sample
from rosbags.convert.converter import is_same_wireformat
from rosbags.interfaces import Nodetype
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, TypesysError, get_types_from_msg, get_typestore
from rosbags.typesys.base import normalize_fieldname
from rosbags.typesys.store import Typestore

from swarm_bridge.cli import main
from swarm_bridge.codec.rosdefs import installed_msg_files
from swarm_bridge.codec.rostypes import default_types
from swarm_bridge.replay import Bag, ReplayError, ReplayTypes

HUMBLE = get_typestore(Stores.ROS2_HUMBLE)
RANGE = "sensor_msgs/msg/Range"


def _installed() -> Typestore:
    """The installed interface definitions (share/<pkg>/msg/*.msg, as the bridge reads them), parsed here."""
    kilted = get_typestore(Stores.ROS2_KILTED)
    typs: dict[str, Any] = {}
    for name, path in installed_msg_files().items():
        try:
            parsed = get_types_from_msg(path.read_text(), name)[name]
        except TypesysError:
            continue
        # an empty message is one dummy byte on the wire, as rosbags' stores define it
        typs[name] = parsed if parsed[1] or name not in kilted.fielddefs else kilted.fielddefs[name]
    store = get_typestore(Stores.EMPTY)
    store.register(typs)
    return store


INSTALLED = _installed()
STANDARD = sorted(set(HUMBLE.fielddefs) & set(INSTALLED.fielddefs))  # the standard interfaces installed here
CHANGED = [t for t in STANDARD if not is_same_wireformat(HUMBLE, INSTALLED, t, t)]


def _topic(ros_type: str) -> str:
    pkg, _, name = ros_type.split("/")
    return f"/{pkg}/{name}"


def _is_default(value: Any) -> bool:
    if isinstance(value, np.ndarray):
        return not value.any()
    if isinstance(value, list):
        return all(_is_default(v) for v in value)
    if hasattr(value, "__msgtype__"):
        return all(_is_default(getattr(value, normalize_fieldname(n))) for n, _ in INSTALLED.fielddefs[
            value.__msgtype__][1])
    return not value


def _carried(old: Any, new: Any, ros_type: str, where: str = "") -> list[str]:
    """Where `new` (installed layout) does not hold `old`'s (Humble layout) values, or a new field's default."""
    wrong: list[str] = []
    kept = dict(HUMBLE.fielddefs[ros_type][1])
    fields: list[tuple[str, Any]] = list(INSTALLED.fielddefs[ros_type][1])
    for name, (kind, rest) in fields:
        path, attr = f"{where}{name}", normalize_fieldname(name)
        value = getattr(new, attr)
        if name not in kept:
            wrong += [] if _is_default(value) else [f"{path}: new field not at its default ({value!r})"]
            continue
        before = getattr(old, attr)
        if kind == Nodetype.NAME:
            wrong += _carried(before, value, rest, f"{path}.")
        elif kind == Nodetype.BASE:
            wrong += [] if before == value else [f"{path}: {before!r} became {value!r}"]
        elif rest[0][0] == Nodetype.NAME:
            wrong += [] if len(value) == len(before) else [f"{path}: {len(before)} elements became {len(value)}"]
            for index, (a, b) in enumerate(zip(before, value, strict=False)):
                wrong += _carried(a, b, rest[0][1], f"{path}[{index}].")
        else:
            n = min(len(before), len(value))
            same = list(before[:n]) == list(value[:n]) and _is_default(value[n:])
            wrong += [] if same else [f"{path}: {list(before)!r} became {list(value)!r}"]
    return wrong


def test_the_types_changed_since_humble_are_found() -> None:
    """The comparison finds the issue's example and the others, so the replay tests below cannot pass empty."""
    assert RANGE in CHANGED
    assert "rmw_dds_common/msg/Gid" in CHANGED  # char[24] -> char[16]
    assert len(STANDARD) > 100


def test_every_installed_standard_type_replays_from_a_humble_bag_in_the_installed_layout(tmp_path: Path) -> None:
    samples = {t: sample(HUMBLE, t) for t in STANDARD}
    recorded = {t: bytes(HUMBLE.serialize_cdr(m, t)) for t, m in samples.items()}
    folder = humble_db3(tmp_path / "humble", HUMBLE, [(_topic(t), t, [recorded[t]]) for t in STANDARD])
    bridge = default_types()
    problems: list[str] = []
    with Bag(folder, ReplayTypes()) as bag:
        assert bag.distro is not None and bag.distro.name == "humble"
        converted = sorted(t.ros_type for t in bag.topics.values() if t.converted)
        assert converted == CHANGED
        assert "variance new (default value)" in bag.topics[_topic(RANGE)].converted
        for message in bag.messages():
            ros_type = message.ros_type
            assert not message.skip, (ros_type, message.skip)
            if ros_type not in CHANGED:
                assert message.cdr == recorded[ros_type], ros_type  # same layout: published as recorded
            try:
                bridge.cdr_to_dict(message.cdr, ros_type)  # what the robot bridge does with each message
            except Exception as exc:  # collected, reported together
                problems.append(f"{ros_type}: the bridge cannot read it ({exc})")
                continue
            problems += [f"{ros_type} {p}" for p in _carried(samples[ros_type],
                                                             INSTALLED.deserialize_cdr(message.cdr, ros_type),
                                                             ros_type)]
    assert not problems, "\n".join(problems)


def test_range_from_humble_arrives_with_its_values_and_variance_zero(tmp_path: Path) -> None:
    old = HUMBLE.types[RANGE](header=HUMBLE.types["std_msgs/msg/Header"](
        stamp=HUMBLE.types["builtin_interfaces/msg/Time"](sec=7, nanosec=9), frame_id="sonar"),
        radiation_type=0, field_of_view=0.5, min_range=0.02, max_range=4.0, range=1.25)
    cdr = bytes(HUMBLE.serialize_cdr(old, RANGE))
    assert len(cdr) == 40  # the 40 bytes the issue saw
    with Bag(humble_db3(tmp_path / "bag", HUMBLE, [("/sonar", RANGE, [cdr])]), ReplayTypes()) as bag:
        (message,) = list(bag.messages())
    got = default_types().cdr_to_dict(message.cdr, RANGE)
    assert got["range"] == 1.25 and got["max_range"] == 4.0 and got["header"]["frame_id"] == "sonar"
    assert got["variance"] == 0.0


@pytest.mark.parametrize("storage", [StoragePlugin.SQLITE3, StoragePlugin.MCAP])
def test_a_bag_carrying_older_definitions_is_converted(tmp_path: Path, storage: StoragePlugin) -> None:
    """A bag with its own (Humble) definitions of Range: read with them, replayed in the installed layout."""
    with Writer(tmp_path / "bag", version=9, storage_plugin=storage) as writer:
        connection = writer.add_connection("/sonar", RANGE, typestore=HUMBLE)
        writer.write(connection, 1, bytes(HUMBLE.serialize_cdr(sample(HUMBLE, RANGE), RANGE)))
    with Bag(tmp_path / "bag", ReplayTypes()) as bag:
        assert "converted from the bag's own definition: variance new" in bag.topics["/sonar"].converted
        (message,) = list(bag.messages())
    assert default_types().cdr_to_dict(message.cdr, RANGE)["variance"] == 0.0


def _edit(folder: Path, *, version: int | None = None, distro: str | None = None, db3: str | None = None) -> None:
    meta_path = folder / "metadata.yaml"
    meta = yaml.safe_load(meta_path.read_text())
    if version is not None:
        meta["rosbag2_bagfile_information"]["version"] = version
    if distro is not None:
        meta["rosbag2_bagfile_information"]["ros_distro"] = distro
    meta_path.write_text(yaml.safe_dump(meta))
    if db3 is not None:
        with sqlite3.connect(next(folder.glob("*.db3"))) as db:
            db.execute("UPDATE schema SET ros_distro = ?", (db3,))


@pytest.mark.parametrize(("edits", "option", "distro", "source"), [
    ({}, "auto", "humble", "ros_distro in bag.db3"),
    ({"db3": ""}, "auto", "humble", "rosbag2 format version 5"),
    ({"db3": "", "version": 4}, "auto", "foxy", "rosbag2 format version 4"),
    ({"db3": "", "version": 8, "distro": "jazzy"}, "auto", "jazzy", "ros_distro in the bag's metadata"),
    ({"db3": "", "version": 3}, "auto", "humble", "the bag names none; default, see --bag-distro"),
    ({}, "kilted", "kilted", "--bag-distro"),
])
def test_the_distribution_of_a_bag_without_definitions(tmp_path: Path, edits: dict[str, Any], option: str,
                                                       distro: str, source: str) -> None:
    folder = humble_db3(tmp_path / "bag", HUMBLE, [("/sonar", RANGE, [bytes(HUMBLE.serialize_cdr(
        sample(HUMBLE, RANGE), RANGE))])])
    _edit(folder, **edits)
    with Bag(folder, ReplayTypes(bag_distro=option)) as bag:
        assert bag.distro is not None and (bag.distro.name, bag.distro.source) == (distro, source)
        # told kilted, the 40 Humble bytes are taken as Kilted's layout: not convertible, counted, never passed on
        if distro == "kilted":
            (message,) = list(bag.messages())
            assert message.skip and not message.cdr


def test_bag_distro_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ReplayError, match=r"--bag-distro rolling: is not a ROS 2 distribution known here\. "
                                          r"Fix: use one of: auto, foxy, galactic, humble"):
        ReplayTypes(bag_distro="rolling")
    assert main(["replay", str(tmp_path), "--bag-distro", "rolling", "--list"]) == 2
    assert "replay: --bag-distro rolling: is not a ROS 2 distribution known here" in capsys.readouterr().err
    folder = humble_db3(tmp_path / "bag", HUMBLE, [("/sonar", RANGE, [bytes(HUMBLE.serialize_cdr(
        sample(HUMBLE, RANGE), RANGE))])])
    assert main(["replay", str(folder), "--list"]) == 0
    out = capsys.readouterr().out
    assert "definitions: humble (ros_distro in bag.db3)" in out
    assert "/sonar  sensor_msgs/msg/Range  1  publish (converted from ROS 2 humble's definition" in out


def test_the_installed_definition_is_the_target(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the installed Range is Humble's (a robot on Humble), a Humble bag's Range is published as recorded:
    the target is what is installed, not rosbags' Kilted store."""
    import swarm_bridge.replay.types as replay_types

    definition = tmp_path / "Range.msg"
    definition.write_text(HUMBLE.generate_msgdef(RANGE, ros_version=2)[0])
    monkeypatch.setattr(replay_types, "installed_msg_files", lambda: {RANGE: definition})
    replay_types._installed_standard.cache_clear()
    try:
        types = ReplayTypes()
        assert "variance" not in dict(types.typestore().fielddefs[RANGE][1])
        cdr = bytes(HUMBLE.serialize_cdr(sample(HUMBLE, RANGE), RANGE))
        with Bag(humble_db3(tmp_path / "bag", HUMBLE, [("/sonar", RANGE, [cdr])]), types) as bag:
            assert bag.topics["/sonar"].converted == ""
            assert [m.cdr for m in bag.messages()] == [cdr]
    finally:
        replay_types._installed_standard.cache_clear()


def test_a_field_whose_value_cannot_be_carried_over_skips_the_topic_up_front(tmp_path: Path) -> None:
    """A bag whose own Range has `range` as a string: not migrated into zeros, not replayed, the reason named."""
    store = get_typestore(Stores.EMPTY)
    store.register({k: HUMBLE.fielddefs[k] for k in ("std_msgs/msg/Header", "builtin_interfaces/msg/Time")})
    store.register(get_types_from_msg("std_msgs/Header header\nstring range\n", RANGE))
    with Writer(tmp_path / "bag", version=9) as writer:
        connection = writer.add_connection("/sonar", RANGE, typestore=store)
        writer.write(connection, 1, bytes(store.serialize_cdr(sample(store, RANGE), RANGE)))
    with Bag(tmp_path / "bag", ReplayTypes()) as bag:
        assert bag.topics["/sonar"].skip == ("field range is string in the bag's own definition but float32 in the "
                                             "installed definition: its values cannot be carried over")
        assert [(m.cdr, m.skip) for m in bag.messages()] == [(b"", bag.topics["/sonar"].skip)]
