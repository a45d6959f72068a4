"""A throwaway PKI for tests: a CA and the certificates it signs (EC P-256, one day), written as PEM files."""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

__all__ = ["issue", "write_pem"]


def issue(name: str, issuer: tuple[Any, x509.Name] | None, *, ca: bool = False,
          ip: str | None = None) -> tuple[Any, x509.Certificate]:
    """A key and a certificate with CN `name`, signed by `issuer` (key, subject) or self-signed; `ip`: a SAN."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    signer_key, signer_name = issuer if issuer else (key, subject)
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(signer_name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ip:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]),
                                        critical=False)
    return key, builder.sign(signer_key, hashes.SHA256())


def write_pem(directory: Path, name: str, key: Any, cert: x509.Certificate) -> tuple[Path, Path]:
    """`<name>.crt` and `<name>.key` (PKCS#8, unencrypted) in `directory`; returns (cert, key) paths."""
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    return cert_path, key_path
