"""MQTT 5 properties without paho's per-packet cost: a faster reader for received ones, packed-once sent ones.

paho 2.2 builds its name tables anew for every packet and finds each property by scanning them with
`str.replace`: about 40 % of the gateway's time per message. `ReceivedProperties` reads the same bytes with
tables built once and gives the same attributes (ContentType, UserProperty, ...), checks and errors.
paho also packs a message's properties again on every publish; a stream's never change (`PackedProperties`).
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Sequence
from typing import Any

from paho.mqtt.exception import MalformedPacket, MQTTException
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

__all__ = ["PackedProperties", "ReceivedProperties", "install_received_properties"]

log = logging.getLogger(__name__)

_TABLES = Properties(PacketTypes.PUBLISH)
_BYTE, _INT16, _INT32, _VARINT, _BINARY, _UTF8, _PAIR = range(7)
assert _TABLES.types[_PAIR] == "UTF-8 String Pair"  # the type codes below are paho's indexes
_MULTIPLE = frozenset((11, 38))  # Subscription Identifier, User Property
# identifier -> (attribute name, value type, packet types it may appear in)
_BY_IDENT: dict[int, tuple[str, int, frozenset[int]]] = {
    ident: (name.replace(" ", ""), _TABLES.properties[ident][0], frozenset(_TABLES.properties[ident][1]))
    for name, ident in _TABLES.names.items()
}
_IDENT_BY_ATTR = {attr: ident for ident, (attr, _t, _p) in _BY_IDENT.items()}
_RANGES = {"TopicAlias": (1, 65535), "ReceiveMaximum": (1, 65535), "TopicAliasMaximum": (0, 65535),
           "MaximumPacketSize": (1, 268435455), "SubscriptionIdentifier": (1, 268435455),
           "RequestResponseInformation": (0, 1), "RequestProblemInformation": (0, 1),
           "PayloadFormatIndicator": (0, 1)}


def _varint(buffer: bytes | bytearray, pos: int) -> tuple[int, int]:
    """An MQTT variable byte integer at `pos` and the position after it."""
    value = shift = 0
    for i in range(4):
        byte = buffer[pos + i]
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos + i + 1
        shift += 7
    raise MalformedPacket("variable byte integer longer than 4 bytes")


def _utf8(buffer: bytes | bytearray, pos: int, end: int) -> tuple[str, int]:
    if end - pos < 2:
        raise MalformedPacket("Not enough data to read string length")
    (size,) = struct.unpack_from("!H", buffer, pos)
    pos += 2
    if size > end - pos:
        raise MalformedPacket("Length delimited string too long")
    text = bytes(buffer[pos:pos + size]).decode("utf-8")  # strict: refuses D800-DFFF (MQTT-1.5.4-1)
    if "\x00" in text:
        raise MalformedPacket("[MQTT-1.5.4-2] Null found in UTF-8 data")
    if "\ufeff" in text:
        raise MalformedPacket("[MQTT-1.5.4-3] U+FEFF in UTF-8 data")
    return text, pos + size


class ReceivedProperties(Properties):
    """paho's Properties with tables shared by all instances and a one-pass `unpack`."""

    types = _TABLES.types
    names = _TABLES.names
    properties = _TABLES.properties

    def __init__(self, packetType: int) -> None:
        object.__setattr__(self, "packetType", packetType)

    def getIdentFromName(self, compressedName: str) -> int:
        return _IDENT_BY_ATTR.get(compressedName.replace(" ", ""), -1)

    def clear(self) -> None:
        packet_type = self.packetType
        self.__dict__.clear()
        object.__setattr__(self, "packetType", packet_type)

    def unpack(self, buffer: bytes | bytearray) -> tuple[ReceivedProperties, int]:
        """Read the properties at the front of `buffer`; (self, bytes used). MalformedPacket, struct.error,
        IndexError, KeyError or MQTTException on bad bytes, as paho's own."""
        self.clear()
        size, pos = _varint(buffer, 0)
        used = pos + size
        end = used
        if end > len(buffer):
            raise MalformedPacket(f"properties of {size} bytes, {len(buffer) - pos} left")
        values = self.__dict__
        while pos < end:
            ident, pos = _varint(buffer, pos)
            attr, kind, packets = _BY_IDENT[ident]  # KeyError: an unknown property, as in paho
            value: Any
            if kind == _BYTE:
                value, pos = buffer[pos], pos + 1
            elif kind == _INT16:
                (value,), pos = struct.unpack_from("!H", buffer, pos), pos + 2
            elif kind == _INT32:
                (value,), pos = struct.unpack_from("!L", buffer, pos), pos + 4
            elif kind == _VARINT:
                value, pos = _varint(buffer, pos)
            elif kind == _BINARY:
                if end - pos < 2:
                    raise MalformedPacket("Not enough data to read binary data length")
                (length,) = struct.unpack_from("!H", buffer, pos)
                if length > end - pos - 2:
                    raise MalformedPacket("Length delimited binary data too long")
                value, pos = bytes(buffer[pos + 2:pos + 2 + length]), pos + 2 + length
            elif kind == _UTF8:
                value, pos = _utf8(buffer, pos, end)
            else:
                first, pos = _utf8(buffer, pos, end)
                second, pos = _utf8(buffer, pos, end)
                value = (first, second)
            if pos > end:
                raise MalformedPacket(f"property {attr} runs past the properties' length")
            if self.packetType not in packets:
                raise MQTTException(f"Property {attr} does not apply to packet type "
                                    f"{PacketTypes.Names[self.packetType]}")
            bounds = _RANGES.get(attr)
            if bounds is not None and not bounds[0] <= value <= bounds[1]:
                raise MQTTException(f"{attr} property value must be in the range {bounds[0]}-{bounds[1]}")
            if ident in _MULTIPLE:
                values.setdefault(attr, []).append(value)
            elif attr in values:
                raise MQTTException(f"Property '{attr}' must not exist more than once")
            else:
                values[attr] = value
        return self, used


class PackedProperties(Properties):
    """PUBLISH properties (content type, user properties) packed once and reused by every publish."""

    _packed: bytes

    def __init__(self, content_type: str, user_properties: Sequence[tuple[str, str]] = ()) -> None:
        super().__init__(PacketTypes.PUBLISH)
        self.ContentType = content_type
        if user_properties:
            self.UserProperty = list(user_properties)
        object.__setattr__(self, "_packed", bytes(super().pack()))  # paho's __setattr__ takes property names only

    def pack(self) -> bytes:
        return self._packed


def install_received_properties() -> bool:
    """Make paho decode received properties with `ReceivedProperties` (process-wide; True if in place).

    paho's decoder looks the class up by name in its private `paho.mqtt._packet`; a paho without that module or
    name keeps its own decoder (correct, only slower), so the robot side never depends on paho's internals."""
    try:
        import paho.mqtt._packet as paho_packet
    except ImportError:
        log.info("this paho-mqtt has no paho.mqtt._packet; keeping paho's own MQTT 5 property decoder")
        return False
    current = getattr(paho_packet, "Properties", None)
    if current is ReceivedProperties:
        return True
    if current is not Properties:
        log.info("paho.mqtt._packet.Properties is %r; keeping paho's own MQTT 5 property decoder", current)
        return False
    paho_packet.Properties = ReceivedProperties  # type: ignore[misc]
    return True
