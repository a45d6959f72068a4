"""What a wire format is: its record codec, content type, framing per transport (each with the shape a reader
recognises), and how its records share one MQTT message. The table of them is `codec.formats.FORMATS`."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from swarm_bridge.codec.errors import CodecError

if TYPE_CHECKING:
    from swarm_bridge.codec.records import RecordCodec
    from swarm_bridge.codec.registry import RegisteredSchema, Schema
    from swarm_bridge.codec.rostypes import RosTypes

__all__ = ["DecoderFactory", "EncoderFactory", "Encoding", "Framing", "IdLookup", "PinFactory", "SchemaLookup",
           "WireFormat", "WireShape", "content_type_is", "same"]

IdLookup = Callable[[str, Any], "RegisteredSchema"]
"""`(subject, schema) -> its registration (id, version)`: registers (encoder side) or finds (decoder side) a schema."""


class SchemaLookup(Protocol):
    """What a decoder asks of the registry: its own schema's registration, and a writer's schema by registry id
    (Kafka) or Avro fingerprint (MQTT), to resolve records of another version to its own (`codec.wire.RegistryIds`)."""

    def __call__(self, subject: str, schema: Any, /) -> RegisteredSchema: ...

    def by_id(self, schema_id: int) -> Schema: ...

    def by_fingerprint(self, fingerprint: int) -> RegisteredSchema: ...


@dataclass(frozen=True)
class WireShape:
    """One way records travel: the record format it carries (None: a container of records), on which transports,
    how it is recognised (said for humans in `looks`, tested by `test`), and how to get at a container's record."""

    name: str
    format: str | None
    transports: tuple[str, ...]
    looks: str
    test: Callable[[bytes, str | None], bool] = field(repr=False)
    inner: Callable[[bytes], bytes] | None = field(default=None, repr=False)
    by_content_type: bool = False  # recognised by the MQTT 5 content type alone (tested after the byte shapes)

    def __str__(self) -> str:
        return f"{self.name} ({self.looks})"


def content_type_is(media: str) -> Callable[[bytes, str | None], bool]:
    """A shape test: the MQTT 5 content type names `media` (parameters after ';' ignored)."""
    def test(_data: bytes, content_type: str | None) -> bool:
        return bool(content_type) and str(content_type).split(";")[0].strip().lower() == media

    return test


def same(body: bytes) -> bytes:
    """No framing: the record's bytes travel as they are."""
    return body


class Encoding(NamedTuple):
    """The encoder side of one route's framing: record bytes -> wire bytes, and the MQTT 5 metadata."""

    frame: Callable[[bytes], bytes]
    content_type: str
    user_properties: tuple[tuple[str, str], ...] = ()


# (ros_type, types, transport, pinned registration) -> record bytes of the route's own schema -> wire bytes in the
# pinned version (a route pinned for a rollout or rollback).
PinFactory = Callable[[str, "RosTypes | None", str, "RegisteredSchema"], Callable[[bytes], bytes]]

# (ros_type, types, subject, register or lookup) -> the route's framing, encoder or decoder side.
EncoderFactory = Callable[[str, "RosTypes | None", str, "IdLookup | None"], Encoding]
DecoderFactory = Callable[[str, "RosTypes | None", str, "SchemaLookup | None"], Callable[[bytes], bytes]]


@dataclass(frozen=True)
class Framing:
    """Records of one format on one transport: the shape a reader recognises, how a route frames and unframes."""

    shape: WireShape
    encoder: EncoderFactory
    decoder: DecoderFactory


@dataclass(frozen=True)
class WireFormat:
    """One record format: `codec(ros_type, types)` makes its record codec; `content_type` is its MQTT 5 media
    type; `framings` say how it travels per transport (a transport without one refuses it, with the reason in
    `refusals` when there is one); `batch` packs records of one stream into one MQTT message."""

    name: str
    codec: Callable[[str, RosTypes], RecordCodec]
    content_type: str
    framings: Mapping[str, Framing]
    batch: Callable[[Sequence[bytes]], bytes]
    refusals: Mapping[str, str] = field(default_factory=dict)
    pin: PinFactory | None = None  # how a route writes a pinned registered version; None: it cannot be pinned

    def framing(self, transport: str, ros_type: str) -> Framing:
        """How this format travels on `transport`; CodecError naming the reason when it does not."""
        found = self.framings.get(transport)
        if found is None:
            reason = self.refusals.get(transport) or (f"format {self.name} does not travel on {transport} (it "
                                                      f"travels on {', '.join(self.framings)})")
            raise CodecError(f"{ros_type}: {reason}")
        return found
