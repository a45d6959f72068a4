"""How a service logs in to Kafka: security protocol, SASL user and mechanism, TLS files; secrets by reference.

One model for every Kafka client of the project (the gateway's and coordinator's `kafka.security`, the robot's
Kafka uplink's `uplink.security`). The password is never in the file: `password_env` names an environment
variable, `password_file` a file holding it; `client_settings()` reads it when a client is built.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from swarm_bridge.config.common import EnvVarName, ExistingFile, Strict, TlsConfig
from swarm_bridge.config.errors import ConfigValueError

__all__ = ["KafkaSecurity", "read_secret"]

_SASL = ("SASL_PLAINTEXT", "SASL_SSL")
_TLS = ("SSL", "SASL_SSL")


def read_secret(*, env: str | None, file: str | None) -> str | None:
    """The secret held by environment variable `env` or by `file` (one line, trailing newline dropped)."""
    if env is not None:
        return os.environ.get(env)
    if file is not None:
        return Path(file).expanduser().read_text(encoding="utf-8").rstrip("\r\n")
    return None


class KafkaSecurity(Strict):
    """Security of a Kafka client: PLAINTEXT (default), SSL, SASL_PLAINTEXT or SASL_SSL."""

    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        default="PLAINTEXT", description="librdkafka security.protocol")
    sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"] | None = Field(
        default=None, description="with SASL_*: the SASL mechanism (SCRAM-SHA-512 recommended)")
    username: str | None = Field(default=None, min_length=1, description="with SASL_*: the principal's name")
    password_env: EnvVarName | None = Field(default=None, min_length=1, description="with SASL_*: NAME of the "
                                     "environment variable holding the password")
    password_file: ExistingFile | None = Field(default=None, min_length=1, description="with SASL_*: or a file holding "
                                      "the password (mode 0600)")
    tls: TlsConfig | None = Field(default=None, description="with SSL / SASL_SSL: ca_file to trust the brokers; "
                                  "cert_file + key_file for mutual TLS")

    @model_validator(mode="after")
    def _consistent(self) -> KafkaSecurity:
        protocol = self.security_protocol
        sasl_keys = [k for k in ("sasl_mechanism", "username", "password_env", "password_file")
                     if getattr(self, k) is not None]
        if protocol in _SASL:
            missing = [k for k in ("sasl_mechanism", "username") if getattr(self, k) is None]
            if missing:
                raise ConfigValueError(f"security_protocol {protocol} needs {' and '.join(missing)}")
            if (self.password_env is None) == (self.password_file is None):
                raise ConfigValueError(f"security_protocol {protocol} needs exactly one of password_env, password_file")
        elif sasl_keys:
            raise ConfigValueError(f"{', '.join(sasl_keys)} need security_protocol SASL_PLAINTEXT or SASL_SSL "
                                   f"(got {protocol})")
        if self.tls is not None and protocol not in _TLS:
            raise ConfigValueError(f"tls needs security_protocol SSL or SASL_SSL (got {protocol})")
        return self

    @property
    def principal(self) -> str | None:
        """The Kafka principal this client logs in as (`User:<username>`), None without SASL."""
        return None if self.username is None else f"User:{self.username}"

    def describe(self) -> str:
        """For logs and errors: protocol, mechanism, user and where the password comes from, never the password."""
        if self.security_protocol not in _SASL:
            return self.security_protocol
        source = f"${self.password_env}" if self.password_env else f"file {self.password_file}"
        return f"{self.security_protocol} {self.sasl_mechanism} as {self.username!r} (password from {source})"

    def client_settings(self) -> dict[str, str]:
        """librdkafka settings to merge into a Producer/Consumer/AdminClient config (holds the password)."""
        settings = {"security.protocol": self.security_protocol.lower()}
        if self.security_protocol in _SASL:
            password = read_secret(env=self.password_env, file=self.password_file)
            settings |= {"sasl.mechanism": str(self.sasl_mechanism), "sasl.username": str(self.username),
                         "sasl.password": password or ""}
        if self.tls is not None:
            files = {"ssl.ca.location": self.tls.ca_file, "ssl.certificate.location": self.tls.cert_file,
                     "ssl.key.location": self.tls.key_file}
            settings |= {key: str(Path(value).expanduser()) for key, value in files.items() if value is not None}
        return settings
