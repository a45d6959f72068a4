"""What a route puts on the wire: the record codec of its format, framed for its transport, both looked up in the
formats table (`codec.formats.FORMATS`, one module per format under `codec/formats/`):

| format   | MQTT (no registry round trip)                     | Kafka (Confluent wire format)          |
|----------|---------------------------------------------------|----------------------------------------|
| json     | UTF-8 JSON record, content type application/json  | the same JSON, no framing              |
| avro     | single-object encoding: C3 01, fingerprint, body  | magic 0, schema id (registered), body  |
| protobuf | serialized record; content type names the message | magic 0, schema id, message index 00, record |

Protobuf on Kafka registers each .proto the record imports as a subject of its own, referenced by the record's.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from swarm_bridge.codec.envelope import Envelope
from swarm_bridge.codec.errors import CodecError
from swarm_bridge.codec.formats import FORMATS
from swarm_bridge.codec.formats.avro import AVRO
from swarm_bridge.codec.formats.base import IdLookup, SchemaLookup
from swarm_bridge.codec.records import RecordCodec, RecordFormat, record_codec
from swarm_bridge.codec.rostypes import RosTypes

if TYPE_CHECKING:
    from swarm_bridge.codec.registry import RegisteredSchema, Schema, SchemaRegistry

__all__ = [
    "RegistryIds", "WireDecoder", "WireEncoder", "registry_ids", "route_subject", "stamp_reader", "wire_decoder",
    "wire_encoder",
]

AVRO_CONTENT_TYPE = AVRO.content_type


@dataclass(frozen=True)
class WireEncoder:
    """Raw CDR of one route's ROS type -> the bytes its transport carries, with their MQTT metadata."""

    codec: RecordCodec
    frame: Callable[[bytes], bytes]
    content_type: str
    user_properties: tuple[tuple[str, str], ...] = field(default=())

    def encode_cdr(self, raw: bytes, *, robot_id: str, stream: str, seq: int, stamp_ns: int) -> bytes:
        return self.frame(self.codec.encode_cdr(raw, robot_id=robot_id, stream=stream, seq=seq, stamp_ns=stamp_ns))

    def encode(self, envelope: Envelope) -> bytes:
        """An envelope with a dict body (what a coordinator sends) -> wire bytes."""
        return self.frame(self.codec.encode(envelope))


def wire_encoder(ros_type: str, fmt: RecordFormat, transport: str, *, subject: str,
                 register: IdLookup | None = None, types: RosTypes | None = None,
                 pin: RegisteredSchema | None = None) -> WireEncoder:
    """The encoder of a route (its format's framing on `transport`, `codec.formats.FORMATS`);
    `register(subject, schema) -> registration` is needed where the framing carries a registry id (on Kafka);
    `pin`: a registered version of the subject the records are written in instead (resolved from the route's own)."""
    codec = record_codec(ros_type, fmt, types)
    encoding = FORMATS[fmt].framing(transport, ros_type).encoder(ros_type, types, subject, register)
    if pin is None:
        return WireEncoder(codec, encoding.frame, encoding.content_type, encoding.user_properties)
    pinning = FORMATS[fmt].pin
    if pinning is None:
        raise CodecError(f"{ros_type}: format {fmt} cannot be pinned to a registered version (avro can)")
    return WireEncoder(codec, pinning(ros_type, types, transport, pin), encoding.content_type,
                       encoding.user_properties)


class RegistryIds:
    """`(subject, schema) -> RegisteredSchema` (id, version) against the registry at `location`, registering the
    schema when it is new (an identical schema again returns its registration). One per process: opened at first
    use, closed by `close()`."""

    def __init__(self, location: str) -> None:
        self.location = location
        self._registry: SchemaRegistry | None = None
        self._lock = threading.Lock()

    def __call__(self, subject: str, schema: object) -> RegisteredSchema:
        from swarm_bridge.codec.registry import Schema

        if not isinstance(schema, Schema):
            raise TypeError(f"expected a registry Schema, got {type(schema).__name__}")
        return self.registry.register(subject, schema)

    def by_id(self, schema_id: int) -> Schema:
        """The schema with registry id `schema_id` (a writer's, to resolve its records)."""
        return self.registry.by_id(schema_id)

    def version(self, subject: str, version: int) -> RegisteredSchema:
        """One registered version of `subject` (a route pinned to it)."""
        return self.registry.version(subject, version)

    def by_fingerprint(self, fingerprint: int) -> RegisteredSchema:
        """The Avro schema with this fingerprint (a writer's on MQTT, to resolve its records)."""
        return self.registry.by_fingerprint(fingerprint)

    @property
    def registry(self) -> SchemaRegistry:
        """The registry, opened on first use."""
        with self._lock:
            if self._registry is None:
                from swarm_bridge.codec.registry import open_registry

                self._registry = open_registry(self.location)
            return self._registry

    def close(self) -> None:
        """Close the registry (its HTTP session, for a Confluent-API server); a later call opens it again."""
        with self._lock:
            registry, self._registry = self._registry, None
        if registry is not None:
            registry.close()


def registry_ids(location: str) -> RegistryIds:
    """The registry ids of `location`; the caller owns it and closes it when it stops."""
    return RegistryIds(location)


def route_subject(strategy: str, topic: str, ros_type: str) -> str:
    """The registry subject of records of `ros_type` on Kafka topic `topic` under the strategy named `strategy`
    (its record name is the envelope record's full name, `swarm_bridge.record.<pkg>.msg.<Name>`)."""
    from swarm_bridge.codec.avro import record_name
    from swarm_bridge.codec.registry import subject_name_strategy

    return subject_name_strategy(strategy)(topic, record_name(ros_type))


@dataclass(frozen=True)
class WireDecoder:
    """Bytes as a route's transport carries them -> Envelope, refusing records of another schema."""

    codec: RecordCodec
    unframe: Callable[[bytes], bytes]

    def decode(self, payload: bytes) -> Envelope:
        return self.codec.decode(self.unframe(payload))


def wire_decoder(ros_type: str, fmt: RecordFormat, transport: str, *, subject: str,
                 lookup: SchemaLookup | None = None, types: RosTypes | None = None) -> WireDecoder:
    """The decoder matching `wire_encoder`; `lookup` finds the reader's id (Kafka) and the schemas of writers of
    other versions, whose records are resolved to the reader's (Avro schema resolution)."""
    codec = record_codec(ros_type, fmt, types)
    return WireDecoder(codec, FORMATS[fmt].framing(transport, ros_type).decoder(ros_type, types, subject, lookup))


def stamp_reader(ros_type: str, types: RosTypes) -> Callable[[bytes], int]:
    """The source stamp (ns) of raw CDR: its top-level `header` (std_msgs/Header) or `stamp`
    (builtin_interfaces/Time); 0 when it has none, or for a zero or unreadable stamp.

    Read in place when the field comes first (the ROS habit); else by decoding the message."""
    stamped = [f for f in types.fields(ros_type) if f.kind == "nested" and (f.name, f.type) in (
        ("header", "std_msgs/msg/Header"), ("stamp", "builtin_interfaces/msg/Time"))]
    if not stamped:
        return _no_stamp
    if stamped[0] is not types.fields(ros_type)[0]:
        return _decoded_stamp(types, ros_type, stamped[0].name)

    def read(raw: bytes) -> int:
        if len(raw) < 12:
            return 0
        little = bool(raw[1] & 1)  # encapsulation id: CDR_LE = 0x0001
        sec = int.from_bytes(raw[4:8], "little" if little else "big", signed=True)
        nanosec = int.from_bytes(raw[8:12], "little" if little else "big")
        return max(0, sec * 1_000_000_000 + nanosec)

    return read


def _no_stamp(_raw: bytes) -> int:
    return 0


def _decoded_stamp(types: RosTypes, ros_type: str, name: str) -> Callable[[bytes], int]:
    codec = types.cdr_codec(ros_type)

    def read(raw: bytes) -> int:
        try:
            value = codec.to_dict(raw)[name]
        except (CodecError, KeyError):
            return 0
        stamp = value["stamp"] if name == "header" else value
        return max(0, int(stamp["sec"]) * 1_000_000_000 + int(stamp["nanosec"]))

    return read
