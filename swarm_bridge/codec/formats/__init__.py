"""Wire formats as one table: `FORMATS[name]` gives a format's record codec, content type, framing per transport
(with the shape a reader recognises it by) and batching. Adding a format: a module here defining its
`WireFormat`, and one entry below (plus its name in `config.common.RecordFormatName`)."""

from __future__ import annotations

from swarm_bridge.codec.errors import CodecError
from swarm_bridge.codec.formats.avro import AVRO
from swarm_bridge.codec.formats.base import Encoding, Framing, WireFormat, WireShape
from swarm_bridge.codec.formats.json import JSON
from swarm_bridge.codec.formats.protobuf import PROTOBUF

__all__ = ["FORMATS", "Encoding", "Framing", "WireFormat", "WireShape", "wire_format"]

# The order messages name formats in; readers test the shapes recognised by their first bytes before those
# recognised by content type alone (`codec.recognise.SHAPES`).
FORMATS: dict[str, WireFormat] = {f.name: f for f in (AVRO, PROTOBUF, JSON)}


def wire_format(name: str) -> WireFormat:
    """The format named `name`; CodecError naming the valid ones."""
    found = FORMATS.get(name)
    if found is None:
        raise CodecError(f"record format {name!r} is not valid. Valid options are: {', '.join(FORMATS)}")
    return found
