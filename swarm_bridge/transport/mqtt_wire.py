"""MQTT 5 framing on the compiled `mqtt5` codec: split a byte stream into packets, never crash on bad bytes.

A packet is a fixed header (type and flags byte, Remaining Length as a variable byte integer of 1-4 bytes)
and Remaining Length bytes. `Frames.feed` decodes every whole packet in the bytes received so far and keeps
the incomplete tail; a packet over the client's Maximum Packet Size or one the codec rejects raises
`Malformed` with what was wrong, so the caller can disconnect with the right reason code.
"""

from __future__ import annotations

import enum
from typing import Any

import mqtt5

from swarm_bridge.errors import SwarmBridgeError

__all__ = ["Frames", "Malformed", "reason_name", "set_duplicate"]

_REASONS: dict[int, str] = {}
for _codes in (mqtt5.PubAckReasonCode, mqtt5.SubAckReasonCode, mqtt5.ConnAckReasonCode,
               mqtt5.DisconnectReasonCode, mqtt5.UnsubAckReasonCode):
    for _name in dir(_codes):  # the codec's enums are Rust classes: their members are upper-case attributes
        if _name.isupper():
            _REASONS.setdefault(int(getattr(_codes, _name)), _name)
_REASONS[0] = "SUCCESS"


def reason_name(code: int) -> str:
    """The MQTT 5 name of a reason code (e.g. 0x86 -> BAD_USER_NAME_OR_PASSWORD), or UNKNOWN."""
    return _REASONS.get(int(code), "UNKNOWN")


class MalformedReason(enum.IntEnum):
    """The DISCONNECT reason the client sends for a bad packet from the broker."""

    MALFORMED_PACKET = 0x81
    PROTOCOL_ERROR = 0x82
    PACKET_TOO_LARGE = 0x95


class Malformed(SwarmBridgeError, ValueError):
    """Bytes from the broker that are not one valid MQTT 5 packet; `reason` goes into our DISCONNECT."""

    def __init__(self, problem: str, reason: MalformedReason = MalformedReason.MALFORMED_PACKET) -> None:
        self.problem, self.reason = problem, reason
        super().__init__(problem)


def set_duplicate(packet: bytes) -> bytes:
    """The same PUBLISH with the DUP flag set (bit 3 of the first byte), for a redelivery."""
    return bytes([packet[0] | 0x08]) + packet[1:]


def _declared_size(data: memoryview) -> int | None:
    """The whole size (header + Remaining Length) announced at the start of `data`, None while incomplete."""
    value, shift = 0, 0
    for i in range(1, min(len(data), 5)):
        byte = data[i]
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return 1 + i + value
        shift += 7
    if len(data) >= 5:
        raise Malformed("Remaining Length longer than 4 bytes")
    return None


def _is_panic(exc: BaseException) -> bool:
    """The codec's Rust panics reach Python as pyo3's PanicException (a BaseException), e.g. on bad UTF-8."""
    return type(exc).__name__ == "PanicException"


class Frames:
    """Turns received bytes into MQTT 5 packets; `max_size` is the Maximum Packet Size we told the broker."""

    def __init__(self, max_size: int | None) -> None:
        self.max_size = max_size
        self._tail = b""

    def reset(self) -> None:
        """Forget a partial packet (a new connection starts a new stream)."""
        self._tail = b""

    def feed(self, data: bytes) -> tuple[list[Any], Malformed | None]:
        """Every whole packet in what was received so far, in order, and what was wrong with the bytes after
        them (None when nothing): the packets before a bad one are still good and handled."""
        buf = self._tail + data if self._tail else data
        view, pos, end, packets = memoryview(buf), 0, len(buf), []
        limit = self.max_size
        read = mqtt5.read
        try:
            while pos < end:
                packet, size = self._one(read, view, pos, end, limit)
                if packet is None:
                    break
                packets.append(packet)
                pos += size
        except Malformed as exc:
            self._tail = b""
            return packets, exc
        self._tail = bytes(view[pos:]) if pos < end else b""
        return packets, None

    @staticmethod
    def _one(read: Any, view: memoryview, pos: int, end: int, limit: int | None) -> tuple[Any, int]:
        """The packet at `pos` and its size, (None, 0) while incomplete; raises `Malformed`."""
        try:
            packet, size = read(view[pos:])
        except IndexError:  # not enough bytes yet: keep the tail, unless its header already says too big
            declared = _declared_size(view[pos:])
            if declared is not None and declared <= end - pos:
                raise Malformed("a field runs past the end of its packet") from None
            if declared is not None and limit is not None and declared > limit:
                raise Malformed(f"packet of {declared} bytes over our Maximum Packet Size {limit}",
                                MalformedReason.PACKET_TOO_LARGE) from None
            return None, 0
        except (ValueError, UnicodeError) as exc:
            raise Malformed(f"{exc} (first byte 0x{view[pos]:02x})") from None
        except BaseException as exc:
            if not _is_panic(exc):
                raise
            raise Malformed(f"undecodable packet, e.g. a string that is not UTF-8 (first byte "
                            f"0x{view[pos]:02x}): {exc}") from None
        if limit is not None and size > limit:
            raise Malformed(f"packet of {size} bytes over our Maximum Packet Size {limit}",
                            MalformedReason.PACKET_TOO_LARGE)
        return packet, size
