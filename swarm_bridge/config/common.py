"""Config types every service shares: strict models, files and environment variables checked at load, TLS files."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from swarm_bridge.config.errors import ConfigValueError

__all__ = ["BOOTSTRAP", "PATTERN_WORDS", "ROUTE_FORMATS", "EnvVarName", "ExistingFile", "NewTopicsConfig",
           "RecordFormatName", "Strict", "SubjectNameStrategyName", "TlsConfig"]


def _existing_file(value: str) -> str:
    if not Path(value).expanduser().is_file():
        raise ConfigValueError(f"no such file: {value}")
    return value


def _set_variable(value: str) -> str:
    if value not in os.environ:
        raise ConfigValueError(f"environment variable {value} is not set")
    return value


# Config values checked when the file is loaded: a file that must exist; the NAME of an environment variable
# that must be set (a secret's value is never in a config file).
ExistingFile = Annotated[str, AfterValidator(_existing_file)]
EnvVarName = Annotated[str, AfterValidator(_set_variable)]


# Every `pattern=` of the config models, in the words an error uses instead of the bare regular expression.
BOOTSTRAP = r"^[^,\s]+(,[^,\s]+)*$"  # Kafka bootstrap.servers: host:port[,host:port...]

PATTERN_WORDS: dict[str, str] = {
    r"^[A-Za-z0-9_-]+$": "letters, digits, '_' and '-' only (no spaces, dots or slashes)",
    r"^[A-Za-z0-9._-]+$": "letters, digits, '.', '_' and '-' only (no spaces or slashes)",
    r"^[a-z0-9_]+$": "lowercase letters, digits and '_' only",
    r"^[A-Za-z0-9._{}-]+$": "letters, digits, '.', '_', '-' and a {placeholder} (e.g. vda5050.{stream})",
    r"^v[0-9]+$": "'v' and a major version number (e.g. v2)",
    r"^[A-Za-z0-9_]+/msg/[A-Za-z0-9_]+$": "a ROS message type package/msg/Name, each part letters, digits and '_' "
                                          "(e.g. nav_msgs/msg/Odometry)",
    r"^[A-Za-z0-9_]+/action/[A-Za-z0-9_]+$": "a ROS action type package/action/Name, each part letters, digits "
                                             "and '_' (e.g. nav2_msgs/action/NavigateToPose)",
    r"^/[A-Za-z0-9_/~{}]*$": "an absolute ROS topic: '/' first, then letters, digits, '_', '/', '~', '{' and '}' "
                             "(e.g. /amr_007/odom)",
    r"^[^,\s]+(,[^,\s]+)*$": "host:port, or several separated by commas, with no spaces "
                              "(e.g. 10.0.0.1:9092,10.0.0.2:9092)",
    r"^[^/+#$\s]+$": "one MQTT topic level: no '/', '+', '#', '$' or spaces (VDA 5050 section 6.3)",
    r"^[A-Za-z0-9_.:-]+$": "letters, digits, '_', '.', ':' and '-' only (a VDA 5050 serialNumber, section 6.3)",
}


# The registry subject naming strategies (swarm_bridge.codec.registry.SUBJECT_NAME_STRATEGIES), by name; the same
# key in the robot bridge's, the gateway's and the coordinator's config, so all three agree on subjects.
SubjectNameStrategyName = Annotated[Literal["topic_name", "record_name", "topic_record_name"], Field(
    description="registry subject of Avro records on Kafka: topic_name (<kafka topic>-value), "
    "record_name (the record's full name, swarm_bridge.record.<pkg>.msg.<Name>) or topic_record_name "
    "(<kafka topic>-<record full name>); the same in every robot, gateway and coordinator of a fleet")]


# The record formats a route may name, and the uplink kinds each travels on: the config's view of the formats
# table `codec.formats.FORMATS` (config imports nothing; test_format_table keeps the two equal).
RecordFormatName = Literal["avro", "protobuf", "json"]
ROUTE_FORMATS: dict[str, tuple[str, ...]] = {
    "avro": ("mqtt", "kafka"),
    "protobuf": ("mqtt", "kafka"),
    "json": ("mqtt", "kafka"),
}


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
            raise ConfigValueError("cert_file and key_file go together (mutual TLS needs both)")
        return self


class NewTopicsConfig(Strict):
    """Replication of the Kafka topics a service creates; unset: what the cluster offers (min(3, brokers)
    replicas, a majority of them in sync that still lets one fail: 1/1, 2/1, 3/2)."""

    replication_factor: int | None = Field(default=None, ge=1, description="replicas of each partition; "
                                           "default min(3, brokers)")
    min_insync_replicas: int | None = Field(default=None, ge=1, description="replicas that must have a record "
                                            "before acks=all succeeds; default a majority that leaves one to fail")

    @model_validator(mode="after")
    def _insync_within(self) -> NewTopicsConfig:
        factor, insync = self.replication_factor, self.min_insync_replicas
        if factor is not None and insync is not None and insync > factor:
            raise ConfigValueError(f"min_insync_replicas ({insync}) must be <= replication_factor ({factor})")
        return self
