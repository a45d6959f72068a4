"""The coordinator's side of command signing: `CommandSigner` signs down-route records with one private key.

`CommandSigner.from_file("keys/coord-2026a.pem").sign(record)` -> the signed frame (swarm_bridge.codec.signing).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from swarm_bridge.codec.errors import FramingError
from swarm_bridge.codec.signing import SIGNED, check_key_id, signed_message, wrap_signed
from swarm_bridge.commands.keys import PRIVATE_SUFFIX, KeyringError, load_private_key, public_pem

__all__ = ["CommandSigner"]


@dataclass(frozen=True)
class CommandSigner:
    """Signs down-route records with one private key under its key id (the coordinator's side)."""

    private_key: Ed25519PrivateKey = field(repr=False)
    key_id: str

    def __post_init__(self) -> None:
        check_key_id(self.key_id)
        if not isinstance(self.private_key, Ed25519PrivateKey):
            raise KeyringError(f"key {self.key_id}", f"expected an Ed25519 private key, got "
                               f"{type(self.private_key).__name__}", "generate one: swarm-bridge keys generate")

    @classmethod
    def from_file(cls, path: str | Path, key_id: str | None = None) -> CommandSigner:
        """Load a PKCS8 PEM private key; the key id defaults to the file name without `.pem` (`<id>.pem`)."""
        path = Path(path)
        key_id = key_id or path.name.removesuffix(PRIVATE_SUFFIX)
        return cls(load_private_key(path), key_id)

    def sign(self, inner: bytes) -> bytes:
        """The signed frame of one record (framed as it travels: Confluent, single-object, JSON or Protobuf)."""
        if not isinstance(inner, (bytes, bytearray, memoryview)) or not len(inner):
            raise FramingError(SIGNED, "inner record must be non-empty bytes")
        inner = bytes(inner)
        return wrap_signed(self.key_id, self.private_key.sign(signed_message(self.key_id, inner)), inner)

    def public_pem(self) -> bytes:
        """The matching public key, PEM SubjectPublicKeyInfo (what robots trust as `<key_id>.pub.pem`)."""
        return public_pem(self.private_key.public_key())
