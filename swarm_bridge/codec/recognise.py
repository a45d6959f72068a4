"""How a reader recognises a record's wire format by its first bytes (and MQTT 5 content type): the containers,
then each format's shapes from the formats table (`codec.formats.FORMATS`, one `Framing.shape` per transport).

| shape              | format   | travels on  | recognised by                                          |
|--------------------|----------|-------------|--------------------------------------------------------|
| record-batch       | (any)    | mqtt        | starts 00 53 42 01; the format is its first record's   |
| signed             | (any)    | mqtt, kafka | starts 00 53 53 01; the format is its inner record's   |
| avro-single-object | avro     | mqtt        | starts C3 01, then an 8-byte schema fingerprint        |
| avro-confluent     | avro     | kafka       | starts 00, then a 4-byte schema id, then not 00        |
| protobuf-confluent | protobuf | kafka       | starts 00, a 4-byte schema id, message index 00        |
| json               | json     | mqtt, kafka | starts `{` (0x7b)                                      |
| protobuf-mqtt      | protobuf | mqtt        | MQTT 5 content type application/x-protobuf             |

Readers pick a decoder with `recognise`, and `FormatWatch` names a record of another format than the configured
one once, at the first such record (which side sends what, which key to change), then only counts them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from swarm_bridge.codec.formats import FORMATS
from swarm_bridge.codec.formats.base import WireShape
from swarm_bridge.codec.framing import BATCH_MAGIC, split_batch
from swarm_bridge.codec.signing import SIGNED_MAGIC, open_signed

__all__ = ["SHAPES", "FormatMismatch", "FormatWatch", "WireShape", "expected_shape", "recognise"]


def _signed_inner(data: bytes) -> bytes:
    return open_signed(data).inner


# Containers of records: tested first (a batch and a signed frame start with 00, like Confluent).
CONTAINERS: tuple[WireShape, ...] = (
    WireShape("record-batch", None, ("mqtt",), "starts 00 53 42 01",
              lambda data, _ct: data.startswith(BATCH_MAGIC), lambda data: split_batch(data, max_payload=0)[0]),
    WireShape("signed", None, ("mqtt", "kafka"), "starts 00 53 53 01",
              lambda data, _ct: data.startswith(SIGNED_MAGIC), _signed_inner),
)

_RECORDS = list(dict.fromkeys(f.shape for wire in FORMATS.values() for f in wire.framings.values()))

# Order is precedence: containers, then the records' shapes from the formats table (`codec.formats.FORMATS`),
# those told by their first bytes before those told by content type alone.
SHAPES: tuple[WireShape, ...] = CONTAINERS + tuple(sorted(_RECORDS, key=lambda s: s.by_content_type))


def recognise(data: bytes, content_type: str | None = None, *, unwrap: bool = True) -> WireShape | None:
    """The shape of `data` (None: none of SHAPES); with `unwrap`, a batch or signed frame answers for the record
    inside it (the container itself when that record cannot be read)."""
    data = bytes(data)
    shape = next((s for s in SHAPES if s.test(data, content_type)), None)
    if shape is None or shape.inner is None or not unwrap:
        return shape
    try:
        inner = shape.inner(data)
    except Exception:  # a damaged container: say what it is, its decoder names the damage
        return shape
    return recognise(inner, content_type) or shape


def expected_shape(fmt: str, transport: str) -> WireShape | None:
    """The shape records of format `fmt` take on `transport` (None: that format does not travel there)."""
    wire = FORMATS.get(fmt)
    framing = None if wire is None else wire.framings.get(transport)
    return None if framing is None else framing.shape


@dataclass(frozen=True)
class FormatMismatch:
    """A record whose shape is not the one the reader is configured for; `first`: the first of its shape."""

    reader: str
    fmt: str
    transport: str
    got: WireShape
    key: str
    sender: str
    where: str
    first: bool

    def __str__(self) -> str:
        expected = expected_shape(self.fmt, self.transport)
        wanted = f"{self.fmt} ({expected.looks})" if expected else self.fmt
        where = f" ({self.where})" if self.where else ""
        head = (f"{self.reader}: format mismatch at the first such record{where}: it is "
                f"{self.got.format} ({self.got.looks}), but {self.key} is {wanted}. ")
        return (f"{head}Sent by {self.sender}. Fix: set {self.key} to {self.got.format}, or make that side send "
                f"{self.fmt}. Further records of this shape are counted (format mismatch), not logged")


@dataclass
class FormatWatch:
    """Watches one reader's records: `mismatch(record)` after a record failed to decode (or for every record
    where any format is read) says whether it is in another format than `fmt` on `transport`.

    `key`: the config key of this side that chose `fmt`, e.g. "robot_format (coordinator config)";
    `sender`: who writes these records and with which key, e.g. "the robot bridges (routes[].format)"."""

    reader: str
    fmt: str
    transport: str
    key: str
    sender: str
    counts: Counter[str] = field(default_factory=Counter)

    def mismatch(self, data: bytes, content_type: str | None = None, *, where: str = "") -> FormatMismatch | None:
        """The mismatch `data` is (counted), or None when it has the expected shape or none known on this transport
        (e.g. bytes 00 ... on MQTT are no Confluent record, just malformed)."""
        got = recognise(data, content_type)
        if (got is None or got.format is None or self.transport not in got.transports
                or got == expected_shape(self.fmt, self.transport)):
            return None
        self.counts[got.name] += 1
        return FormatMismatch(self.reader, self.fmt, self.transport, got, self.key, self.sender, where,
                              self.counts[got.name] == 1)

    @property
    def total(self) -> int:
        """Records in another format seen so far."""
        return sum(self.counts.values())
