"""Config types every service shares: strict models, files and environment variables checked at load, TLS files."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, model_validator

__all__ = ["EnvVarName", "ExistingFile", "Strict", "TlsConfig"]


def _existing_file(value: str) -> str:
    if not Path(value).expanduser().is_file():
        raise ValueError(f"no such file: {value}")
    return value


def _set_variable(value: str) -> str:
    if value not in os.environ:
        raise ValueError(f"environment variable {value} is not set")
    return value


# Config values checked when the file is loaded: a file that must exist; the NAME of an environment variable
# that must be set (a secret's value is never in a config file).
ExistingFile = Annotated[str, AfterValidator(_existing_file)]
EnvVarName = Annotated[str, AfterValidator(_set_variable)]


class Strict(BaseModel):
    """Frozen, and unknown keys are errors (with a did-you-mean)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class TlsConfig(Strict):
    """TLS to the broker: the CA to trust; a client certificate and key together for mutual TLS."""

    ca_file: ExistingFile | None = None
    cert_file: ExistingFile | None = None
    key_file: ExistingFile | None = None

    @model_validator(mode="after")
    def _pair(self) -> TlsConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together (mutual TLS needs both)")
        return self
