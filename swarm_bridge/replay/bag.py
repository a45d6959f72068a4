"""One bag opened for replay: its topics (type, count, whether replayable) and its messages as ROS 2 CDR.

Formats (rosbags): a rosbag2 folder (metadata.yaml + .db3/.mcap), a single .mcap or .db3 file, a ROS 1
.bag. ROS 1 messages become CDR of the ROS 2 type of the same name, the way `rosbags-convert` does it:
byte-level conversion when the layouts agree (the ROS 1 header's `seq` is dropped), else deserialize,
migrate field by field and serialize; `tf/msg/tfMessage` is renamed to `tf2_msgs/msg/TFMessage`.
A topic whose type has no definition is not replayable; its messages still come out, marked with `skip`,
so the caller counts them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from types import TracebackType

from rosbags.convert.converter import STATIC_MSGTYPE_RENAMES, is_same_wireformat, migrate_bytes
from rosbags.highlevel import AnyReader
from rosbags.interfaces import Connection, ConnectionExtRosbag1, ConnectionExtRosbag2, QosDurability
from rosbags.typesys import get_types_from_msg
from rosbags.typesys.store import Typestore

from swarm_bridge.replay.errors import ReplayError
from swarm_bridge.replay.types import ReplayTypes

__all__ = ["FORMATS", "Bag", "BagMessage", "BagTopic", "bag_format", "find_bags", "open_bags"]

log = logging.getLogger(__name__)

FORMATS = "a rosbag2 folder (with metadata.yaml), a .mcap or .db3 file, or a ROS 1 .bag file"
_CORRUPT_FIX = "the file is damaged or not a bag: copy or record it again"

Convert = Callable[[bytes], bytes]


@dataclass(frozen=True, slots=True)
class BagTopic:
    """A topic of a bag: the ROS 2 type it replays as, its message count, and `skip` (why not, "" if it can)."""

    name: str
    ros_type: str
    count: int
    latched: bool = False
    skip: str = ""


@dataclass(frozen=True, slots=True)
class BagMessage:
    """One message: `offset_ns` after the bag's first message; `cdr` is empty when `skip` says why."""

    topic: str
    ros_type: str
    offset_ns: int
    cdr: bytes
    skip: str = ""


def bag_format(path: Path) -> str:
    """'rosbag2' (folder), 'mcap', 'db3' or 'rosbag1' for `path`; ReplayError when missing or unsupported."""
    if not path.exists():
        raise ReplayError(str(path), "no such file or folder", f"check the path; a bag is {FORMATS}")
    if path.is_dir():
        if (path / "metadata.yaml").is_file():
            return "rosbag2"
        inside = [str(p) for p in find_bags(path)]
        hint = f" (bags in it: {', '.join(inside[:5])}{' ...' if len(inside) > 5 else ''})" if inside else ""
        raise ReplayError(str(path), "is a folder without metadata.yaml, so not a rosbag2 bag",
                          f"pass the bags themselves{hint}; a bag is {FORMATS}")
    formats = {".bag": "rosbag1", ".mcap": "mcap", ".db3": "db3"}
    if path.suffix not in formats:
        raise ReplayError(str(path), f"unsupported storage format '{path.suffix or path.name}'",
                          f"replay reads {FORMATS}; convert others with rosbag2/rosbags first")
    return formats[path.suffix]


def find_bags(directory: Path) -> list[Path]:
    """The bags under `directory`, sorted: rosbag2 folders (not looked into) and .bag/.mcap/.db3 files."""
    found: list[Path] = []
    for child in sorted(directory.iterdir()):
        if child.is_dir():
            found += [child] if (child / "metadata.yaml").is_file() else find_bags(child)
        elif child.suffix in (".bag", ".mcap", ".db3"):
            found.append(child)
    return found


class Bag:
    """An open bag (use as a context manager); `topics` by name, `messages()` in time order."""

    def __init__(self, path: str | Path, types: ReplayTypes) -> None:
        self.path = Path(path)
        self.format = bag_format(self.path)
        self._reader = AnyReader([self.path], default_typestore=types.typestore())
        try:
            self._reader.open()
        except Exception as exc:  # untrusted file: any parse failure is a corrupt bag
            raise ReplayError(str(self.path), f"cannot be opened ({type(exc).__name__}: {exc})", _CORRUPT_FIX) from None
        try:
            self.message_count = self._reader.message_count
            self.start_ns = self._reader.start_time if self.message_count else 0
            self._convert: dict[int, Convert] = {}
            self.topics = self._topics(types)
        except Exception:
            self._reader.close()
            raise

    def __enter__(self) -> Bag:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Close the bag's files."""
        if self._reader.stack is not None:
            self._reader.close()

    def messages(self, topics: Collection[str] = ()) -> Iterator[BagMessage]:
        """Messages of `topics` (all when empty) in receive-time order; ReplayError if the file is damaged."""
        connections = [c for c in self._reader.connections if not topics or c.topic in topics]
        if not connections:
            return
        stream = self._reader.messages(connections=connections)
        read = 0
        while True:
            try:
                connection, stamp, raw = next(stream)
            except StopIteration:
                return
            except Exception as exc:  # untrusted file
                raise ReplayError(str(self.path), f"unreadable after {read} messages ({type(exc).__name__}: "
                                  f"{exc})", _CORRUPT_FIX) from None
            read += 1
            topic = self.topics[connection.topic]
            offset = stamp - self.start_ns
            if topic.skip:
                yield BagMessage(topic.name, topic.ros_type, offset, b"", topic.skip)
                continue
            try:
                cdr = self._convert[connection.id](raw)
            except Exception as exc:  # one bad message is counted, not fatal
                yield BagMessage(topic.name, topic.ros_type, offset, b"", f"message not convertible ({exc})")
                continue
            yield BagMessage(topic.name, topic.ros_type, offset, cdr)

    def _topics(self, types: ReplayTypes) -> dict[str, BagTopic]:
        """Group connections by topic and decide, per connection, how its bytes become ROS 2 CDR."""
        by_topic: dict[str, list[Connection]] = {}
        for connection in self._reader.connections:
            by_topic.setdefault(connection.topic, []).append(connection)
        target = types.typestore() if self.format == "rosbag1" else self._reader.typestore
        topics = {}
        for name, connections in sorted(by_topic.items()):
            names = {STATIC_MSGTYPE_RENAMES.get(c.msgtype, c.msgtype) for c in connections}
            ros_type = sorted(names)[0]
            count = sum(c.msgcount for c in connections)
            skip = "" if len(names) == 1 else f"recorded with several types ({', '.join(sorted(names))})"
            for connection in connections:
                if skip:
                    break
                try:
                    self._convert[connection.id] = self._converter(connection, target)
                except _Unreplayable as exc:
                    skip = str(exc)
            topics[name] = BagTopic(name, ros_type, count, any(_latched(c) for c in connections), skip)
        return topics

    def _converter(self, connection: Connection, target: Typestore) -> Convert:
        """raw bag bytes -> ROS 2 CDR for one connection; _Unreplayable says why not."""
        if isinstance(connection.ext, ConnectionExtRosbag2):
            if connection.ext.serialization_format != "cdr":
                raise _Unreplayable(f"serialization '{connection.ext.serialization_format}' is not CDR")
            _check_definition(target, connection.msgtype)
            return bytes
        source = self._reader.typestore
        ros_type = STATIC_MSGTYPE_RENAMES.get(connection.msgtype, connection.msgtype)
        if ros_type not in target.fielddefs:
            text = source.generate_msgdef(connection.msgtype, ros_version=2)[0]
            added = get_types_from_msg(text, ros_type)
            target.register({k: v for k, v in added.items() if k not in target.fielddefs})
        _check_definition(target, ros_type)
        if is_same_wireformat(source, target, connection.msgtype, ros_type):
            return partial(_ros1_to_cdr, target, ros_type)
        return partial(_migrate, source, target, connection.msgtype, ros_type, {})


class _Unreplayable(Exception):
    """A connection whose messages cannot become ROS 2 CDR."""


def _check_definition(store: Typestore, ros_type: str) -> None:
    if ros_type not in store.fielddefs:
        raise _Unreplayable(f"unknown type {ros_type} (no definition in the bag, in ROS 2 Kilted or in the msg "
                            "dirs; pass --msg-dir with its .msg files)")
    try:
        store.get_msgdef(ros_type)
    except Exception as exc:  # an incomplete definition, e.g. a nested type missing
        raise _Unreplayable(f"incomplete definition of {ros_type} ({type(exc).__name__}: {exc}; pass --msg-dir "
                            "with the missing .msg files)") from None


def _ros1_to_cdr(store: Typestore, ros_type: str, raw: bytes) -> bytes:
    return bytes(store.ros1_to_cdr(raw, ros_type))


def _migrate(source: Typestore, target: Typestore, src_type: str, ros_type: str, cache: dict[str, object],
             raw: bytes) -> bytes:
    return bytes(migrate_bytes(source, target, src_type, ros_type, cache, raw, src_is2=False, dst_is2=True))


def _latched(connection: Connection) -> bool:
    """Recorded from a latched (ROS 1) or transient-local (ROS 2) publisher, e.g. /tf_static."""
    if isinstance(connection.ext, ConnectionExtRosbag1):
        return bool(connection.ext.latching)
    return any(q.durability == QosDurability.TRANSIENT_LOCAL for q in connection.ext.offered_qos_profiles)


def open_bags(paths: Iterable[str | Path], types: ReplayTypes) -> list[Bag]:
    """Open every bag; a bag without messages is dropped with a warning, none with messages is a ReplayError."""
    bags: list[Bag] = []
    try:
        for path in paths:
            bag = Bag(path, types)
            if bag.message_count == 0:
                log.warning("%s: the bag has no messages (topics: %s); nothing to replay from it", bag.path,
                            ", ".join(bag.topics) or "none")
                bag.close()
                continue
            bags.append(bag)
    except ReplayError:
        for bag in bags:
            bag.close()
        raise
    if not bags:
        raise ReplayError(", ".join(str(p) for p in paths) or "BAG", "no messages in any of the bags",
                          "pass bags that hold recorded messages")
    return bags
