"""The robot's uplink config: one model per uplink kind, chosen by `kind` (a pydantic discriminated union).

`UplinkBase` holds the keys every kind takes; `MqttUplink` and `KafkaUplink` add their own. A key of another kind
is an error naming the key, its kind and the fix, unless it holds that kind's default (the example config lists
every key; a robot switching `kind` keeps its file). Adding a kind: a model here and one member in `UplinkConfig`.
"""

from __future__ import annotations

import os
from typing import Annotated, Any, ClassVar, Literal, get_args

from pydantic import Field, TypeAdapter, ValidationError, model_validator

from swarm_bridge.config.common import EnvVarName, Strict, TlsConfig
from swarm_bridge.config.errors import ConfigValueError
from swarm_bridge.config.security import KafkaSecurity

__all__ = ["UPLINK_KINDS", "KafkaUplink", "MqttUplink", "UplinkBase", "UplinkConfig"]


class UplinkBase(Strict):
    """Keys every uplink kind takes: where the link goes, how long to wait for it, how many records in flight;
    `topic_prefix` and the reconnect backoff too (MQTT uses them; Kafka configs of robots that switch carry them)."""

    LABEL: ClassVar[str] = ""  # the kind's name in messages ("MQTT")
    LOGIN_KEYS: ClassVar[tuple[str, ...]] = ()  # this kind's keys for logging in
    LOGIN_REFUSAL: ClassVar[str] = "{keys}: login keys of another uplink kind"  # said of another kind's login keys
    COMMANDS_BATCHED: ClassVar[bool] = False  # one payload down may hold a batch of commands (split by the bridge)

    kind: str
    host: str = Field(default="127.0.0.1", min_length=1)
    port: int = Field(ge=1, le=65535)
    topic_prefix: str = Field(default="swarm", pattern=r"^[A-Za-z0-9_-]+$", description="first level of the "
                              "robot's MQTT topics; a fleet-wide name any kind takes (Kafka topics do not use it)")
    connect_timeout_s: float = Field(default=10.0, gt=0)
    require_at_start: bool = Field(default=True, description="exit (status 3) when unreachable at start; "
                                   "false: start anyway and spool until it is reachable")
    max_inflight: int = Field(default=1000, ge=1, le=65535, description="records sent and not yet acknowledged")
    reconnect_min_s: float = Field(default=1.0, gt=0, description="reconnect backoff, doubling up to "
                                   "reconnect_max_s (MQTT; a Kafka link reconnects by librdkafka's own backoff)")
    reconnect_max_s: float = Field(default=30.0, gt=0)
    chunk_bytes: int = Field(default=256 * 1024, ge=1024, le=64 << 20, description="a record larger than this is "
                             "sent as chunks of at most this many bytes, put together again by the reader (the "
                             "gateway, Kafka readers); smaller chunks let small records of higher priority pass "
                             "between them (docs/wire.md#chunks)")

    @model_validator(mode="after")
    def _backoff_order(self) -> UplinkBase:
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ConfigValueError(f"reconnect_max_s ({self.reconnect_max_s}) must be >= reconnect_min_s "
                                   f"({self.reconnect_min_s})")
        return self

    @property
    def batch_limit(self) -> int:
        """Records of one stream that may leave in one send (1: never batched by the bridge)."""
        return 1

    @model_validator(mode="before")
    @classmethod
    def _no_keys_of_another_kind(cls, data: Any) -> Any:
        """Drop keys of another kind that hold its default; refuse the others, naming key, kind and fix."""
        if not isinstance(data, dict):
            return data
        foreign: dict[str, type[UplinkBase]] = {}
        kept: dict[str, Any] = {}
        for key, value in data.items():
            owner = None if key in cls.model_fields else next(
                (m for m in UPLINK_KINDS.values() if key in m.model_fields), None)
            if owner is None:
                kept[key] = value
            elif not _at_default(owner, key, value):
                foreign[key] = owner
        login = [key for key, owner in foreign.items() if key in owner.LOGIN_KEYS]
        if login:
            raise ConfigValueError(cls.LOGIN_REFUSAL.format(keys=", ".join(login)))
        if foreign:
            owner = next(iter(foreign.values()))
            many = len(foreign) > 1
            raise ConfigValueError(f"{', '.join(foreign)} {'are keys' if many else 'is a key'} of {owner.LABEL} "
                                   f"uplinks; uplink.kind is {_kind_of(cls)} (remove {'them' if many else 'it'}, or "
                                   f"set uplink.kind: {_kind_of(owner)})")
        return kept


class MqttUplink(UplinkBase):
    """An MQTT 5 broker: login, session, keepalive, batching."""

    LABEL: ClassVar[str] = "MQTT"
    COMMANDS_BATCHED: ClassVar[bool] = True  # the gateway and the site coordinator may send batches
    LOGIN_KEYS: ClassVar[tuple[str, ...]] = ("username", "password_env", "tls")
    LOGIN_REFUSAL: ClassVar[str] = ("{keys} applies to kind kafka; an MQTT uplink logs in with username, "
                                    "password_env and tls")

    kind: Literal["mqtt"]
    username: str | None = None
    password_env: EnvVarName | None = Field(default=None, description="name of the environment variable holding "
                                            "the password (never the password itself in a file)")
    tls: TlsConfig | None = None
    session_expiry_s: int = Field(default=3600, ge=0, description="how long the broker keeps the session")
    keepalive_s: int = Field(default=30, ge=5)
    ack_timeout_s: float = Field(default=30.0, ge=0, description="a publish the broker has not acknowledged this "
                                 "long on a live connection (later ones were, or none came at all) makes the "
                                 "robot resume its session and send it again; 0: wait for the next reconnect")
    hold_unsubscribed: bool = Field(default=False, description="a record the broker had no subscriber for "
                                    "(PUBACK 0x10) stays in the spool and is sent again each second until a hub "
                                    "takes it; needed with gateways in a share group (docs/gateway.md)")
    batch_max_records: int = Field(default=64, ge=1, le=4096, description="records of one stream that may "
                                   "share one publish while the broker is busy acknowledging (1: never batch)")

    @property
    def batch_limit(self) -> int:
        """`batch_max_records`: records of one stream share a publish while acknowledgements are pending."""
        return self.batch_max_records

    @property
    def password(self) -> str | None:
        return None if self.password_env is None else os.environ.get(self.password_env)


class KafkaUplink(UplinkBase):
    """A Kafka cluster (host:port is a bootstrap server): login by `security`; the producer batches by itself."""

    LABEL: ClassVar[str] = "Kafka"
    LOGIN_KEYS: ClassVar[tuple[str, ...]] = ("security",)
    LOGIN_REFUSAL: ClassVar[str] = ("{keys}: MQTT login keys; a kafka uplink logs in with security "
                                    "(security_protocol, sasl_mechanism, username, password_env or password_file, "
                                    "tls)")

    kind: Literal["kafka"]
    security: KafkaSecurity = Field(default_factory=KafkaSecurity, description="how the robot logs in to the "
                                    "cluster (SASL/SCRAM, TLS; docs/security.md); default PLAINTEXT")


# The uplink kinds, one member each; `kind` picks the model.
UplinkConfig = Annotated[MqttUplink | KafkaUplink, Field(discriminator="kind")]


def _kind_of(model: type[UplinkBase]) -> str:
    return str(get_args(model.model_fields["kind"].annotation)[0])


UPLINK_KINDS: dict[str, type[UplinkBase]] = {_kind_of(m): m for m in get_args(get_args(UplinkConfig)[0])}
"""uplink.kind -> its config model (read from `UplinkConfig`, so the union is the one list of kinds)."""


def _at_default(model: type[UplinkBase], key: str, value: Any) -> bool:
    """Whether `value` of `model`'s key `key` is what leaving it out gives (None counts as left out)."""
    if value is None:
        return True
    field = model.model_fields[key]
    try:
        given = TypeAdapter(field.annotation or Any).validate_python(value)
    except ValidationError:
        return False
    return bool(given == field.get_default(call_default_factory=True))
