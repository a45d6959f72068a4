"""Protobuf descriptors and `.proto` text of ROS message types, derived from the ROS definition.

- One proto3 file per ROS message: `ros/<pkg>/msg/<Name>.proto`, package `ros.<pkg>.msg`, importing the
  files of the messages it uses (so each file is a registry subject of its own, the same for every record).
- The record: file `swarm_bridge/record/<pkg>/msg/<Name>.proto`, message
  `swarm_bridge.record.<pkg>.msg.<Name>` with robot_id=1 (string), stream=2 (string), seq=3 (int64),
  stamp_ns=4 (int64), ros_type=5 (string), schema_version=6 (int32), body=7 (`ros.<pkg>.msg.<Name>`).
- Field numbers are 1, 2, ... in ROS definition order; names are the ROS names.

| ROS                                  | Protobuf                                                     |
|--------------------------------------|--------------------------------------------------------------|
| bool                                 | bool                                                         |
| int8 int16 int32                     | int32 (plain varint, like int64 below; a negative value      |
|                                      | costs 10 bytes, but ROS ints are mostly ids, counts, enums)  |
| uint8 uint16 uint32 byte char        | uint32                                                       |
| int64 / uint64                       | int64 / uint64                                               |
| float32 / float64                    | float / double                                               |
| string, wstring                      | string                                                       |
| uint8[...], byte[...] (any kind)     | bytes                                                        |
| T[N], T[], T[<=N] (other T)          | repeated T (scalars packed, proto3's default)                |
| nested message (incl. Time, Duration)| message                                                      |

Sizes and bounds do not fit proto3 options without an extension; `.proto` text shows each field's ROS
declaration as a trailing comment instead.
"""

from __future__ import annotations

from google.protobuf import descriptor_pb2

from swarm_bridge.codec.rosdefs import RosField
from swarm_bridge.codec.rostypes import RosTypes, default_types

__all__ = ["ENVELOPE_FIELDS", "body_message_name", "file_descriptors", "proto_file_name", "proto_text",
           "record_file_name", "record_message_name"]

_F = descriptor_pb2.FieldDescriptorProto
_SCALAR = {
    "bool": _F.TYPE_BOOL, "int8": _F.TYPE_INT32, "int16": _F.TYPE_INT32, "int32": _F.TYPE_INT32,
    "uint8": _F.TYPE_UINT32, "uint16": _F.TYPE_UINT32, "uint32": _F.TYPE_UINT32, "byte": _F.TYPE_UINT32,
    "char": _F.TYPE_UINT32, "int64": _F.TYPE_INT64, "uint64": _F.TYPE_UINT64, "float32": _F.TYPE_FLOAT,
    "float64": _F.TYPE_DOUBLE, "string": _F.TYPE_STRING, "wstring": _F.TYPE_STRING,
}
_TYPE_NAMES = {
    _F.TYPE_BOOL: "bool", _F.TYPE_INT32: "int32", _F.TYPE_UINT32: "uint32", _F.TYPE_INT64: "int64",
    _F.TYPE_UINT64: "uint64", _F.TYPE_FLOAT: "float", _F.TYPE_DOUBLE: "double", _F.TYPE_STRING: "string",
    _F.TYPE_BYTES: "bytes",
}
ENVELOPE_FIELDS = (
    ("robot_id", _F.TYPE_STRING), ("stream", _F.TYPE_STRING), ("seq", _F.TYPE_INT64),
    ("stamp_ns", _F.TYPE_INT64), ("ros_type", _F.TYPE_STRING), ("schema_version", _F.TYPE_INT32),
)


def body_message_name(ros_type: str) -> str:
    """`sensor_msgs/msg/Imu` -> `ros.sensor_msgs.msg.Imu`."""
    return "ros." + ros_type.replace("/", ".")


def record_message_name(ros_type: str) -> str:
    """`sensor_msgs/msg/Imu` -> `swarm_bridge.record.sensor_msgs.msg.Imu`."""
    return "swarm_bridge.record." + ros_type.replace("/", ".")


def file_descriptors(ros_type: str, types: RosTypes | None = None) -> list[descriptor_pb2.FileDescriptorProto]:
    """The files that define records of `ros_type`, each after the files it imports; the record's file last.

    One file per ROS message, so a file's text depends on that message alone: registered as its own
    registry subject (`file_subject`), it is the same whichever record imports it."""
    types = types or default_types()
    ordered: list[str] = []

    def visit(name: str) -> None:
        if name not in ordered:
            for used in _uses(name, types):
                visit(used)
            ordered.append(name)

    visit(ros_type)
    return [*(_message_file(name, types) for name in ordered), _record_file(ros_type)]


def proto_file_name(ros_type: str) -> str:
    """`sensor_msgs/msg/Imu` -> `ros/sensor_msgs/msg/Imu.proto`, the file that defines its message."""
    return f"ros/{ros_type}.proto"


def record_file_name(ros_type: str) -> str:
    """`sensor_msgs/msg/Imu` -> `swarm_bridge/record/sensor_msgs/msg/Imu.proto`, the file of its record."""
    return f"swarm_bridge/record/{ros_type}.proto"


def _uses(name: str, types: RosTypes) -> list[str]:
    return sorted({f.type for f in types.fields(name) if f.is_message} - {name})


def _message_file(name: str, types: RosTypes) -> descriptor_pb2.FileDescriptorProto:
    package, short = name.rsplit("/", 1)
    file = descriptor_pb2.FileDescriptorProto(
        name=proto_file_name(name), package="ros." + package.replace("/", "."), syntax="proto3",
        dependency=[proto_file_name(used) for used in _uses(name, types)],
    )
    message = file.message_type.add(name=short)
    for number, f in enumerate(types.fields(name), start=1):
        message.field.append(_field(f, number))
    return file


def _field(f: RosField, number: int) -> descriptor_pb2.FieldDescriptorProto:
    repeated = f.kind in ("array", "sequence") and not f.is_bytes
    field = _F(name=f.name, number=number, label=_F.LABEL_REPEATED if repeated else _F.LABEL_OPTIONAL)
    if f.is_bytes:
        field.type = _F.TYPE_BYTES
    elif f.is_message:
        field.type, field.type_name = _F.TYPE_MESSAGE, "." + body_message_name(f.type)
    else:
        field.type = _SCALAR[f.type]
    return field


def _record_file(ros_type: str) -> descriptor_pb2.FileDescriptorProto:
    package, name = record_message_name(ros_type).rsplit(".", 1)
    file = descriptor_pb2.FileDescriptorProto(
        name=record_file_name(ros_type), package=package, syntax="proto3", dependency=[proto_file_name(ros_type)],
    )
    message = file.message_type.add(name=name)
    for number, (field_name, kind) in enumerate(ENVELOPE_FIELDS, start=1):
        message.field.add(name=field_name, number=number, label=_F.LABEL_OPTIONAL, type=kind)
    message.field.add(name="body", number=len(ENVELOPE_FIELDS) + 1, label=_F.LABEL_OPTIONAL,
                      type=_F.TYPE_MESSAGE, type_name="." + body_message_name(ros_type))
    return file


def proto_text(ros_type: str, types: RosTypes | None = None) -> str:
    """The `.proto` source of every file of `ros_type`'s records, in import order, each headed by its name."""
    types = types or default_types()
    chunks = []
    for file in file_descriptors(ros_type, types):
        lines = [f"// file: {file.name}", 'syntax = "proto3";', "", f"package {file.package};", ""]
        lines += [f'import "{dependency}";' for dependency in file.dependency]
        for message in file.message_type:
            full = f"{file.package}.{message.name}"
            ros_name = full.removeprefix("ros.").replace(".", "/") if full.startswith("ros.") else None
            lines += ["", f"// {ros_name}" if ros_name else f"// swarm_bridge record of {ros_type}"]
            lines.append(f"message {message.name} {{")
            declared = {f.name: f for f in types.fields(ros_name)} if ros_name else {}
            for field in message.field:
                kind = field.type_name.lstrip(".") if field.type == _F.TYPE_MESSAGE else _TYPE_NAMES[field.type]
                label = "repeated " if field.label == _F.LABEL_REPEATED else ""
                comment = f"  // {_ros_declaration(declared[field.name])}" if field.name in declared else ""
                lines.append(f"  {label}{kind} {field.name} = {field.number};{comment}")
            lines.append("}")
        chunks.append("\n".join(lines) + "\n")
    return "\n".join(chunks)


def _ros_declaration(f: RosField) -> str:
    text = f.type + (f"<={f.str_bound}" if f.str_bound else "")
    if f.kind == "array":
        text += f"[{f.size}]"
    elif f.kind == "sequence":
        text += f"[<={f.size}]" if f.size else "[]"
    return text
