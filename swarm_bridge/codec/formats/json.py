"""JSON records: UTF-8 JSON, the same on MQTT and Kafka (no framing); batched as a JSON array."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from swarm_bridge.codec.formats.base import Encoding, Framing, IdLookup, SchemaLookup, WireFormat, WireShape, same
from swarm_bridge.codec.framing import frame_json_batch

if TYPE_CHECKING:
    from swarm_bridge.codec.records import RecordCodec
    from swarm_bridge.codec.rostypes import RosTypes

__all__ = ["JSON"]

CONTENT_TYPE = "application/json"


def _codec(ros_type: str, types: RosTypes) -> RecordCodec:
    from swarm_bridge.codec.records import JsonRecordCodec

    return JsonRecordCodec(ros_type, types)


def _encoder(_ros_type: str, _types: RosTypes | None, _subject: str, _register: IdLookup | None) -> Encoding:
    return Encoding(same, CONTENT_TYPE)


def _decoder(_ros_type: str, _types: RosTypes | None, _subject: str,
             _lookup: SchemaLookup | None) -> Callable[[bytes], bytes]:
    return same


SHAPE = WireShape("json", "json", ("mqtt", "kafka"), "starts '{' (0x7b)", lambda data, _ct: data[:1] == b"{")
_PLAIN = Framing(SHAPE, _encoder, _decoder)

JSON = WireFormat("json", _codec, CONTENT_TYPE, {"mqtt": _PLAIN, "kafka": _PLAIN}, frame_json_batch)
