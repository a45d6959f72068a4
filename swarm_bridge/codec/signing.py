"""Command authenticity: Ed25519 signatures on down-route records, carried in-band so gateways can re-frame them.

The signature covers the UNFRAMED record body (`unframed_body`), so a gateway may unwrap a signed frame
(`open_signed`), re-frame the inner record (Confluent on Kafka <-> Avro single-object on MQTT) and wrap it again
(`wrap_signed`) without any private key, and the robot still verifies it. Layout in `wrap_signed`'s docstring.

Coordinator: `CommandSigner.from_file("keys/coord-2026a.pem").sign(record)`.
Gateway: `reframe_signed(payload, confluent_to_single_object)`, or by hand: `key_id, signature, inner =
open_signed(payload)`, re-frame inner, `wrap_signed(key_id, signature, new_inner)`.
Robot: `CommandVerifier(Keyring.from_dir("trusted/"), required=True).verify(payload) -> (verdict or None, inner)`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from swarm_bridge.codec.errors import CodecError, FramingError
from swarm_bridge.codec.framing import DEFAULT_MAX_PAYLOAD, SINGLE_OBJECT_MAGIC, check_size
from swarm_bridge.routing.admission import Verdict

__all__ = [
    "PRIVATE_SUFFIX",
    "PUBLIC_SUFFIX",
    "SIGNED",
    "SIGNED_MAGIC",
    "CommandSigner",
    "CommandVerifier",
    "Keyring",
    "KeyringError",
    "SignedFrame",
    "generate_key_pair",
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

PRIVATE_SUFFIX = ".pem"
PUBLIC_SUFFIX = ".pub.pem"


class SignedFrame(NamedTuple):
    """A parsed signed frame: who signed (key id), the 64-byte Ed25519 signature, the inner record as framed."""

    key_id: str
    signature: bytes
    inner: bytes


class KeyringError(CodecError):
    """A key file that cannot be used: names the file and the fix, never the key's content."""

    def __init__(self, source: str | Path, problem: str, fix: str) -> None:
        self.source, self.problem, self.fix = str(source), problem, fix
        super().__init__(f"{source}: {problem}. Fix: {fix}")


def _check_key_id(key_id: object) -> str:
    if not isinstance(key_id, str) or not _KEY_ID.fullmatch(key_id):
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
    key = _check_key_id(key_id).encode("ascii")
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
    _check_key_id(key_id)
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
    (00 + 4-byte id) header, else the whole record (JSON, Protobuf on MQTT). Too short for its header: whole."""
    if inner.startswith(SINGLE_OBJECT_MAGIC) and len(inner) >= _SINGLE_OBJECT_HEADER:
        return inner[_SINGLE_OBJECT_HEADER:]
    if inner[:1] == b"\x00" and len(inner) >= _CONFLUENT_HEADER:
        return inner[_CONFLUENT_HEADER:]
    return inner


def signed_message(key_id: str, inner: bytes) -> bytes:
    """The bytes the Ed25519 signature is over: context, key id, NUL, the unframed record body."""
    return _CONTEXT + _check_key_id(key_id).encode("ascii") + b"\x00" + unframed_body(bytes(inner))


@dataclass(frozen=True)
class CommandSigner:
    """Signs down-route records with one private key under its key id (the coordinator's side)."""

    private_key: Ed25519PrivateKey = field(repr=False)
    key_id: str

    def __post_init__(self) -> None:
        _check_key_id(self.key_id)
        if not isinstance(self.private_key, Ed25519PrivateKey):
            raise KeyringError(f"key {self.key_id}", f"expected an Ed25519 private key, got "
                               f"{type(self.private_key).__name__}", "generate one: swarm-bridge keys generate")

    @classmethod
    def from_file(cls, path: str | Path, key_id: str | None = None) -> CommandSigner:
        """Load a PKCS8 PEM private key; the key id defaults to the file name without `.pem` (`<id>.pem`)."""
        path = Path(path)
        key_id = key_id or path.name.removesuffix(PRIVATE_SUFFIX)
        return cls(_load_private(path), key_id)

    def sign(self, inner: bytes) -> bytes:
        """The signed frame of one record (framed as it travels: Confluent, single-object, JSON or Protobuf)."""
        if not isinstance(inner, (bytes, bytearray, memoryview)) or not len(inner):
            raise FramingError(SIGNED, "inner record must be non-empty bytes")
        inner = bytes(inner)
        return wrap_signed(self.key_id, self.private_key.sign(signed_message(self.key_id, inner)), inner)

    def public_pem(self) -> bytes:
        """The matching public key, PEM SubjectPublicKeyInfo (what robots trust as `<key_id>.pub.pem`)."""
        return _public_pem(self.private_key.public_key())


@dataclass(frozen=True)
class Keyring:
    """Key id -> Ed25519 public key: the signers a robot trusts. A key id not in it is an unknown key."""

    keys: Mapping[str, Ed25519PublicKey] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for key_id, key in self.keys.items():
            _check_key_id(key_id)
            if not isinstance(key, Ed25519PublicKey):
                raise KeyringError(f"key {key_id}", f"expected an Ed25519 public key, got {type(key).__name__}",
                                   "give the public key from swarm-bridge keys generate")

    @classmethod
    def from_dir(cls, directory: str | Path) -> Keyring:
        """Every `<key_id>.pub.pem` file in `directory` (other files are ignored)."""
        directory = Path(directory).expanduser()
        if not directory.is_dir():
            raise KeyringError(directory, "no such directory", "create it and put the trusted <key_id>.pub.pem "
                               "files in it, or fix commands.trusted_keys")
        return cls.from_files(sorted(directory.glob(f"*{PUBLIC_SUFFIX}")))

    @classmethod
    def from_files(cls, paths: Iterable[str | Path]) -> Keyring:
        """Public key files named `<key_id>.pub.pem`; the key id is the name without the suffix."""
        keys: dict[str, Ed25519PublicKey] = {}
        for raw_path in paths:
            path = Path(raw_path).expanduser()
            if not path.name.endswith(PUBLIC_SUFFIX):
                raise KeyringError(path, f"a trusted key file must be named <key_id>{PUBLIC_SUFFIX}",
                                   "rename it to the signer's key id, e.g. coordinator-2026a.pub.pem")
            key_id = path.name.removesuffix(PUBLIC_SUFFIX)
            if not _KEY_ID.fullmatch(key_id):
                raise KeyringError(path, f"key id {key_id!r} is not 1..{MAX_KEY_ID} letters, digits, '.', '_' or '-'",
                                   "rename the file")
            if key_id in keys:
                raise KeyringError(path, f"key id {key_id!r} is given twice", "list each key file once")
            keys[key_id] = _load_public(path)
        return cls(keys)

    def __contains__(self, key_id: object) -> bool:
        return key_id in self.keys

    def __len__(self) -> int:
        return len(self.keys)

    def get(self, key_id: str) -> Ed25519PublicKey | None:
        return self.keys.get(key_id)


@dataclass(frozen=True)
class CommandVerifier:
    """Checks a down-route payload's signature against a keyring; `required`: unsigned payloads are refused."""

    keyring: Keyring
    required: bool = False
    max_payload: int = DEFAULT_MAX_PAYLOAD

    def verify(self, payload: bytes) -> tuple[Verdict | None, bytes]:
        """(None, inner record) when it may pass: signed and valid, or unsigned while not required; else
        (UNSIGNED | UNKNOWN_KEY | BAD_SIGNATURE, payload). A malformed signed frame raises FramingError."""
        if not is_signed(payload):
            return (Verdict.UNSIGNED if self.required else None), bytes(payload)
        key_id, signature, inner = open_signed(payload, max_payload=self.max_payload)
        public = self.keyring.get(key_id)
        if public is None:
            return Verdict.UNKNOWN_KEY, inner
        try:
            public.verify(signature, signed_message(key_id, inner))
        except InvalidSignature:
            return Verdict.BAD_SIGNATURE, inner
        return None, inner


def generate_key_pair(key_id: str, directory: str | Path) -> tuple[Path, Path]:
    """Write a new Ed25519 key pair as `<key_id>.pem` (PKCS8, mode 0600) and `<key_id>.pub.pem`; never overwrites."""
    _check_key_id(key_id)
    directory = Path(directory).expanduser()
    directory.mkdir(parents=True, exist_ok=True)
    private_path, public_path = directory / f"{key_id}{PRIVATE_SUFFIX}", directory / f"{key_id}{PUBLIC_SUFFIX}"
    for path in (private_path, public_path):
        if path.exists():
            raise KeyringError(path, "already exists", "choose a new key id (rotation adds a key, never "
                               "overwrites one) or remove the old files first")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
    public_path.write_bytes(_public_pem(key.public_key()))
    return private_path, public_path


def _public_pem(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise KeyringError(path, f"no such {what} file", "check the path (or generate one: swarm-bridge keys "
                           "generate)") from None
    except IsADirectoryError:
        raise KeyringError(path, "is a directory, not a key file", "give the key file itself") from None
    except OSError as exc:
        raise KeyringError(path, f"cannot read {what}: {exc.strerror}", "check the file's permissions") from None


def _load_public(path: Path) -> Ed25519PublicKey:
    data = _read(path, "public key")
    if b"PRIVATE KEY" in data:
        raise KeyringError(path, "holds a private key, not a public one", "give the <key_id>.pub.pem file; "
                           "private keys stay with the signer")
    try:
        key = serialization.load_pem_public_key(data)
    except Exception:  # ValueError, UnsupportedAlgorithm, ...: the library's text is never forwarded
        raise KeyringError(path, "not a PEM public key", "give the <key_id>.pub.pem written by "
                           "swarm-bridge keys generate") from None
    if not isinstance(key, Ed25519PublicKey):
        raise KeyringError(path, f"a {type(key).__name__}, not an Ed25519 public key",
                           "generate an Ed25519 key: swarm-bridge keys generate")
    return key


def _load_private(path: Path) -> Ed25519PrivateKey:
    data = _read(path, "private key")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except Exception:  # ValueError, TypeError (encrypted), UnsupportedAlgorithm: the library's text is never
        raise KeyringError(path, "not an unencrypted PEM (PKCS8) private key", "give the <key_id>.pem written "
                           "by swarm-bridge keys generate") from None  # forwarded: it could quote the data
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyringError(path, "not an Ed25519 private key", "generate one: swarm-bridge keys generate")
    return key
