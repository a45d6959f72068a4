"""The signed-command frame: an Ed25519 signature on a down-route record, carried in-band so gateways can re-frame it.

The signature covers the UNFRAMED record body (`unframed_body`), so a gateway may unwrap a signed frame
(`open_signed`), re-frame the inner record (Confluent on Kafka <-> Avro single-object on MQTT) and wrap it again
(`wrap_signed`) without any private key, and the robot still verifies it. Layout in `wrap_signed`'s docstring.
Only the bytes live here; keys, signing and verifying are in `swarm_bridge.commands`.

Gateway: `reframe_signed(payload, confluent_to_single_object)`, or by hand: `key_id, signature, inner =
open_signed(payload)`, re-frame inner, `wrap_signed(key_id, signature, new_inner)`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import NamedTuple, TypeGuard

from swarm_bridge.codec.errors import FramingError
from swarm_bridge.codec.framing import DEFAULT_MAX_PAYLOAD, SINGLE_OBJECT_MAGIC, check_size

__all__ = [
    "MAX_KEY_ID",
    "SIGNATURE_BYTES",
    "SIGNED",
    "SIGNED_MAGIC",
    "SignedFrame",
    "check_key_id",
    "is_key_id",
    "is_signed",
    "open_signed",
    "reframe_signed",
    "signed_message",
    "unframed_body",
    "wrap_signed",
]

# Framing name, as it appears in FramingError.framing.
SIGNED = "signed-command"

# NUL, "SS", version 1. No record starts with it: Avro single-object starts C3 01, JSON with `{`, Protobuf never
# with a 0 tag, a record batch with 00 53 42 01; a Confluent frame 00 53 53 01 xx would mean schema id
# 0x535301xx (about 1.4 billion), which our registries (file registry, Confluent-API servers counting up from 1)
# never issue.
SIGNED_MAGIC = b"\x00SS\x01"
SIGNATURE_BYTES = 64
MAX_KEY_ID = 64
_KEY_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_CONTEXT = b"swarm_bridge command v1\x00"
_CONFLUENT_HEADER = 5  # magic 0x00 + 4-byte schema id
_SINGLE_OBJECT_HEADER = 10  # C3 01 + 8-byte fingerprint


class SignedFrame(NamedTuple):
    """A parsed signed frame: who signed (key id), the 64-byte Ed25519 signature, the inner record as framed."""

    key_id: str
    signature: bytes
    inner: bytes


def is_key_id(text: object) -> TypeGuard[str]:
    """True for a valid key id: 1..64 ASCII letters, digits, '.', '_' or '-'."""
    return isinstance(text, str) and _KEY_ID.fullmatch(text) is not None


def check_key_id(key_id: object) -> str:
    """`key_id` if valid (`is_key_id`), else FramingError naming the rule."""
    if not is_key_id(key_id):
        raise FramingError(SIGNED, f"key id must be 1..{MAX_KEY_ID} letters, digits, '.', '_' or '-' "
                           f"(got {key_id!r})")
    return key_id


def is_signed(payload: bytes | bytearray | memoryview) -> bool:
    """True when `payload` starts with the signed-frame magic (it may still be malformed)."""
    return bytes(payload[:len(SIGNED_MAGIC)]) == SIGNED_MAGIC


def wrap_signed(key_id: str, signature: bytes, inner: bytes, *, max_payload: int = DEFAULT_MAX_PAYLOAD) -> bytes:
    """Wrap a record and its signature in a signed frame (the gateway's re-wrap needs no private key).

    Layout: bytes 0-3 = 00 53 53 01 (NUL, "SS", version 1); byte 4 = key id length L (1..64); L bytes key id
    (ASCII [A-Za-z0-9._-]); 64 bytes Ed25519 signature over `signed_message(key_id, inner)`; then the inner
    record exactly as it would travel unsigned (C3 01 + fingerprint + Avro body, 00 + schema id + Avro body,
    JSON or Protobuf bytes).
    """
    key = check_key_id(key_id).encode("ascii")
    if not isinstance(signature, (bytes, bytearray)) or len(signature) != SIGNATURE_BYTES:
        raise FramingError(SIGNED, f"signature must be {SIGNATURE_BYTES} bytes")
    if not isinstance(inner, (bytes, bytearray, memoryview)) or not len(inner):
        raise FramingError(SIGNED, "inner record must be non-empty bytes")
    framed = SIGNED_MAGIC + bytes((len(key),)) + key + bytes(signature) + bytes(inner)
    check_size(SIGNED, framed, max_payload)
    return framed


def open_signed(payload: bytes | bytearray | memoryview, *, max_payload: int = DEFAULT_MAX_PAYLOAD) -> SignedFrame:
    """Split a signed frame into (key_id, signature, inner); FramingError names what is wrong. Verifies nothing."""
    if not isinstance(payload, (bytes, bytearray, memoryview)):
        raise FramingError(SIGNED, f"expected bytes, got {type(payload).__name__}")
    raw = bytes(payload)
    check_size(SIGNED, raw, max_payload)
    if not raw.startswith(SIGNED_MAGIC):
        raise FramingError(SIGNED, f"wrong magic {raw[:4].hex(' ') or '(empty)'}, expected 00 53 53 01")
    if len(raw) < 5:
        raise FramingError(SIGNED, "too short: no key id length")
    length = raw[4]
    if not 1 <= length <= MAX_KEY_ID:
        raise FramingError(SIGNED, f"key id length {length} out of range 1..{MAX_KEY_ID}")
    key_end = 5 + length
    sig_end = key_end + SIGNATURE_BYTES
    if len(raw) <= sig_end:
        raise FramingError(SIGNED, f"too short: {len(raw)} bytes, need more than {sig_end} (header, key id, "
                                   "signature, record)")
    key = raw[5:key_end]
    try:
        key_id = key.decode("ascii")
    except UnicodeDecodeError:
        raise FramingError(SIGNED, "key id is not ASCII") from None
    check_key_id(key_id)
    return SignedFrame(key_id, raw[key_end:sig_end], raw[sig_end:])


def reframe_signed(payload: bytes, reframe: Callable[[bytes], bytes], *,
                   max_payload: int = DEFAULT_MAX_PAYLOAD) -> bytes:
    """A gateway's re-framing (e.g. Confluent -> single-object) applied to the record inside a signed frame, the
    signature kept; an unsigned payload is re-framed as it is. FramingError for a malformed signed frame."""
    if not is_signed(payload):
        return reframe(payload)
    key_id, signature, inner = open_signed(payload, max_payload=max_payload)
    return wrap_signed(key_id, signature, reframe(inner), max_payload=max_payload)


def unframed_body(inner: bytes) -> bytes:
    """What the signature covers of a record: the Avro body after a single-object (C3 01 + 8) or Confluent
    (00 + 4-byte id) header, the Protobuf record after a Confluent header and its message index 00, else the
    whole record (JSON, Protobuf on MQTT). Too short for its header: whole."""
    if inner.startswith(SINGLE_OBJECT_MAGIC) and len(inner) >= _SINGLE_OBJECT_HEADER:
        return inner[_SINGLE_OBJECT_HEADER:]
    if inner[:1] == b"\x00" and len(inner) > _CONFLUENT_HEADER and inner[_CONFLUENT_HEADER] == 0:
        return inner[_CONFLUENT_HEADER + 1:]  # Protobuf: an Avro record never starts 00 (its robot id is not empty)
    if inner[:1] == b"\x00" and len(inner) >= _CONFLUENT_HEADER:
        return inner[_CONFLUENT_HEADER:]
    return inner


def signed_message(key_id: str, inner: bytes) -> bytes:
    """The bytes the Ed25519 signature is over: context, key id, NUL, the unframed record body."""
    return _CONTEXT + check_key_id(key_id).encode("ascii") + b"\x00" + unframed_body(bytes(inner))
