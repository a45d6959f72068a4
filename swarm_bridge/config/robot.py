"""The robot bridge's config: which robot, which uplink, which ROS topics become which streams."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from swarm_bridge.config.common import ROUTE_FORMATS, RecordFormatName, Strict, SubjectNameStrategyName
from swarm_bridge.config.errors import ConfigValueError
from swarm_bridge.config.uplinks import UplinkConfig

__all__ = [
    "QOS_PRESETS",
    "CommandsConfig",
    "RobotBridgeConfig",
    "RouteConfig",
    "SpoolConfig",
    "TopicMatch",
]

# Named ROS QoS presets; a route must name one (QoS is never implicit).
QOS_PRESETS = ("reliable", "sensor_data", "transient_local")

NAME = r"^[A-Za-z0-9_-]+$"
MAX_NAME = 128  # a robot id is a topic level, a Kafka key, a user name and a file name: keep it short
STREAM = r"^[a-z0-9_]+$"
ROS_TYPE = r"^[A-Za-z0-9_]+/msg/[A-Za-z0-9_]+$"
ROS_TOPIC = r"^/[A-Za-z0-9_/~{}]*$"


class SpoolConfig(Strict):
    """The on-disk store-and-forward queue used while the uplink is down or slow."""

    path: str | None = Field(default=None, description="SQLite file; default "
                             "$XDG_STATE_HOME/swarm_bridge/<fleet>/<robot_id>/spool.db")
    max_mb: float = Field(default=256.0, gt=0)

    def file_for(self, fleet: str, robot_id: str) -> Path:
        """Where the spool of `robot_id` lives."""
        if self.path is not None:
            return Path(self.path).expanduser()
        state = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local/state")
        return state / "swarm_bridge" / fleet / robot_id / "spool.db"


class TopicMatch(Strict):
    """ROS topics by regular expression (full match): any of `allow`, none of `deny`."""

    allow: list[str] = Field(min_length=1)
    deny: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _compiles(self) -> TopicMatch:
        for name in ("allow", "deny"):
            for index, pattern in enumerate(getattr(self, name)):
                try:
                    re.compile(pattern)
                except re.error as exc:
                    raise ConfigValueError(f"{name}[{index}]: not a valid regular expression {pattern!r}: {exc}") \
                        from None
        return self


class RouteConfig(Strict):
    """One bridged ROS topic (or every topic a `match` selects): what it is on ROS, what stream upstream."""

    topic: str | None = Field(default=None, pattern=ROS_TOPIC, description="absolute ROS topic; {robot_id} in it "
                              "stands for the robot's ROS namespace, e.g. /{robot_id}/odom")
    match: TopicMatch | None = Field(default=None, description="instead of topic: every topic matching, found "
                                     "in the ROS graph as it appears (direction up only)")
    type: str | None = Field(default=None, pattern=ROS_TYPE, description="ROS type, e.g. nav_msgs/msg/Odometry; "
                             "up routes may leave it out: it is taken from the ROS graph")
    stream: str = Field(pattern=STREAM, description="stream name upstream, e.g. odometry; for a match route "
                        "the prefix of each topic's stream (<stream>_<topic without the robot namespace>)")
    direction: Literal["up", "down"] = Field(default="up", description="up: ROS -> uplink; down: uplink -> ROS")
    channel: Literal["telemetry", "event", "state", "command"]
    qos: Literal["reliable", "sensor_data", "transient_local"]
    qos_depth: int | None = Field(default=None, ge=1, le=100_000, description="history depth instead of the "
                                  "preset's (reliable 10000, sensor_data 5, transient_local 100)")
    format: RecordFormatName = Field(description="record format (see docs/wire.md)")
    mqtt_qos: Literal[0, 1, 2] = 1
    retain: bool = Field(default=False, description="MQTT: the broker keeps the last record for late subscribers")
    priority: int = Field(default=1, ge=0, le=255, description="higher drains first and is dropped last")
    max_rate_hz: float | None = Field(default=None, gt=0, description="decimate to at most this rate (up only)")
    schema_version: int | None = Field(default=None, ge=1, description="avro, up: pin the route to this registered "
                                       "version of its subject (rollout/rollback): the robot's message is resolved "
                                       "to it (fields it lacks get their defaults, fields it adds are left out); "
                                       "set with `swarm-bridge schema pin`")

    @field_validator("topic")
    @classmethod
    def _only_the_robot_id_placeholder(cls, value: str | None) -> str | None:
        if value is not None and ("{" in value.replace("{robot_id}", "") or "}" in value.replace("{robot_id}", "")):
            raise ConfigValueError(f"{value!r}: the only placeholder a topic may hold is {{robot_id}} (it becomes the "
                                   "robot's ROS namespace: its id with '-' as '_' and '_' before a leading digit)")
        return value

    @model_validator(mode="after")
    def _down_takes_no_rate(self) -> RouteConfig:
        if self.direction == "down" and self.max_rate_hz is not None:
            raise ConfigValueError("max_rate_hz applies to direction 'up' only (commands are never decimated)")
        if self.schema_version is not None and (self.direction != "up" or self.format != "avro"):
            raise ConfigValueError(f"schema_version pins an up route of format avro (this one is {self.direction}, "
                                   f"{self.format}); remove it")
        return self

    @model_validator(mode="after")
    def _one_way_to_name_topics(self) -> RouteConfig:
        if (self.topic is None) == (self.match is None):
            raise ConfigValueError("give either topic or match (exactly one)")
        if self.direction == "down" and (self.match is not None or self.type is None):
            raise ConfigValueError("a down route needs an exact topic and its type (it publishes them)")
        return self


class CommandsConfig(Strict):
    """How the robot checks commands coming down: whose signatures it trusts, whether unsigned ones pass, how old
    a signed command may be (see docs/security.md); how long an accepted one waits for a ROS subscriber."""

    trusted_keys: str | list[str] | None = Field(default=None, description="a directory of <key_id>.pub.pem "
                                                 "files, or a list of such files: the signers this robot trusts")
    require_signed: bool = Field(default=False, description="refuse unsigned commands (recommended; false only "
                                 "while a fleet moves to signed commands)")
    max_age_s: float = Field(default=300.0, gt=0, description="a signed command issued longer ago is stale")
    max_clock_skew_s: float = Field(default=30.0, ge=0, description="a signed command issued further in the "
                                    "future (by the robot's clock) is stale")
    lookback_s: float = Field(default=300.0, gt=0, description="kafka uplink: on the robot's first start (no "
                              "committed offset yet) its down routes read commands written up to this long ago, "
                              "so a command sent before the robot started still reaches it; deadline and command "
                              "id decide which of them still apply")
    hold_s: float = Field(default=10.0, ge=0, description="a command accepted while its down route's ROS topic has "
                          "no subscriber (volatile QoS: reliable, sensor_data) waits this long for one, then is "
                          "dropped and counted ('no ROS subscriber within N s'); 0: publish at once, as before")
    hold_max: int = Field(default=1000, ge=1, description="at most this many commands wait per down route; "
                          "beyond it the oldest is dropped and counted ('hold full')")

    @field_validator("trusted_keys")
    @classmethod
    def _keys_readable(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, str):
            directory = Path(value).expanduser()
            if not directory.is_dir():
                raise ConfigValueError(f"no such directory: {value} (a directory of <key_id>.pub.pem files, or a list "
                                       "of them)")
            if not any(directory.glob("*.pub.pem")):
                raise ConfigValueError(f"no <key_id>.pub.pem files in {value}; put the coordinator's public key there "
                                       "(swarm-bridge keys generate writes one)")
        elif isinstance(value, list):
            if not value:
                raise ConfigValueError("empty list: give at least one <key_id>.pub.pem file, or leave trusted_keys out")
            for item in value:
                path = Path(item).expanduser()
                if not path.is_file():
                    raise ConfigValueError(f"no such file: {item}")
                if not path.name.endswith(".pub.pem"):
                    raise ConfigValueError(f"{item}: a trusted key file is named <key_id>.pub.pem")
                if not os.access(path, os.R_OK):
                    raise ConfigValueError(f"{item}: not readable; fix its permissions")
        return value

    @model_validator(mode="after")
    def _signed_needs_keys(self) -> CommandsConfig:
        if self.require_signed and self.trusted_keys is None:
            raise ConfigValueError("require_signed needs trusted_keys (a directory or list of <key_id>.pub.pem files)")
        return self

    def key_files(self) -> list[Path]:
        """The trusted public key files: the listed ones, or every <key_id>.pub.pem in the directory."""
        if self.trusted_keys is None:
            return []
        if isinstance(self.trusted_keys, str):
            return sorted(Path(self.trusted_keys).expanduser().glob("*.pub.pem"))
        return [Path(item).expanduser() for item in self.trusted_keys]


class RobotBridgeConfig(Strict):
    """Everything the robot bridge node needs, validated before any socket opens."""

    robot_id: str = Field(pattern=NAME, max_length=MAX_NAME, description="one MQTT topic level, Kafka key and "
                          "MQTT user name: letters, digits, _ and -, at most 128 characters")
    fleet: str = Field(pattern=NAME, max_length=MAX_NAME)
    uplink: UplinkConfig
    spool: SpoolConfig = SpoolConfig()
    metrics_port: int | None = Field(default=None, ge=0, le=65535, description="serve Prometheus /metrics here")
    registry: str | None = Field(default=None, description="schema registry: a directory (embedded file registry) "
                                 "or http(s)://... (Confluent API); Kafka routes register there (default "
                                 "$SWARM_BRIDGE_REGISTRY or $XDG_STATE_HOME/swarm_bridge/registry); when set, avro "
                                 "MQTT routes register too, under fleet.<channel>.<stream>'s subject, so a version "
                                 "the registry forbids is refused at start")
    subject_name_strategy: SubjectNameStrategyName = "topic_name"
    routes: list[RouteConfig] = Field(min_length=1)
    commands: CommandsConfig = Field(default_factory=CommandsConfig, description="checks on commands coming "
                                     "down: signatures, freshness; waiting for a ROS subscriber")

    @model_validator(mode="after")
    def _formats_fit_the_uplink(self) -> RobotBridgeConfig:
        kind = self.uplink.kind
        for index, route in enumerate(self.routes):
            if kind not in ROUTE_FORMATS[route.format]:
                carried = " or ".join(fmt for fmt, kinds in ROUTE_FORMATS.items() if kind in kinds)
                raise ConfigValueError(f"routes[{index}].format: {route.format} on a {kind} uplink is not supported "
                                       f"yet; use {carried}")
            if route.schema_version is not None and kind == "mqtt" and self.registry is None:
                raise ConfigValueError(f"routes[{index}].schema_version: a pinned version is read from the registry; "
                                       "set registry (the fleet's, the one the gateway uses)")
        return self

    @model_validator(mode="after")
    def _streams_unique(self) -> RobotBridgeConfig:
        seen: dict[str, int] = {}
        for index, route in enumerate(self.routes):
            if route.stream in seen:
                raise ConfigValueError(
                    f"routes[{index}].stream '{route.stream}' is already used by routes[{seen[route.stream]}];"
                    " each route needs its own stream"
                )
            seen[route.stream] = index
        return self


def default_registry() -> str:
    """$SWARM_BRIDGE_REGISTRY, else the embedded file registry under $XDG_STATE_HOME/swarm_bridge/registry."""
    state = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local/state")
    return os.environ.get("SWARM_BRIDGE_REGISTRY") or str(state / "swarm_bridge" / "registry")
