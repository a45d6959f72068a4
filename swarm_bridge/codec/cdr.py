"""CDR (XCDR1, as Fast DDS writes ROS 2 messages) <-> message dicts, by Python code generated once per type.

- Layout: 4-byte encapsulation header (`00 01` little-endian, `00 00` big-endian; both read, LE written),
  then the fields; each primitive aligned to its size relative to the end of the header.
- string: uint32 length incl. NUL, UTF-8 bytes, NUL. wstring: uint32 count of UTF-16 code units, each
  as a uint32 (what rosidl_typesupport_fastrtps does). Sequences: uint32 count, then the items.
- An empty message carries rosidl's one dummy byte; fixed-size messages are zero-padded to a multiple of
  4 bytes, as rclpy's `serialize_message` pads them. Padding is written as zeros (Fast DDS leaves whatever
  was in memory there).
- Bytes after the message are ignored on read: Fast DDS sizes a buffer by its estimate, which counts
  alignment before empty 8-byte arrays that it then does not write (e.g. 8 spare bytes in a default
  JointState). Reading them back and writing again gives the exact message, without that slack.
- Speed: nested structs are inlined and runs of fixed-size fields at statically known offsets are read or
  written by one precompiled `struct.Struct` each (e.g. Odometry's 43 pose doubles in one call).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from swarm_bridge.codec.cdr_gen import ZEROS, AttrEncoder, Decoder, Encoder
from swarm_bridge.codec.errors import RecordError

if TYPE_CHECKING:
    from swarm_bridge.codec.rosdefs import RosDefinitions

__all__ = ["CDR_ERRORS", "CdrCodec", "body_cdr"]

CDR_ERRORS = (struct.error, KeyError, TypeError, ValueError, IndexError, OverflowError, AttributeError, UnicodeError)


class CdrCodec:
    """CDR bytes <-> message dict for one ROS type; `to_dict`/`to_cdr` raise RecordError naming the type."""

    def __init__(self, ros_type: str, types: RosDefinitions) -> None:
        self.ros_type = ros_type
        self._types = types
        self._fixed = types.is_fixed_size(ros_type)
        self.decode_le: Callable[[bytes, int], tuple[dict[str, Any], int]] = _compile(Decoder, types, ros_type, "<")
        self.encode_body: Callable[[dict[str, Any], bytearray], None] = _compile(Encoder, types, ros_type, "<")
        self._decode_be: Callable[[bytes, int], tuple[dict[str, Any], int]] | None = None
        self._encode_object: Callable[[Any, bytearray], None] | None = None

    def to_dict(self, raw: bytes) -> dict[str, Any]:
        """Raw CDR with its encapsulation header -> message dict."""
        if not isinstance(raw, bytes):
            raw = bytes(raw)
        kind = raw[:2]
        try:
            if kind == b"\x00\x01" and len(raw) >= 4:
                message, pos = self.decode_le(raw, 4)
            elif kind == b"\x00\x00" and len(raw) >= 4:
                if self._decode_be is None:
                    self._decode_be = _compile(Decoder, self._types, self.ros_type, ">")
                message, pos = self._decode_be(raw, 4)
            else:
                raise RecordError(f"{self.ros_type}: not CDR (encapsulation {raw[:4].hex() or 'missing'})")
        except CDR_ERRORS as exc:
            raise RecordError(f"{self.ros_type}: truncated or corrupt CDR ({len(raw)} bytes): {exc}") from None
        if pos > len(raw):
            raise RecordError(f"{self.ros_type}: truncated CDR: {len(raw)} bytes, needs {pos}")
        return message

    def to_cdr(self, message: dict[str, Any]) -> bytes:
        """Message dict -> little-endian CDR bytes with header, as rclpy serializes them."""
        out = bytearray(b"\x00\x01\x00\x00")
        try:
            self.encode_body(message, out)
        except CDR_ERRORS:
            why = self._types.explain(message, self.ros_type)
            raise RecordError(f"{why.problem} (in {self.ros_type})", field=why.field) from None
        if self._fixed:
            out += ZEROS[-len(out) & 3]
        return bytes(out)

    def object_to_cdr(self, message: Any) -> bytes:
        """A message object with one attribute per ROS field (e.g. a protobuf message) -> CDR bytes.

        Raises the underlying exception (struct.error, TypeError, ...) on a value that does not fit;
        the caller turns it into a RecordError with its own view of the message.
        """
        if self._encode_object is None:
            self._encode_object = _compile(AttrEncoder, self._types, self.ros_type, "<")
        out = bytearray(b"\x00\x01\x00\x00")
        self._encode_object(message, out)
        if self._fixed:
            out += ZEROS[-len(out) & 3]
        return bytes(out)


def _compile(
    gen_class: type[Decoder | Encoder | AttrEncoder], types: RosDefinitions, ros_type: str, endian: str
) -> Any:
    """Generate, compile and return the root function of `ros_type` (element functions come along)."""
    gen = gen_class(types, endian)
    gen.function("root", ros_type, entry_align=8)
    namespace = dict(gen.consts)
    exec(compile("\n".join(gen.source), f"<cdr {gen_class.__name__} {ros_type}>", "exec"), namespace)
    return namespace["root"]


def body_cdr(codec: CdrCodec, body: dict[str, Any]) -> bytes:
    """An envelope body as CDR; its RecordError names the field under `body.`."""
    try:
        return codec.to_cdr(body)
    except RecordError as exc:
        raise RecordError(exc.problem, field=f"body.{exc.field}" if exc.field else "body") from None


def little_endian(raw: bytes, codec: Any) -> bytes:
    """Raw CDR as the transcoders read it: little-endian. Big-endian CDR (rare) is rewritten; garbage raises
    RecordError from the decoder."""
    return raw if raw[:2] == b"\x00\x01" else bytes(codec.to_cdr(codec.to_dict(raw)))


def encode_envelope(codec: Any, transcode: Callable[..., bytes], ros_type: str, envelope: Any) -> bytes:
    """An envelope with a dict body -> record bytes: the body is written as CDR (which checks ranges, sizes
    and bounds against the ROS definition) and transcoded like a raw message."""
    if envelope.ros_type != ros_type:
        raise RecordError(f"this codec writes {ros_type}, got {envelope.ros_type}", field="ros_type")
    raw = body_cdr(codec, envelope.body)
    return transcode(raw, envelope.robot_id, envelope.stream, envelope.seq, envelope.stamp_ns,
                     envelope.schema_version)
