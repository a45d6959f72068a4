"""The robot bridge's config: which robot, which uplink, which ROS topics become which streams."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from swarm_bridge.config.common import ROUTE_FORMATS, RecordFormatName, Strict, SubjectNameStrategyName
from swarm_bridge.config.errors import ConfigValueError
from swarm_bridge.config.tasks import TasksConfig
from swarm_bridge.config.uplinks import UplinkConfig
from swarm_bridge.config.vda_vehicle import VdaVehicleConfig

__all__ = [
    "COMPRESSION_LEVELS",
    "PRECOMPRESSED_TYPES",
    "QOS_PRESETS",
    "BudgetConfig",
    "CommandsConfig",
    "RobotBridgeConfig",
    "RouteConfig",
    "SpoolConfig",
    "TopicMatch",
]

# Record compression per route: name -> (lowest, highest, default level). Mirrors COMPRESSIONS in
# codec/compression.py (config imports nothing of the codec; test_compression_table.py checks they agree).
COMPRESSION_LEVELS: dict[str, tuple[int, int, int]] = {"zstd": (1, 22, 3), "lz4": (0, 16, 0)}
# Types carried as they are whatever the route says: their data is compressed already.
PRECOMPRESSED_TYPES = ("sensor_msgs/msg/CompressedImage",)

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
    compression: Literal["none", "zstd", "lz4"] = Field(default="none", description="compress each record (up "
                                                        "only); sensor_msgs/CompressedImage is always sent as is")
    compression_level: int | None = Field(default=None, description="the codec's level (zstd 1-22, default 3; "
                                          "lz4 0-16, default 0); null: the codec's default")
    schema_version: int | None = Field(default=None, ge=1, description="avro, up: pin the route to this registered "
                                       "version of its subject (rollout/rollback): the robot's message is resolved "
                                       "to it (fields it lacks get their defaults, fields it adds are left out); "
                                       "set with `swarm-bridge schema pin`")

    @model_validator(mode="after")
    def _compression_fits(self) -> RouteConfig:
        if self.compression == "none":
            if self.compression_level is not None:
                raise ConfigValueError("compression_level needs a compression (zstd or lz4)")
            return self
        if self.direction == "down":
            raise ConfigValueError("compression applies to direction 'up' only (the sender of commands decides)")
        low, high, _default = COMPRESSION_LEVELS[self.compression]
        if self.compression_level is not None and not low <= self.compression_level <= high:
            raise ConfigValueError(f"compression_level {self.compression_level} is out of range for "
                                   f"{self.compression} (give {low} to {high})")
        return self

    @property
    def level(self) -> int:
        """The compression level in force (the codec's default when none is given)."""
        if self.compression == "none":
            return 0
        return self.compression_level if self.compression_level is not None else COMPRESSION_LEVELS[self.compression][2]

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


class BudgetConfig(Strict):
    """The robot's uplink bandwidth budget: a token bucket over the bytes sent, shared by the routes by priority."""

    bytes_per_s: float = Field(gt=0, description="sustained uplink bytes per second (e.g. 6250000 for 50 Mbit/s)")
    burst_bytes: int | None = Field(default=None, ge=1024, description="bucket depth; default one second of "
                                    "bytes_per_s (at least 1 MiB)")
    keep_priority: int = Field(default=5, ge=0, le=255, description="routes of at least this priority (control, "
                               "state) are never held back by the budget: they are sent at once and spend tokens "
                               "the others then wait for")
    max_wait_s: float = Field(default=2.0, gt=0, description="a record of lower priority waiting longer than this "
                              "for tokens is dropped (counted, reason 'budget')")
    queue_bytes: int = Field(default=32 << 20, ge=1 << 20, description="bytes of lower-priority records waiting "
                             "for tokens at most; beyond it the lowest priority, oldest first, is dropped")

    @property
    def burst(self) -> int:
        """The bucket depth in bytes."""
        return self.burst_bytes if self.burst_bytes is not None else max(int(self.bytes_per_s), 1 << 20)


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
    tasks: TasksConfig | None = Field(default=None, description="task kinds this bridge carries out through ROS 2 "
                                      "actions (docs/robot-bridge.md#tasks-through-ros-2-actions)")
    budget: BudgetConfig | None = Field(default=None, description="uplink bandwidth budget (token bucket); null: "
                                        "no budget, records leave as fast as the link takes them")
    vda5050: VdaVehicleConfig | None = Field(default=None, description="the robot as a VDA 5050 2.1 vehicle "
                                             "(docs/vda5050.md#robot-side-a-ros-robot-as-a-vda-5050-vehicle)")

    @model_validator(mode="after")
    def _vda5050_has_a_broker(self) -> RobotBridgeConfig:
        vda = self.vda5050
        if vda is not None and (vda.host is None or vda.port is None) and self.uplink.kind != "mqtt":
            raise ConfigValueError(f"vda5050: on a {self.uplink.kind} uplink give vda5050.host and vda5050.port (the "
                                   "MQTT broker of the VDA 5050 topics)")
        return self

    def vda5050_broker(self) -> tuple[str, int]:
        """(host, port) of the VDA 5050 topics: the section's own, else the MQTT uplink's."""
        vda = self.vda5050
        if vda is None:
            raise ConfigValueError("no vda5050 section")
        return vda.host or self.uplink.host, vda.port or self.uplink.port

    @model_validator(mode="after")
    def _tasks_have_their_routes(self) -> RobotBridgeConfig:
        """Tasks through actions need TaskCommand coming down to their command topic and TaskStatus going up."""
        if self.tasks is None:
            return self
        here = {(r.direction, _resolved(r.topic or "", self.robot_id), r.type) for r in self.routes}
        needs = (("command_topic", "down", "swarm_bridge_msgs/msg/TaskCommand", "channel: command, stream: "
                  "task_command"),
                 ("status_topic", "up", "swarm_bridge_msgs/msg/TaskStatus", "channel: event, stream: task_status"))
        for key, direction, ros_type, rest in needs:
            topic = getattr(self.tasks, key)
            if (direction, _resolved(topic, self.robot_id), ros_type) not in here:
                raise ConfigValueError(
                    f"tasks.{key} {topic}: no {direction} route of type {ros_type} on that topic; add one to "
                    f"routes ({{topic: {topic}, type: {ros_type}, direction: {direction}, {rest}, qos: reliable, "
                    "format: avro}) or point tasks.{key} at the route's topic")
        return self

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
    def _compression_on_mqtt(self) -> RobotBridgeConfig:
        for index, route in enumerate(self.routes):
            if route.compression != "none" and self.uplink.kind != "mqtt":
                raise ConfigValueError(f"routes[{index}].compression: per-route compression is for MQTT uplinks; on "
                                       f"a {self.uplink.kind} uplink the producer compresses batches itself (leave "
                                       "compression out)")
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


def _resolved(topic: str, robot_id: str) -> str:
    """A topic with {robot_id} as the robot's ROS namespace (routing.naming.robot_namespace; config imports none
    of the rest)."""
    token = re.sub(r"[^A-Za-z0-9_]", "_", robot_id)
    return topic.replace("{robot_id}", f"_{token}" if token[:1].isdigit() else token)


def default_registry() -> str:
    """$SWARM_BRIDGE_REGISTRY, else the embedded file registry under $XDG_STATE_HOME/swarm_bridge/registry."""
    state = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local/state")
    return os.environ.get("SWARM_BRIDGE_REGISTRY") or str(state / "swarm_bridge" / "registry")
