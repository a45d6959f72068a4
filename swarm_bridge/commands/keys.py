"""The keys of command signing: `Keyring` (the signers a robot trusts), key files, `generate_key_pair`.

Files: `<key_id>.pem` (PKCS8 private key, mode 0600, stays with the signer) and `<key_id>.pub.pem`
(SubjectPublicKeyInfo, what robots trust). Errors name the file and the fix, never the key's content.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from swarm_bridge.codec.errors import CodecError
from swarm_bridge.codec.signing import MAX_KEY_ID, check_key_id, is_key_id

__all__ = ["PRIVATE_SUFFIX", "PUBLIC_SUFFIX", "Keyring", "KeyringError", "generate_key_pair", "load_private_key",
           "public_pem"]

PRIVATE_SUFFIX = ".pem"
PUBLIC_SUFFIX = ".pub.pem"


class KeyringError(CodecError):
    """A key file that cannot be used: names the file and the fix, never the key's content."""

    def __init__(self, source: str | Path, problem: str, fix: str) -> None:
        self.source, self.problem, self.fix = str(source), problem, fix
        super().__init__(f"{source}: {problem}. Fix: {fix}")


@dataclass(frozen=True)
class Keyring:
    """Key id -> Ed25519 public key: the signers a robot trusts. A key id not in it is an unknown key."""

    keys: Mapping[str, Ed25519PublicKey] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for key_id, key in self.keys.items():
            check_key_id(key_id)
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
            if not is_key_id(key_id):
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


def generate_key_pair(key_id: str, directory: str | Path) -> tuple[Path, Path]:
    """Write a new Ed25519 key pair as `<key_id>.pem` (PKCS8, mode 0600) and `<key_id>.pub.pem`; never overwrites."""
    check_key_id(key_id)
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
    public_path.write_bytes(public_pem(key.public_key()))
    return private_path, public_path


def public_pem(key: Ed25519PublicKey) -> bytes:
    """A public key as PEM SubjectPublicKeyInfo (the `<key_id>.pub.pem` form)."""
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


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """The Ed25519 private key in a PKCS8 PEM file; KeyringError naming the file otherwise."""
    data = _read(path, "private key")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except Exception:  # ValueError, TypeError (encrypted), UnsupportedAlgorithm: the library's text is never
        raise KeyringError(path, "not an unencrypted PEM (PKCS8) private key", "give the <key_id>.pem written "
                           "by swarm-bridge keys generate") from None  # forwarded: it could quote the data
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyringError(path, "not an Ed25519 private key", "generate one: swarm-bridge keys generate")
    return key
