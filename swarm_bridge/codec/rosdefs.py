"""ROS message definitions without rclpy: `RosDefinitions` gives each type's fields (CDR lives a layer up, in `cdr`).

- Sources, later ones overriding earlier ones: rosbags' `Stores.ROS2_KILTED` typestore; every
  `share/<pkg>/msg/*.msg` of the interface packages in the ament index of each `AMENT_PREFIX_PATH`
  prefix (`sys.prefix` when unset), so CDR matches the installed rclpy; then `extra_msg_dirs`.
- An extra dir holds `<dir>/<pkg>/msg/<Name>.msg`, or is itself a package (`<dir>/msg/*.msg` or flat
  `<dir>/*.msg`; package name from `<dir>/package.xml`, else the dir name).
- `.msg` text is parsed by `rosbags.typesys.get_types_from_msg` lazily, on first use of a type.
  `wstring` (which that parser lacks) is read as `string` and marked wide afterwards.
- Message dicts are plain values: nested dicts, lists for arrays, `bytes` for uint8/byte arrays,
  int for byte/char; an empty message is `{}` (its CDR still carries rosidl's one dummy byte).
"""

from __future__ import annotations

import difflib
import math
import os
import re
import sys
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from rosbags.interfaces import Nodetype
from rosbags.typesys import Stores, TypesysError, get_types_from_msg, get_typestore

from swarm_bridge.codec.errors import RecordError, SchemaParseError, UnknownRosType

__all__ = ["PRIMITIVES", "FieldKind", "RosDefinitions", "RosField", "installed_msg_files", "msg_dir_files"]

FieldKind = Literal["base", "nested", "array", "sequence"]

# Every primitive a .msg file can declare; `string`/`wstring` are the variable-size ones.
PRIMITIVES = frozenset({
    "bool", "byte", "char", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64",
    "float32", "float64", "string", "wstring",
})
_ZERO: dict[str, Any] = {"bool": False, "float32": 0.0, "float64": 0.0, "string": "", "wstring": ""}
_DUMMY_FIELD = "structure_needs_at_least_one_member"  # rosidl's member of an empty message; not a ROS field
_WSTRING_LINE = re.compile(r"^(\s*)wstring(?=[\s\[<])(\S*)\s+([A-Za-z]\w*)", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class RosField:
    """One field: `kind` base/nested/array/sequence, element `type` (a primitive or `pkg/msg/Name`),
    `size` (fixed array length, or sequence bound; 0 = unbounded), `str_bound` (bounded string; 0 = none)."""

    name: str
    kind: FieldKind
    type: str
    size: int = 0
    str_bound: int = 0

    @property
    def is_message(self) -> bool:
        """True when the element type is a message (nested), not a primitive."""
        return "/" in self.type

    @property
    def is_bytes(self) -> bool:
        """True for uint8/byte arrays and sequences, carried as `bytes`."""
        return self.kind in ("array", "sequence") and self.type in ("uint8", "byte")


class RosDefinitions:
    """Message definitions by ROS type name (`sensor_msgs/msg/Imu`): fields, nesting, defaults, what does not fit."""

    def __init__(self, *, extra_msg_dirs: Iterable[str | os.PathLike[str]] = ()) -> None:
        self._store = get_typestore(Stores.ROS2_KILTED).fielddefs
        self._files: dict[str, Path] = {}
        for prefix in _ament_prefixes():
            self._files.update(_installed_msg_files(prefix))
        for directory in extra_msg_dirs:
            self._files.update(_extra_msg_files(Path(directory)))
        self._fields: dict[str, tuple[RosField, ...]] = {}

    def message_types(self) -> list[str]:
        """Every known ROS message type name, sorted."""
        return sorted({*self._store, *self._files})

    def has(self, ros_type: str) -> bool:
        """Whether `ros_type` has a definition."""
        return ros_type in self._files or ros_type in self._store

    def fields(self, ros_type: str) -> tuple[RosField, ...]:
        """The fields of `ros_type` in definition order; raises UnknownRosType with a near-miss suggestion."""
        found = self._fields.get(ros_type)
        if found is None:
            found = self._fields[ros_type] = self._load(ros_type)
        return found

    def closure(self, ros_type: str) -> list[str]:
        """`ros_type` and every message type it nests, dependencies first (deterministic)."""
        order: list[str] = []

        def visit(name: str) -> None:
            if name in order:
                return
            for ros_field in self.fields(name):
                if ros_field.is_message:
                    visit(ros_field.type)
            order.append(name)

        visit(ros_type)
        return order

    def is_fixed_size(self, ros_type: str) -> bool:
        """True when every message of the type has the same CDR size (no strings, no sequences)."""
        return all(
            f.kind != "sequence" and f.type not in ("string", "wstring")
            and (not f.is_message or self.is_fixed_size(f.type))
            for f in self.fields(ros_type)
        )

    def default_message(self, ros_type: str) -> dict[str, Any]:
        """A message dict of `ros_type` with every field zero, empty or false (fixed arrays filled)."""
        message: dict[str, Any] = {}
        for f in self.fields(ros_type):
            if f.is_bytes:
                message[f.name] = bytes(f.size if f.kind == "array" else 0)
            elif f.kind in ("base", "nested"):
                message[f.name] = self.default_message(f.type) if f.is_message else _ZERO.get(f.type, 0)
            else:
                count = f.size if f.kind == "array" else 0
                message[f.name] = [self.default_message(f.type) if f.is_message else _ZERO.get(f.type, 0)
                                   for _ in range(count)]
        return message

    def default_message_field(self, f: RosField) -> Any:
        """The default value of one field (as in `default_message`)."""
        if f.is_bytes:
            return bytes(f.size if f.kind == "array" else 0)
        one = self.default_message(f.type) if f.is_message else _ZERO.get(f.type, 0)
        if f.kind in ("base", "nested"):
            return one
        return [self.default_message(f.type) if f.is_message else _ZERO.get(f.type, 0)
                for _ in range(f.size if f.kind == "array" else 0)]

    def explain(self, message: Any, ros_type: str) -> RecordError:
        """The first field of `message` that does not fit `ros_type`, as a RecordError naming its path."""
        return _message_problem(self, message, ros_type, "") or RecordError(f"does not fit {ros_type}")

    def _load(self, ros_type: str) -> tuple[RosField, ...]:
        path = self._files.get(ros_type)
        if path is not None:
            text = path.read_text(encoding="utf-8")
            wide = {m.group(3) for m in _WSTRING_LINE.finditer(text)}
            text = _WSTRING_LINE.sub(r"\1string\2 \3", text)
            try:
                _, raw_fields = get_types_from_msg(text, ros_type)[ros_type]
            except TypesysError as exc:
                raise SchemaParseError(str(path), f"not a valid .msg definition of {ros_type}: {exc}") from None
        elif ros_type in self._store:
            wide = set()
            _, raw_fields = self._store[ros_type]
        else:
            close = difflib.get_close_matches(ros_type, self.message_types(), n=1)
            raise UnknownRosType(ros_type, close[0] if close else None)
        return tuple(_ros_field(name, desc, name in wide) for name, desc in raw_fields if name != _DUMMY_FIELD)


def _ros_field(name: str, desc: Any, wide: bool) -> RosField:
    """rosbags' field descriptor -> RosField."""
    kind: FieldKind = "base"
    size = 0
    if desc[0] in (Nodetype.ARRAY, Nodetype.SEQUENCE):
        kind = "array" if desc[0] == Nodetype.ARRAY else "sequence"
        desc, size = desc[1]
    if desc[0] == Nodetype.NAME:
        return RosField(name, "nested" if kind == "base" else kind, desc[1], size)
    base, str_bound = desc[1]
    if base not in PRIMITIVES:
        raise UnknownRosType(f"{base} (field '{name}')")
    return RosField(name, kind, "wstring" if wide and base == "string" else base, size, str_bound)


def _message_problem(types: RosDefinitions, message: Any, ros_type: str, path: str) -> RecordError | None:
    if not isinstance(message, dict):
        return RecordError(f"expected a message dict for {ros_type}, got {type(message).__name__}", field=path or None)
    for f in types.fields(ros_type):
        where = f"{path}.{f.name}" if path else f.name
        if f.name not in message:
            return RecordError(f"missing field of {ros_type}", field=where)
        problem = _field_problem(types, f, message[f.name], where)
        if problem is not None:
            return problem
    return None


def _field_problem(types: RosDefinitions, f: RosField, value: Any, where: str) -> RecordError | None:
    """What is wrong with one field value, or None when it fits (the slow path behind error messages)."""
    if f.kind in ("array", "sequence"):
        if not isinstance(value, (list, tuple, bytes, bytearray)):
            return RecordError(f"expected a list, got {type(value).__name__}", field=where)
        if f.kind == "array" and len(value) != f.size:
            return RecordError(f"expected {f.size} items, got {len(value)}", field=where)
        if f.kind == "sequence" and f.size and len(value) > f.size:
            return RecordError(f"at most {f.size} items allowed, got {len(value)}", field=where)
        items: Sequence[Any] = value
    else:
        items = [value]
    for index, item in enumerate(items):
        at = f"{where}[{index}]" if f.kind in ("array", "sequence") else where
        problem = (_message_problem(types, item, f.type, at) if f.is_message
                   else _primitive_problem(f, item, at))
        if problem is not None:
            return problem
    return None


_FLOAT32_MAX = 3.4028234663852886e38
_INT_RANGES = {
    "byte": (0, 255), "char": (0, 255), "uint8": (0, 255), "int8": (-128, 127), "int16": (-(2**15), 2**15 - 1),
    "uint16": (0, 2**16 - 1), "int32": (-(2**31), 2**31 - 1), "uint32": (0, 2**32 - 1),
    "int64": (-(2**63), 2**63 - 1), "uint64": (0, 2**64 - 1),
}


def _primitive_problem(f: RosField, value: Any, where: str) -> RecordError | None:
    problem = None
    if f.type in ("string", "wstring"):
        if not isinstance(value, str):
            problem = f"expected a string, got {type(value).__name__}"
        elif "\x00" in value:
            problem = "CDR strings cannot contain NUL"
        elif f.str_bound and len(value.encode("utf-16-le") if f.type == "wstring" else value.encode()) > (
                2 * f.str_bound if f.type == "wstring" else f.str_bound):
            problem = f"at most {f.str_bound} {'UTF-16 units' if f.type == 'wstring' else 'bytes'} allowed"
    elif f.type in ("float32", "float64"):
        if not isinstance(value, (int, float)):
            problem = f"expected a number, got {type(value).__name__}"
        elif f.type == "float32" and math.isfinite(value) and abs(value) > _FLOAT32_MAX:
            problem = f"{value} out of range for float32"
    elif f.type == "bool":
        if not isinstance(value, (bool, int)):
            problem = f"expected a bool, got {type(value).__name__}"
    elif not (f.type == "byte" and isinstance(value, bytes) and len(value) == 1):
        low, high = _INT_RANGES[f.type]
        if not isinstance(value, int) and not (f.is_bytes and isinstance(value, bytes) and len(value) == 1):
            problem = f"expected an integer, got {type(value).__name__}"
        elif isinstance(value, int) and not low <= value <= high:
            problem = f"{value} out of range for {f.type} [{low}, {high}]"
    return RecordError(problem, field=where) if problem else None


def installed_msg_files() -> dict[str, Path]:
    """The `.msg` file of every installed interface type by ROS type name (prefixes and order as RosDefinitions)."""
    found: dict[str, Path] = {}
    for prefix in _ament_prefixes():
        found.update(_installed_msg_files(prefix))
    return found


def msg_dir_files(directory: str | os.PathLike[str]) -> dict[str, Path]:
    """The `.msg` files of one extra msg dir (layouts as in RosDefinitions' `extra_msg_dirs`) by ROS type name."""
    return _extra_msg_files(Path(directory))


def _ament_prefixes() -> list[Path]:
    """AMENT_PREFIX_PATH entries, lowest priority first (the first entry wins, as in ament); else sys.prefix."""
    value = os.environ.get("AMENT_PREFIX_PATH")
    entries = [p for p in value.split(os.pathsep) if p] if value else [sys.prefix]
    return [Path(p) for p in reversed(entries)]


def _installed_msg_files(prefix: Path) -> dict[str, Path]:
    index = prefix / "share" / "ament_index" / "resource_index" / "rosidl_interfaces"
    found: dict[str, Path] = {}
    if index.is_dir():
        for marker in sorted(index.iterdir()):
            for path in sorted((prefix / "share" / marker.name / "msg").glob("*.msg")):
                found[f"{marker.name}/msg/{path.stem}"] = path
    return found


def _extra_msg_files(directory: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in sorted(directory.glob("*/msg/*.msg")):
        found[f"{path.parent.parent.name}/msg/{path.stem}"] = path
    package = _package_name(directory)
    for path in sorted([*directory.glob("msg/*.msg"), *directory.glob("*.msg")]):
        found[f"{package}/msg/{path.stem}"] = path
    return found


def _package_name(directory: Path) -> str:
    manifest = directory / "package.xml"
    if manifest.is_file():
        name = ElementTree.parse(manifest).getroot().findtext("name")
        if name:
            return name.strip()
    return directory.resolve().name
