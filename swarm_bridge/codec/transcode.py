"""Little-endian CDR -> Avro or Protobuf bytes directly, by code generated once per type: no dict, no objects.

The generated reader walks the CDR layout like `cdr_gen.Decoder` (one struct call per run of fixed-size
fields), but keeps float32/float64 values (and bools) as their raw little-endian bytes, which Avro and
Protobuf store unchanged, so NaN payloads survive bit for bit. Integers become varints (zigzag for Avro),
strings are checked to be UTF-8. Nested Protobuf messages are assembled after the walk, innermost first,
to know their lengths. The Protobuf output writes every field (defaults too); Avro output equals
fastavro's for the same message.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from swarm_bridge.codec.cdr import CDR_ERRORS
from swarm_bridge.codec.cdr_gen import PRIMITIVE_CODES, Decoder
from swarm_bridge.codec.errors import RecordError
from swarm_bridge.codec.transcode_wire import AVRO_HELPERS, PROTO_HELPERS, avro_string, pb_tag, varint, zigzag

if TYPE_CHECKING:
    from swarm_bridge.codec.rosdefs import RosField
    from swarm_bridge.codec.rostypes import RosTypes

__all__ = ["Transcode", "avro_transcoder", "envelope_problem", "proto_transcoder"]

Transcode = Callable[[bytes, str, str, int, int, int], bytes]
_FLOATS = ("float32", "float64")
_SIGNED = ("int8", "int16", "int32", "int64")
Piece = tuple[bool, Any, "int | None"]  # (is constant bytes, the bytes or an expression, size if static)


def _const(data: bytes) -> Piece:
    return (True, data, len(data))


def _expr(expression: str, size: int | None = None) -> Piece:
    return (False, expression, size)


class _Transcoder(Decoder):
    """Shared walk; subclasses say how each kind of field becomes pieces of output."""

    helpers: ClassVar[dict[str, Any]] = {}

    def __init__(self, types: RosTypes) -> None:
        super().__init__(types, "<")
        self.consts.update(self.helpers)
        self.assembly: list[str] = []

    def finish(self, name: str, result: str) -> None:
        self.lines += self.assembly
        self.assembly = []
        super().finish(name, result)

    def body(self, ros_type: str, source: str) -> str:
        return self.join(self.pieces(ros_type))

    def pieces(self, ros_type: str) -> list[Piece]:
        fields = self.types.fields(ros_type)
        if not fields:
            self.primitive("uint8")
            self.item("B")
            return []
        out: list[Piece] = []
        for number, f in enumerate(fields, start=1):
            out += self.field_pieces(f, number)
        return out

    def join(self, pieces: list[Piece]) -> str:
        merged: list[Piece] = []
        for piece in pieces:
            if piece[0] and merged and merged[-1][0]:
                merged[-1] = _const(merged[-1][1] + piece[1])
            else:
                merged.append(piece)
        parts = [repr(value) if constant else value for constant, value, _ in merged]
        if not parts:
            return "b''"
        return parts[0] if len(parts) == 1 and not merged[0][0] else f"b''.join(({', '.join(parts)},))"

    def raw(self, f: RosField, count: int) -> str:
        """A fixed run of `count` floats or bools, as its raw bytes."""
        size = PRIMITIVE_CODES[f.type][1]
        self.align(size)
        return self.value(f"{count * size}s")

    def values(self, f: RosField, count: int) -> str:
        """A fixed run of `count` integers, as a tuple slice."""
        index = self.item(f"{count}{self.primitive(f.type)}")
        return f"{self.run_var}[{index}:{index + count}]"

    def sequence_raw(self, f: RosField, count: str) -> str:
        """After a sequence count: its floats/bools as a raw slice of the buffer."""
        size, target = PRIMITIVE_CODES[f.type][1], self.fresh("v")
        if size == 8:
            self.emit(f"if {count}: pos = ((pos + 3) & -8) + 4")
        self.emit(f"{target} = buf[pos:pos + {count} * {size}]")
        self.emit(f"pos += {count} * {size}")
        self.base = min(size, 4)
        return target

    def sequence_values(self, f: RosField, count: str) -> str:
        code, size = PRIMITIVE_CODES[f.type]
        target = self.fresh("v")
        if size == 8:
            self.emit(f"if {count}: pos = ((pos + 3) & -8) + 4")
        self.emit(f"{target} = _struct.unpack_from('<%d{code}' % {count}, buf, pos)")
        self.emit(f"pos += {count} * {size}")
        self.base = min(size, 4)
        return target

    def sequence_count(self) -> str:
        self.align(4)
        count = self.value("I")
        self.materialize()
        self.base = 4
        return count

    def strings(self, f: RosField, count: str) -> str:
        target = self.fresh("v")
        self.emit(f"{target}, pos = _read_{f.type}s(buf, pos, {count})")
        self.base = 4 if f.type == "wstring" else 1
        return target

    def field_pieces(self, f: RosField, number: int) -> list[Piece]:
        raise NotImplementedError


class _Avro(_Transcoder):
    helpers = AVRO_HELPERS

    def leaf(self, f: RosField) -> Piece:
        if f.type in _FLOATS or f.type == "bool":
            return _expr(self.raw(f, 1), PRIMITIVE_CODES[f.type][1])
        if f.type in ("string", "wstring"):
            return _expr(f"_astr({self.scalar(f.type)})")
        return _expr(f"{'_adec' if f.type == 'uint64' else '_zz'}({self.value(self.primitive(f.type))})")

    def field_pieces(self, f: RosField, number: int) -> list[Piece]:
        if f.kind == "nested":
            return self.pieces(f.type)
        if f.kind == "base":
            return [self.leaf(f)]
        if f.kind == "array":
            if f.is_bytes:
                return [_const(zigzag(f.size)), _expr(self.value(f"{f.size}s"), f.size)]
            if f.type in _FLOATS or f.type == "bool":
                payload = self.raw(f, f.size)
            elif f.is_message:
                payload = f"b''.join({self.loop(f.type, str(f.size))})"
            elif f.type in ("string", "wstring"):
                payload = f"b''.join(({', '.join(self.leaf(f)[1] for _ in range(f.size))},))"
            else:
                payload = f"b''.join(map({'_adec' if f.type == 'uint64' else '_zz'}, {self.values(f, f.size)}))"
            return [_const(zigzag(f.size)), _expr(payload), _const(b"\x00")] if f.size else [_const(b"\x00")]
        count = self.sequence_count()
        if f.is_bytes:
            target = self.fresh("v")
            self.emit(f"{target} = buf[pos:pos + {count}]")
            self.emit(f"pos += {count}")
            self.base = 1
            return [_expr(f"_zz({count})"), _expr(target)]
        if f.type in _FLOATS or f.type == "bool":
            payload = self.sequence_raw(f, count)
        elif f.is_message:
            payload = f"b''.join({self.loop(f.type, count)})"
        elif f.type in ("string", "wstring"):
            payload = f"b''.join(map(_astr, {self.strings(f, count)}))"
        else:
            convert = "_adec" if f.type == "uint64" else "_zz"
            payload = f"b''.join(map({convert}, {self.sequence_values(f, count)}))"
        return [_expr(f"_aarr({count}, {payload})")]


class _Proto(_Transcoder):
    helpers = PROTO_HELPERS

    def scalar_pieces(self, f: RosField, tag: int) -> list[Piece]:
        if f.type in _FLOATS or f.type == "bool":
            wire_type = {"float32": 5, "float64": 1}.get(f.type, 0)
            return [_const(pb_tag(tag, wire_type)), _expr(self.raw(f, 1), PRIMITIVE_CODES[f.type][1])]
        if f.type in ("string", "wstring"):
            return [_const(pb_tag(tag, 2)), _expr(f"_pstr({self.scalar(f.type)})")]
        value = self.value(self.primitive(f.type))
        return [_const(pb_tag(tag, 0)), _expr(f"{'_pvs' if f.type in _SIGNED else '_pv'}({value})")]

    def field_pieces(self, f: RosField, number: int) -> list[Piece]:
        if f.kind == "nested":
            inner = self.pieces(f.type)
            if all(size is not None for _, _, size in inner):  # static length: inline, no join
                return [_const(pb_tag(number, 2) + varint(sum(size or 0 for _, _, size in inner))), *inner]
            content = self.fresh("c")
            self.assembly.append(f"    {content} = {self.join(inner)}")
            return [_const(pb_tag(number, 2)), _expr(f"_pv(len({content}))"), _expr(content)]
        if f.kind == "base":
            return self.scalar_pieces(f, number)
        tag = pb_tag(number, 2)
        fixed = f.kind == "array"
        count = str(f.size) if fixed else self.sequence_count()
        if f.is_bytes:
            if fixed:
                return [_const(tag + varint(f.size)), _expr(self.value(f"{f.size}s"), f.size)]
            target = self.fresh("v")
            self.emit(f"{target} = buf[pos:pos + {count}]")
            self.emit(f"pos += {count}")
            self.base = 1
            return [_expr(f"_plen({tag!r}, {target})")]
        if f.type in _FLOATS or f.type == "bool":
            if fixed:
                width = PRIMITIVE_CODES[f.type][1] * f.size
                return [_const(tag + varint(width)), _expr(self.raw(f, f.size), width)] if f.size else []
            return [_expr(f"_plen({tag!r}, {self.sequence_raw(f, count)})")]
        if f.is_message:
            return [_expr(f"_prep({tag!r}, {self.loop(f.type, count)})")]
        if f.type in ("string", "wstring"):
            items = f"({', '.join(self.scalar(f.type) for _ in range(f.size))},)" if fixed else self.strings(f, count)
            return [_expr(f"_prep({tag!r}, map(_utf8, {items}))")]
        values = self.values(f, f.size) if fixed else self.sequence_values(f, count)
        convert = "_pvs" if f.type in _SIGNED else "_pv"
        return [_expr(f"_plen({tag!r}, b''.join(map({convert}, {values})))")]


def avro_transcoder(types: RosTypes, ros_type: str) -> Transcode:
    """`(raw, robot_id, stream, seq, stamp_ns, schema_version) -> Avro record bytes` for `ros_type`."""
    body = _root(_Avro(types), ros_type)
    type_field = avro_string(ros_type)
    zz_long, zz_int = AVRO_HELPERS["_zzlong"], AVRO_HELPERS["_zzint"]
    prefix = _Prefix(lambda robot_id, stream: avro_string(robot_id) + avro_string(stream))

    def transcode(raw: bytes, robot_id: str, stream: str, seq: int, stamp_ns: int, version: int) -> bytes:
        content = _run(body, raw, ros_type)
        try:
            return b"".join((prefix(robot_id, stream), zz_long(seq), zz_long(stamp_ns), type_field, zz_int(version),
                             content))
        except (AttributeError, TypeError, ValueError):
            raise envelope_problem(ros_type, robot_id, stream, seq, stamp_ns, version) from None

    return transcode


def proto_transcoder(types: RosTypes, ros_type: str) -> Transcode:
    """`(raw, robot_id, stream, seq, stamp_ns, schema_version) -> Protobuf record bytes` for `ros_type`."""
    body = _root(_Proto(types), ros_type)
    pstr, pv = PROTO_HELPERS["_pstr"], PROTO_HELPERS["_pv"]
    pvs64, pvs32 = PROTO_HELPERS["_pvs64"], PROTO_HELPERS["_pvs32"]
    type_field = pb_tag(5, 2) + pstr(ros_type)
    prefix = _Prefix(lambda robot_id, stream: b"\x0a" + pstr(robot_id) + b"\x12" + pstr(stream))

    def transcode(raw: bytes, robot_id: str, stream: str, seq: int, stamp_ns: int, version: int) -> bytes:
        content = _run(body, raw, ros_type)
        try:
            return b"".join((prefix(robot_id, stream), b"\x18", pvs64(seq), b"\x20", pvs64(stamp_ns), type_field,
                             b"\x30", pvs32(version), b"\x3a", pv(len(content)), content))
        except (AttributeError, TypeError, ValueError):
            raise envelope_problem(ros_type, robot_id, stream, seq, stamp_ns, version) from None

    return transcode


def envelope_problem(ros_type: str, robot_id: Any, stream: Any, seq: Any, stamp_ns: Any, version: Any) -> RecordError:
    """Which envelope field cannot be written: strings must be str, seq/stamp_ns int64, schema_version int32."""
    for name, value, bits in (("robot_id", robot_id, 0), ("stream", stream, 0), ("seq", seq, 64),
                              ("stamp_ns", stamp_ns, 64), ("schema_version", version, 32)):
        if not bits and not isinstance(value, str):
            return RecordError(f"expected a string, got {type(value).__name__}", field=name)
        if bits and not isinstance(value, int):
            return RecordError(f"expected a {bits}-bit integer, got {value!r}", field=name)
        if bits and not -(2 ** (bits - 1)) <= value < 2 ** (bits - 1):
            return RecordError(f"{value} out of range for a {bits}-bit integer", field=name)
    return RecordError(f"{ros_type}: envelope does not fit")


class _Prefix:
    """The encoded robot_id and stream, kept for the last pair: a route sends many records with the same.
    One tuple holds key and value, so threads sharing a codec never pair a key with another key's bytes."""

    def __init__(self, encode: Callable[[str, str], bytes]) -> None:
        self.encode = encode
        self.last: tuple[str, str, bytes] = ("", "", encode("", ""))

    def __call__(self, robot_id: str, stream: str) -> bytes:
        last = self.last
        if last[0] == robot_id and last[1] == stream:
            return last[2]
        value = self.encode(robot_id, stream)
        self.last = (robot_id, stream, value)
        return value


def _root(gen: _Transcoder, ros_type: str) -> Callable[[bytes, int], tuple[bytes, int]]:
    gen.function("root", ros_type, entry_align=8)
    namespace = dict(gen.consts)
    exec(compile("\n".join(gen.source), f"<transcode {type(gen).__name__} {ros_type}>", "exec"), namespace)
    return namespace["root"]


def _run(body: Callable[[bytes, int], tuple[bytes, int]], raw: bytes, ros_type: str) -> bytes:
    """Body bytes of little-endian CDR `raw`; RecordError naming the type when it is not valid CDR."""
    if raw[:2] != b"\x00\x01" or len(raw) < 4:
        raise RecordError(f"{ros_type}: not little-endian CDR (encapsulation {bytes(raw[:4]).hex() or 'missing'})")
    try:
        content, pos = body(raw if isinstance(raw, bytes) else bytes(raw), 4)
    except CDR_ERRORS as exc:
        raise RecordError(f"{ros_type}: truncated or corrupt CDR ({len(raw)} bytes): {exc}") from None
    if pos > len(raw):
        raise RecordError(f"{ros_type}: truncated CDR: {len(raw)} bytes, needs {pos}")
    return content
