"""Small bags as older ROS 2 distributions and ROS 1 wrote them, made at test time with rosbags.

- `humble_db3`: a rosbag2 folder as Humble's recorder leaves it: metadata version 5 without `ros_distro`,
  a .db3 of schema 3 whose `schema` table says 'humble', and no message definitions anywhere.
- `ros1_bag`: a ROS 1 .bag whose topics have any names (ROS 1 recorders took `cmd-vel` and `odom`).
- `sample`: a message of a type with every field set to something other than its default.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from rosbags.interfaces import Nodetype
from rosbags.rosbag1 import Writer as Writer1
from rosbags.rosbag2 import Writer
from rosbags.typesys.store import Typestore

__all__ = ["humble_db3", "ros1_bag", "sample"]

_NUMPY = {"bool": "bool", "byte": "uint8", "char": "uint8", "int8": "int8", "uint8": "uint8", "int16": "int16",
          "uint16": "uint16", "int32": "int32", "uint32": "uint32", "int64": "int64", "uint64": "uint64",
          "float32": "float32", "float64": "float64"}


def _base(name: str, n: int) -> Any:
    if name == "string":
        return f"s{n}"
    if name == "bool":
        return True
    if name.startswith("float"):
        return 0.5 + n
    return 1 + n % 100


def sample(store: Typestore, ros_type: str, n: int = 1) -> Any:
    """A message of `ros_type` (in `store`'s layout) whose every field is set, numbers starting from `n`."""
    values = []
    fields: list[tuple[str, Any]] = list(store.fielddefs[ros_type][1])
    for index, (_, (kind, rest)) in enumerate(fields):
        k = n + index
        if kind == Nodetype.BASE:
            values.append(_base(rest[0], k))
        elif kind == Nodetype.NAME:
            values.append(sample(store, rest, k))
        else:
            (sub_kind, sub), size = rest
            count = size if kind == Nodetype.ARRAY else min(size or 2, 2)
            if sub_kind == Nodetype.NAME:
                values.append([sample(store, sub, k + i) for i in range(count)])
            elif sub[0] == "string":
                values.append([_base("string", k + i) for i in range(count)])
            else:
                values.append(np.array([_base(sub[0], k + i) for i in range(count)], dtype=_NUMPY[sub[0]]))
    return store.types[ros_type](*values)


def humble_db3(path: Path, store: Typestore, topics: Sequence[tuple[str, str, Sequence[bytes]]]) -> Path:
    """A Humble-era rosbag2 sqlite3 folder at `path` with `(topic, ros_type, [cdr, ...])`, no definitions."""
    with Writer(path, version=8) as writer:
        stamp = 1_700_000_000_000_000_000
        for topic, ros_type, messages in topics:
            connection = writer.add_connection(topic, ros_type, typestore=store)
            for cdr in messages:
                stamp += 10_000_000
                writer.write(connection, stamp, cdr)
    db3 = next(path.glob("*.db3"))
    with sqlite3.connect(db3) as db:
        db.execute("DROP TABLE message_definitions")
        db.execute("UPDATE schema SET schema_version = 3, ros_distro = 'humble'")
    meta_path = path / "metadata.yaml"
    meta = yaml.safe_load(meta_path.read_text())
    info = meta["rosbag2_bagfile_information"]
    info["version"] = 5
    for key in ("ros_distro", "custom_data"):
        info.pop(key, None)
    for entry in info["topics_with_message_count"]:
        entry["topic_metadata"].pop("type_description_hash", None)
    meta_path.write_text(yaml.safe_dump(meta, sort_keys=False))
    return path


def ros1_bag(path: Path, store: Typestore, topics: Sequence[tuple[str, str, int]]) -> Path:
    """A ROS 1 bag at `path` with `(topic, ros_type, count)`: `count` sample messages each, 10 ms apart."""
    with Writer1(path) as writer:
        stamp = 1_600_000_000_000_000_000
        for topic, ros_type, count in topics:
            connection = writer.add_connection(topic, ros_type, typestore=store)
            for n in range(count):
                stamp += 10_000_000
                writer.write(connection, stamp, bytes(store.serialize_ros1(sample(store, ros_type, n), ros_type)))
    return path
