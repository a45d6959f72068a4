"""One bag opened for replay: its topics (type, count, whether replayable) and its messages as ROS 2 CDR.

Formats (rosbags): a rosbag2 folder (metadata.yaml + .db3/.mcap), a single .mcap or .db3 file, a ROS 1
.bag. Every message comes out as CDR of the installed definition of its type (ReplayTypes.typestore()):
- ROS 1 messages become CDR of the ROS 2 type of the same name, the way `rosbags-convert` does it:
  byte-level conversion when the layouts agree (the ROS 1 header's `seq` is dropped), else deserialize,
  migrate field by field and serialize; `tf/msg/tfMessage` is renamed to `tf2_msgs/msg/TFMessage`, and
  `rosgraph_msgs/msg/Log` (/rosout) becomes ROS 2's `rcl_interfaces/msg/Log`, as ros1_bridge pairs them.
- ROS 2 messages are read with the bag's own definitions, or, when it carries none, with those of the
  distribution that wrote it (distro.py); passed on as recorded when that layout is the installed one,
  else migrated the same way (new fields at their defaults; BagTopic.converted says what changed). A field
  whose type changed otherwise (e.g. a number became a string) makes the topic unreplayable.
Topic names are mapped to valid ROS 2 names (names.py; BagTopic.recorded keeps the bag's own).
A topic that cannot be replayed still yields its messages, marked with `skip`, so the caller counts them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Any

from rosbags.convert.converter import STATIC_MSGTYPE_RENAMES, is_same_wireformat, migrate_bytes
from rosbags.highlevel import AnyReader
from rosbags.interfaces import (
    Connection,
    ConnectionExtRosbag1,
    ConnectionExtRosbag2,
    MessageDefinitionFormat,
    Nodetype,
    QosDurability,
)
from rosbags.typesys import get_types_from_msg
from rosbags.typesys.store import Typestore

from swarm_bridge.replay.distro import BagDistro, bag_distro
from swarm_bridge.replay.errors import ReplayError, UnconvertibleMessage
from swarm_bridge.replay.names import ros2_topic
from swarm_bridge.replay.types import ReplayTypes

__all__ = ["FORMATS", "ROS1_COUNTERPARTS", "ROS1_RENAMES", "Bag", "BagMessage", "BagTopic", "Counterpart",
           "bag_format", "find_bags", "open_bags"]

log = logging.getLogger(__name__)

FORMATS = "a rosbag2 folder (with metadata.yaml), a .mcap or .db3 file, or a ROS 1 .bag file"
_CORRUPT_FIX = "the file is damaged or not a bag: copy or record it again"

Convert = Callable[[bytes], bytes]


@dataclass(frozen=True, slots=True)
class BagTopic:
    """A topic of a bag: its ROS 2 name, the ROS 2 type it replays as, its message count, and `skip` (why not,
    "" if it can); `recorded`: its name in the bag when not a valid ROS 2 name; `converted`: how its messages
    are migrated to the installed definition ("" when published as recorded)."""

    name: str
    ros_type: str
    count: int
    latched: bool = False
    skip: str = ""
    recorded: str = ""
    converted: str = ""


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
            self.distro: BagDistro | None = None if self.format == "rosbag1" else bag_distro(
                self.path, [getattr(r, "ros_distro", None) for r in self._reader.readers], override=types.bag_distro)
            self.own_definitions = any(c.msgdef.format != MessageDefinitionFormat.NONE
                                       for c in self._reader.connections)
            self._convert: dict[int, Convert] = {}
            self._names: dict[str, str] = {}  # name in the bag -> key of self.topics
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
        connections = [c for c in self._reader.connections if not topics or self._names[c.topic] in topics]
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
            topic = self.topics[self._names[connection.topic]]
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
        """Group connections by topic, name each in ROS 2, and decide, per connection, how its bytes become
        ROS 2 CDR of the installed definition."""
        by_topic: dict[str, list[Connection]] = {}
        for connection in self._reader.connections:
            by_topic.setdefault(connection.topic, []).append(connection)
        target = types.typestore()
        sources = _Sources(self, types)
        topics: dict[str, BagTopic] = {}
        # names valid as recorded first: a renamed topic never takes the name of one recorded under it
        for recorded, connections in sorted(by_topic.items(), key=lambda item: (ros2_topic(item[0]) != item[0],
                                                                                  item[0])):
            name = ros2_topic(recorded)
            names = {_ros2_type(c) for c in connections}
            ros_type = sorted(names)[0]
            count = sum(c.msgcount for c in connections)
            notes: set[str] = set()
            skip = "" if len(names) == 1 else f"recorded with several types ({', '.join(sorted(names))})"
            if not name:
                skip, name = f"the name '{recorded}' has no valid ROS 2 form (docs/replay.md, topic names)", recorded
            elif name in topics:
                skip = (f"recorded as '{recorded}', whose ROS 2 name {name} is taken by the bag's topic "
                        f"{topics[name].recorded or name}; replay it from a bag of its own")
                name = recorded
            for connection in connections:
                if skip:
                    break
                try:
                    self._convert[connection.id], note = self._converter(connection, sources, target)
                except _Unreplayable as exc:
                    skip = str(exc)
                else:
                    notes.add(note)
            self._names[recorded] = name
            topics[name] = BagTopic(name, ros_type, count, any(_latched(c) for c in connections), skip,
                                    recorded if recorded != name else "", "; ".join(sorted(n for n in notes if n)))
        return dict(sorted(topics.items()))

    def _converter(self, connection: Connection, sources: _Sources, target: Typestore) -> tuple[Convert, str]:
        """raw bag bytes -> ROS 2 CDR of the installed definition for one connection, and what the conversion
        changes ("" for none); _Unreplayable says why it cannot be done."""
        if isinstance(connection.ext, ConnectionExtRosbag2):
            if connection.ext.serialization_format != "cdr":
                raise _Unreplayable(f"serialization '{connection.ext.serialization_format}' is not CDR")
            own = connection.msgdef.format != MessageDefinitionFormat.NONE
            source = self._reader.typestore if own else sources.store()
            ros_type = connection.msgtype
            if ros_type not in source.fielddefs and ros_type in target.fielddefs:
                return bytes, ""  # a type newer than the bag's distribution: recorded with today's definition
            if ros_type not in source.fielddefs:
                raise _Unreplayable(f"unknown type {ros_type} (no definition in the bag, in ROS 2 {sources.name}'s "
                                    "standard set or in the msg dirs; pass --msg-dir with its .msg files)")
            _add_missing(source, target, ros_type, ros_type)
            _check_definition(target, ros_type)
            distro = self.distro.source if self.distro else ""
            layout = "the bag's own definition" if own else f"ROS 2 {sources.name}'s definition ({distro})"
            convert: Convert = bytes
            note = ""
            if not is_same_wireformat(source, target, ros_type, ros_type):
                changes = _changes(source, target, ros_type, layout)
                convert, note = partial(_migrate2, source, target, ros_type, {}), f"converted from {layout}: " + (
                    ", ".join(changes))
            if not own:  # the layout is inferred: the first message must fit it
                self._probe(connection, convert, target, f"ROS 2 {sources.name}'s definition ({distro})")
            return convert, note
        source = self._reader.typestore
        counterpart = ROS1_COUNTERPARTS.get(connection.msgtype)
        if counterpart is not None:
            _check_definition(target, counterpart.ros_type)
            return partial(counterpart.convert, source, target), counterpart.note
        ros_type = _ros2_type(connection)
        _add_missing(source, target, connection.msgtype, ros_type)
        _check_definition(target, ros_type)
        note = f"ROS 1 {connection.msgtype} under its ROS 2 name, same fields" if ros_type != connection.msgtype else ""
        if is_same_wireformat(source, target, connection.msgtype, ros_type):
            return partial(_ros1_to_cdr, target, ros_type), note
        return partial(_migrate, source, target, connection.msgtype, ros_type, {}), note

    def _probe(self, connection: Connection, convert: Convert, target: Typestore, layout: str) -> None:
        """_Unreplayable when the connection's first message, read as `layout`, is not a message of the
        installed definition (CDR pads to 4 bytes at most)."""
        try:
            first = next(self._reader.messages(connections=[connection]), None)
        except Exception:  # a damaged file: messages() names it when the replay reads that far
            return
        if first is None:
            return
        raw, ros_type = first[2], connection.msgtype
        try:
            cdr = convert(raw)
            left = len(cdr) - len(target.serialize_cdr(target.deserialize_cdr(cdr, ros_type), ros_type))
            why = f"{left} bytes left over"
        except Exception as exc:  # untrusted bytes: any failure means they do not fit
            left, why = -1, f"{type(exc).__name__}: {exc}"
        if not 0 <= left < 4:
            raise _Unreplayable(f"its messages do not fit {layout} (first message: {len(raw)} bytes, {why}): the "
                                "bag is from another ROS 2 distribution? name it with --bag-distro")


class _Sources:
    """The typestore a bag's messages without definitions are read with: its distribution's, made once."""

    def __init__(self, bag: Bag, types: ReplayTypes) -> None:
        self.name = bag.distro.name if bag.distro else ""
        self._types = types
        self._store: Typestore | None = None

    def store(self) -> Typestore:
        if self._store is None:
            self._store = self._types.source_typestore(self.name)
        return self._store


def _add_missing(source: Typestore, target: Typestore, src_type: str, ros_type: str) -> None:
    """Register the bag's definition of a type the installed ones lack (with the types it nests) in `target`."""
    if ros_type in target.fielddefs or src_type not in source.fielddefs:
        return
    text = source.generate_msgdef(src_type, ros_version=2)[0]
    added = get_types_from_msg(text, ros_type)
    target.register({k: v for k, v in added.items() if k not in target.fielddefs})


def _changes(source: Typestore, target: Typestore, ros_type: str, layout: str, where: str = "") -> list[str]:
    """What differs from `source` to `target` in `ros_type`, field by field (nested types looked into);
    _Unreplayable when a field's value could not be carried over."""
    src, dst = dict(source.fielddefs[ros_type][1]), dict(target.fielddefs[ros_type][1])
    notes = [f"{where}{name} dropped" for name in src if name not in dst]
    for name, want in dst.items():
        path = f"{where}{name}"
        have = src.get(name)
        if have is None:
            notes.append(f"{path} new (default value)")
        else:
            notes += _field_change(source, target, have, want, path, layout)
    return notes


def _field_change(source: Typestore, target: Typestore, have: Any, want: Any, path: str, layout: str) -> list[str]:
    kind = have[0]
    if kind == Nodetype.BASE and have == want:
        return []
    if kind != want[0]:
        pass
    elif kind == Nodetype.NAME and have[1] == want[1]:
        return _changes(source, target, have[1], layout, f"{path}.")
    elif kind == Nodetype.BASE and (have[1][0] == "string") == (want[1][0] == "string"):
        return [f"{path} {_type(have)} -> {_type(want)}"]
    elif kind in (Nodetype.ARRAY, Nodetype.SEQUENCE) and have[1][0][0] == want[1][0][0]:
        element = have[1][0]
        if element[0] == Nodetype.NAME and element[1] == want[1][0][1]:
            inner = _changes(source, target, element[1], layout, f"{path}[].")
            return inner + ([f"{path} {_type(have)} -> {_type(want)}"] if have[1][1] != want[1][1] else [])
        if element[0] == Nodetype.BASE and (element[1][0] == "string") == (want[1][0][1][0] == "string"):
            return [f"{path} {_type(have)} -> {_type(want)}"] if have != want else []
    raise _Unreplayable(f"field {path} is {_type(have)} in {layout} but {_type(want)} in the installed "
                        "definition: its values cannot be carried over")


def _type(desc: Any) -> str:
    """A field description as in a .msg file: `float32`, `char[16]`, `geometry_msgs/msg/Point[]`."""
    kind, rest = desc
    if kind == Nodetype.BASE:
        return f"{rest[0]}<={rest[1]}" if rest[1] else str(rest[0])
    if kind == Nodetype.NAME:
        return str(rest)
    element = _type(rest[0])
    if kind == Nodetype.ARRAY:
        return f"{element}[{rest[1]}]"
    return f"{element}[<={rest[1]}]" if rest[1] else f"{element}[]"


class _Unreplayable(Exception):
    """A connection whose messages cannot become ROS 2 CDR."""


def _check_definition(store: Typestore, ros_type: str) -> None:
    if ros_type not in store.fielddefs:
        raise _Unreplayable(f"unknown type {ros_type} (no definition in the bag, in the installed interfaces or "
                            "in the msg dirs; pass --msg-dir with its .msg files)")
    try:
        store.get_msgdef(ros_type)
    except Exception as exc:  # an incomplete definition, e.g. a nested type missing
        raise _Unreplayable(f"incomplete definition of {ros_type} ({type(exc).__name__}: {exc}; pass --msg-dir "
                            "with the missing .msg files)") from None


_ROS1_LOG_LEVELS = {1: 10, 2: 20, 4: 30, 8: 40, 16: 50}  # rosgraph_msgs/Log DEBUG..FATAL -> rcl_interfaces/Log's


def _log_to_ros2(source: Typestore, target: Typestore, raw: bytes) -> bytes:
    """A ROS 1 rosgraph_msgs/Log as ROS 2's rcl_interfaces/msg/Log: the header's stamp, the level on ROS 2's scale
    (INFO 2 -> 20), name, msg, file, function and line as they are; the topics it went to dropped."""
    msg: Any = source.deserialize_ros1(raw, "rosgraph_msgs/msg/Log")  # a generated dataclass of the bag's type
    level = _ROS1_LOG_LEVELS.get(msg.level)
    if level is None:
        raise UnconvertibleMessage(f"log level {msg.level} is none of ROS 1's (1, 2, 4, 8, 16)")
    stamp = target.types["builtin_interfaces/msg/Time"](sec=msg.header.stamp.sec, nanosec=msg.header.stamp.nanosec)
    out = target.types["rcl_interfaces/msg/Log"](stamp=stamp, level=level, name=msg.name, msg=msg.msg,
                                                 file=msg.file, function=msg.function, line=msg.line)
    return bytes(target.serialize_cdr(out, "rcl_interfaces/msg/Log"))


@dataclass(frozen=True)
class Counterpart:
    """A ROS 1 type whose ROS 2 counterpart has another name and layout: the ROS 2 type, how a message becomes
    one (source typestore, target typestore, ROS 1 bytes -> CDR), and what the conversion changes."""

    ros_type: str
    convert: Callable[[Typestore, Typestore, bytes], bytes]
    note: str


ROS1_COUNTERPARTS = {
    "rosgraph_msgs/msg/Log": Counterpart("rcl_interfaces/msg/Log", _log_to_ros2, "converted from ROS 1 "
                                         "rosgraph_msgs/msg/Log: header -> stamp, level 1/2/4/8/16 -> "
                                         "10/20/30/40/50, topics dropped"),
}


# ROS 1 types that ROS 2 keeps with the same fields under another name (rosbags' own table, and turtlesim's
# messages, moved to turtlesim_msgs in ROS 2; msg_extra/turtlesim_msgs builds them).
ROS1_RENAMES = {**STATIC_MSGTYPE_RENAMES, "turtlesim/msg/Color": "turtlesim_msgs/msg/Color",
                "turtlesim/msg/Pose": "turtlesim_msgs/msg/Pose"}


def _ros2_type(connection: Connection) -> str:
    """The ROS 2 type a connection's messages are replayed as."""
    if not isinstance(connection.ext, ConnectionExtRosbag1):
        return connection.msgtype
    if connection.msgtype in ROS1_COUNTERPARTS:
        return ROS1_COUNTERPARTS[connection.msgtype].ros_type
    return ROS1_RENAMES.get(connection.msgtype, connection.msgtype)


def _ros1_to_cdr(store: Typestore, ros_type: str, raw: bytes) -> bytes:
    return bytes(store.ros1_to_cdr(raw, ros_type))


def _migrate2(source: Typestore, target: Typestore, ros_type: str, cache: dict[str, object], raw: bytes) -> bytes:
    return bytes(migrate_bytes(source, target, ros_type, ros_type, cache, raw, src_is2=True, dst_is2=True))


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
