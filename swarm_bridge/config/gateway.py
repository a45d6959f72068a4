"""The edge gateway's config: which MQTT broker and Kafka cluster, which topic rules, how to hold the links."""

from __future__ import annotations

import os
import re
import string
from typing import Literal

from pydantic import Field, field_validator, model_validator

from swarm_bridge.config.common import (
    BOOTSTRAP,
    EnvVarName,
    NewTopicsConfig,
    Strict,
    SubjectNameStrategyName,
    TlsConfig,
)
from swarm_bridge.config.errors import ConfigValueError
from swarm_bridge.config.robot import MAX_NAME, NAME
from swarm_bridge.config.security import KafkaSecurity

__all__ = [
    "DEFAULT_DOWN_RULES",
    "DEFAULT_UP_RULES",
    "ChunksConfig",
    "DedupConfig",
    "DownRuleConfig",
    "GatewayConfig",
    "GatewayKafkaConfig",
    "GatewayMqttConfig",
    "HealthConfig",
    "SplitConfig",
    "UpRuleConfig",
]

# Names a topic pattern may use besides its own captures: filled in from the config.
CONFIG_NAMES = ("prefix", "fleet")
_KAFKA_TOPIC = re.compile(r"^[A-Za-z0-9._-]+$")
_PLACEHOLDER = re.compile(r"^[a-z_][a-z0-9_]*$")


def _placeholders(template: str) -> list[str]:
    """The `{name}` placeholders of a template, in order; ValueError for a malformed one."""
    try:
        names = [name for _text, name, spec, conv in string.Formatter().parse(template) if name is not None
                 and not (spec or conv)]
        bad = [name for _text, name, spec, conv in string.Formatter().parse(template) if name is not None
               and (spec or conv or not _PLACEHOLDER.match(name))]
    except ValueError as exc:
        raise ConfigValueError(f"malformed template {template!r}: {exc}") from None
    if bad:
        raise ConfigValueError(f"placeholder {{{bad[0]}}} in {template!r} is not a plain lower-case name")
    return names


def _check_mqtt_pattern(pattern: str) -> list[str]:
    """Placeholders of an MQTT topic pattern: each a whole level; no MQTT wildcards (rules capture instead)."""
    if "+" in pattern or "#" in pattern:
        raise ConfigValueError(f"{pattern!r}: use {{name}} placeholders instead of MQTT wildcards + and #")
    if pattern.startswith("/") or pattern.endswith("/") or "//" in pattern:
        raise ConfigValueError(f"{pattern!r}: empty topic level")
    names = _placeholders(pattern)
    for level in pattern.split("/"):
        inner = _placeholders(level)
        if inner and (len(inner) > 1 or level != f"{{{inner[0]}}}"):
            raise ConfigValueError(f"{pattern!r}: a placeholder must be a whole topic level (got {level!r})")
    return names


class UpRuleConfig(Strict):
    """MQTT topics -> one Kafka topic and key: `{name}` levels capture, templates use the captures."""

    mqtt: str = Field(min_length=1, description="MQTT topic pattern; {prefix} and {fleet} come from the config, "
                      "other {name} levels capture; {robot_id} is required")
    where: dict[str, list[str]] = Field(default_factory=dict, description="allowed values of a capture; "
                                        "each becomes its own subscription (e.g. channel: [telemetry, event])")
    kafka_topic: str = Field(min_length=1, description="Kafka topic template, e.g. fleet.{channel}.{stream}")
    key: str = Field(default="{robot_id}", min_length=1, description="Kafka record key template (utf-8)")
    payload: Literal["record", "raw", "vda5050"] = Field(
        default="record", description="record: an envelope record (Avro, Protobuf or JSON), checked, transcoded "
        "and deduplicated; raw: forwarded unchanged (presence documents); vda5050: a VDA 5050 JSON message "
        "(uagv/v2/{manufacturer}/{robot_id}/{stream}, robot_id capturing the serialNumber, stream the VDA 5050 "
        "topic), written as `vda5050_format` says and deduplicated by (key, stream, headerId), a vehicle's counter "
        "reset told by its timestamp")
    vda5050_format: Literal["avro", "json"] = Field(
        default="avro", description="payload: vda5050 only: avro: Confluent-framed Avro of the record derived from "
        "the official JSON Schema (swarm_bridge/vda5050/avro/<stream>.avsc), registered under the subject "
        "subject_name_strategy names (<kafka topic>-value); a message that does not fit it goes to the DLQ, "
        "counted by reason (vda5050_wrong_type, ...); json: the JSON message unchanged")
    json_format: Literal["passthrough", "avro"] = Field(default="passthrough", description="JSON records: "
                                                        "forwarded as JSON, or transcoded to Avro (Confluent, "
                                                        "registered)")
    avro_format: Literal["avro", "protobuf"] = Field(default="avro", description="Avro records on Kafka: kept "
                                                     "Avro (Confluent framing), or transcoded to Protobuf (Confluent's "
                                                     "Protobuf framing, imports registered as references)")
    protobuf_format: Literal["avro", "protobuf"] = Field(default="avro", description="Protobuf records on Kafka: "
                                                         "transcoded to Avro, or kept Protobuf (Confluent's Protobuf "
                                                         "framing, imports registered as references)")

    @model_validator(mode="after")
    def _templates(self) -> UpRuleConfig:
        captures = [n for n in _check_mqtt_pattern(self.mqtt) if n not in CONFIG_NAMES]
        if "robot_id" not in captures:
            raise ConfigValueError(f"mqtt: {self.mqtt!r} must capture {{robot_id}} (records are keyed by robot)")
        if len(set(captures)) != len(captures):
            raise ConfigValueError(f"mqtt: {self.mqtt!r} captures a name twice")
        for name in self.where:
            if name not in captures:
                raise ConfigValueError(f"where: {name!r} is not captured by mqtt {self.mqtt!r}; captures: "
                                       f"{', '.join(captures)}")
            for value in self.where[name]:
                if not value or "/" in value or "+" in value or "#" in value:
                    raise ConfigValueError(f"where.{name}: {value!r} is not a single MQTT topic level")
        for field, template in (("kafka_topic", self.kafka_topic), ("key", self.key)):
            unknown = [n for n in _placeholders(template) if n not in captures and n not in CONFIG_NAMES]
            if unknown:
                raise ConfigValueError(f"{field}: {{{unknown[0]}}} is not captured by mqtt {self.mqtt!r}; "
                                       f"captures: {', '.join(captures)}")
        if not _KAFKA_TOPIC.match(re.sub(r"\{[a-z_0-9]+\}", "x", self.kafka_topic)):
            raise ConfigValueError(f"kafka_topic: {self.kafka_topic!r} may hold only letters, digits, '.', '_', '-'")
        if self.payload != "record" and self.json_format != "passthrough":
            raise ConfigValueError(f"json_format: avro needs payload: record (a {self.payload} rule forwards payloads "
                                   "unchanged)")
        if self.payload != "vda5050" and self.vda5050_format != "avro":
            raise ConfigValueError(f"vda5050_format: {self.vda5050_format} needs payload: vda5050 (a {self.payload} "
                                   "rule carries no VDA 5050 messages)")
        if self.payload != "record" and "protobuf" in (self.avro_format, self.protobuf_format):
            raise ConfigValueError(f"avro_format/protobuf_format: protobuf needs payload: record (a {self.payload} "
                                   "rule forwards payloads unchanged)")
        return self


class DownRuleConfig(Strict):
    """One Kafka command topic -> the robots' MQTT command topics; the record key is the robot id."""

    kafka_topic: str = Field(pattern=_KAFKA_TOPIC.pattern, description="Kafka topic to consume")
    mqtt: str = Field(min_length=1, description="MQTT topic template; {prefix}, {fleet}, {robot_id} (the key)")
    qos: Literal[1, 2] = Field(default=1, description="MQTT QoS of the publish (the offset commits after its ack)")
    payload: Literal["command", "vda5050"] = Field(
        default="command", description="command: a fleet command record (Avro, JSON), keyed by robot id; vda5050: "
        "a VDA 5050 message (order, instantActions) keyed manufacturer/serialNumber, which {robot_id} becomes "
        "(e.g. uagv/v2/{robot_id}/order): Confluent Avro of its VDA 5050 record (the writer's schema from the "
        "registry) sent as its JSON, or a JSON message forwarded unchanged; checked to name that vehicle")

    @field_validator("mqtt")
    @classmethod
    def _names(cls, value: str) -> str:
        names = _check_mqtt_pattern(value)
        unknown = [n for n in names if n not in (*CONFIG_NAMES, "robot_id")]
        if unknown:
            raise ConfigValueError(f"{{{unknown[0]}}} is not known here; use {{prefix}}, {{fleet}}, {{robot_id}}")
        if "robot_id" not in names:
            raise ConfigValueError(f"{value!r} must contain {{robot_id}} (each command goes to its robot)")
        return value


DEFAULT_UP_RULES = (
    UpRuleConfig(mqtt="{prefix}/{fleet}/{robot_id}/{channel}/{stream}",
                 where={"channel": ["telemetry", "event", "state"]}, kafka_topic="fleet.{channel}.{stream}"),
    UpRuleConfig(mqtt="{prefix}/{fleet}/{robot_id}/presence/status", kafka_topic="fleet.presence.status",
                 payload="raw"),
)
DEFAULT_DOWN_RULES = (
    DownRuleConfig(kafka_topic="fleet.command.task_command", mqtt="{prefix}/{fleet}/{robot_id}/command/task_command"),
)


class GatewayMqttConfig(Strict):
    """The hub's MQTT broker: session, flow control, shared subscription group, reconnect."""

    host: str = Field(default="127.0.0.1", min_length=1)
    port: int = Field(default=1883, ge=1, le=65535)
    topic_prefix: str = Field(default="swarm", pattern=NAME)
    share_group: str | None = Field(default=None, pattern=NAME, description="MQTT 5 shared subscription group "
                                    "($share/<group>/...) for several gateways that split the load; null (the "
                                    "default, one gateway per hub): a plain subscription, which Mosquitto keeps "
                                    "across a broker restart (it does not keep shared ones: see docs/gateway.md)")
    connect_timeout_s: float = Field(default=10.0, gt=0)
    keepalive_s: int = Field(default=30, ge=5)
    session_expiry_s: int = Field(default=3600, ge=1, description="how long the broker keeps the session (and "
                                  "the unacknowledged messages) of a stopped gateway")
    receive_maximum: int = Field(default=65535, ge=1, le=65535, description="MQTT 5 Receive Maximum: messages "
                                 "the broker sends before an ack; bounds what a gateway holds when Kafka stalls")
    reconnect_min_s: float = Field(default=0.5, gt=0)
    reconnect_max_s: float = Field(default=10.0, gt=0)
    gather_ms: float = Field(default=3.0, ge=0, le=100, description="while records are in flight, the up path "
                             "takes what arrived in turns at most this often (one wake-up, one ack write per turn): "
                             "less CPU per record at moderate rates for at most this much latency; 0: a turn per "
                             "arrival")
    username: str | None = None
    password_env: EnvVarName | None = Field(default=None, description="environment variable holding the password")
    tls: TlsConfig | None = None
    unix_socket: str | None = Field(default=None, min_length=1, max_length=107, description="path of the "
                                    "broker's Unix-domain socket on this hub (Mosquitto: `listener 0 <path>`); "
                                    "when set the gateway connects there instead of host:port (no port to expose, "
                                    "less kernel time per message than loopback TCP: docs/gateway.md); not with tls")

    @model_validator(mode="after")
    def _consistent(self) -> GatewayMqttConfig:
        if self.unix_socket is not None and self.tls is not None:
            raise ConfigValueError(f"unix_socket ({self.unix_socket!r}) and tls both set: a Unix-domain socket "
                                   "never leaves the hub, so it takes no TLS; set one of them to null")
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ConfigValueError(f"reconnect_max_s ({self.reconnect_max_s}) must be >= reconnect_min_s "
                                   f"({self.reconnect_min_s})")
        return self

    @property
    def password(self) -> str | None:
        return None if self.password_env is None else os.environ.get(self.password_env)


class GatewayKafkaConfig(Strict):
    """The Kafka cluster: producer batching and compression, backpressure bound, DLQ, command consumer group."""

    bootstrap: str = Field(default="127.0.0.1:9092", pattern=BOOTSTRAP,
                           description="bootstrap.servers, host:port[,host:port...]")
    connect_timeout_s: float = Field(default=10.0, gt=0)
    compression: Literal["lz4", "zstd", "gzip", "snappy", "none"] = "lz4"
    linger_ms: float = Field(default=10.0, ge=0, le=900_000, description="wait this long to fill a batch (each "
                             "batch is one produce request per partition: fewer, larger ones cut Kafka's CPU)")
    prompt_topics: list[str] = Field(default_factory=lambda: ["fleet.event.*"], description="Kafka topics (shell "
                                     "patterns, e.g. fleet.event.*) whose records a reader waits for (task status): "
                                     "sent by a producer of their own after prompt_linger_ms, while telemetry keeps "
                                     "its linger_ms batches; [] : every record by linger_ms")
    prompt_linger_ms: float = Field(default=1.0, ge=0, le=1000, description="linger of the prompt_topics' producer")
    batch_bytes: int = Field(default=1_000_000, ge=1024, description="largest producer batch per partition")
    delivery_timeout_s: float = Field(default=300.0, gt=0, description="librdkafka gives a record up after "
                                      "this; the gateway then produces it again (it is never acked unwritten)")
    max_inflight_records: int = Field(default=100_000, ge=1, description="records produced and not yet "
                                      "confirmed; above it the gateway holds new MQTT messages (backpressure)")
    dlq_topic: str = Field(default="fleet.dlq", pattern=_KAFKA_TOPIC.pattern)
    create_topics: bool = Field(default=True, description="create the DLQ and command topics at start (a "
                                "coordinator started later grows its command topic to one partition per shard)")
    new_topics: NewTopicsConfig = Field(default_factory=NewTopicsConfig, description="replication of the topics "
                                        "created; default what the cluster offers")
    command_group: str = Field(default="swarm_gateway_commands", pattern=NAME,
                               description="consumer group of the command topics")
    max_inflight_commands: int = Field(default=1000, ge=1, description="commands published and not yet "
                                       "acknowledged by the MQTT broker; above it consumption pauses")
    security: KafkaSecurity = Field(default_factory=KafkaSecurity, description="how every Kafka client of the "
                                    "gateway logs in (SASL/SCRAM, TLS); default PLAINTEXT")


class DedupConfig(Strict):
    """Duplicate removal by (robot_id, stream, seq): a window of seqs per stream, bounded, rebuilt at start."""

    window: int = Field(default=4096, ge=1, le=1 << 20, description="seqs remembered below the highest one per "
                        "(robot, stream); older ones count as duplicates (reason below_window)")
    max_streams: int = Field(default=100_000, ge=1, description="(robot, stream) pairs remembered; the oldest "
                             "is forgotten beyond it")
    rebuild_records: int = Field(default=20_000, ge=0, description="at start, the last records of each "
                                 "partition of the up topics read back to rebuild the windows; later at most as "
                                 "many per partition for `from_other_hubs` (0: neither)")
    from_other_hubs: bool = Field(default=True, description="robots may come from other hubs writing the same "
                                  "Kafka: before judging a record the windows cannot place (a stream new here, a "
                                  "new run, a gap), read back what the up topics got since (one batched read per "
                                  "loop turn that needs it); false: one hub, its gateways alone write these topics")


class SplitConfig(Strict):
    """Several gateway processes of one hub, each taking its own robots by plain subscriptions on disjoint
    filters (kept by Mosquitto over its restart, unlike shared ones); the same table in every gateway's config."""

    groups: dict[str, list[str]] = Field(min_length=1, description="gateway_id -> the robot ids that gateway "
                                         "takes; a robot in one group only")

    @model_validator(mode="after")
    def _disjoint(self) -> SplitConfig:
        owner: dict[str, str] = {}
        for gateway, robots in self.groups.items():
            if not re.match(NAME, gateway):
                raise ConfigValueError(f"groups: {gateway!r} is not a gateway_id (letters, digits, '_' and '-')")
            if not robots:
                raise ConfigValueError(f"groups.{gateway}: lists no robot; give it robot ids or remove the group")
            for robot in robots:
                if not re.match(NAME, robot) or len(robot) > MAX_NAME:
                    raise ConfigValueError(f"groups.{gateway}: {robot!r} is not a robot id (letters, digits, '_' "
                                           f"and '-', at most {MAX_NAME})")
                if robot in owner:
                    where = "twice" if owner[robot] == gateway else f"also in groups.{owner[robot]}"
                    raise ConfigValueError(f"groups.{gateway}: robot {robot!r} is {where}; a robot goes through "
                                           "one gateway only (else Kafka gets its records from both)")
                owner[robot] = gateway
        return self

    def robots_of(self, gateway_id: str) -> tuple[str, ...]:
        """The robots one gateway takes, in the order listed."""
        return tuple(self.groups[gateway_id])

    def robots_not_of(self, gateway_id: str) -> tuple[str, ...]:
        """The robots the other gateways of the hub take."""
        return tuple(r for gateway, robots in self.groups.items() if gateway != gateway_id for r in robots)


class ChunksConfig(Strict):
    """Records that robots send in chunks (docs/wire.md#chunks): how the gateway puts them together, and how it
    splits records too large for Kafka's default limits and commands too large for one MQTT publish."""

    max_record_mb: float = Field(default=64.0, gt=0, description="a chunked record announced larger is dropped "
                                 "(counted, 'record too large')")
    max_mb: float = Field(default=256.0, gt=0, description="chunk bytes held while records are put together; "
                          "beyond it the oldest partial record is dropped (counted, 'reassembly full')")
    max_age_s: float = Field(default=30.0, gt=0, description="a partial record with no new chunk for this long "
                             "is dropped (counted, 'expired')")
    kafka_chunk_bytes: int = Field(default=900_000, ge=4096, description="a Kafka record larger than this is "
                                   "written as chunks of at most this many bytes (Kafka's default "
                                   "message.max.bytes is 1 MiB); raise it with Kafka's limits (README)")
    command_chunk_bytes: int = Field(default=262_144, ge=4096, description="a command (payload: command) larger "
                                     "than this goes to its robot as chunks of at most this many bytes, which the "
                                     "robot puts together; VDA 5050 orders always go whole")


class HealthConfig(Strict):
    """The gateway's health record on Kafka (`routing/gateway_health.py`), which the fleet page shows per gateway:
    where it goes and how often."""

    topic: str = Field(default="fleet.health.gateway", pattern=_KAFKA_TOPIC.pattern, description="Kafka topic of "
                       "the records, key gateway_id (created with kafka.create_topics: one partition, compacted, "
                       "so a reader finds each gateway's last word)")
    interval_s: float = Field(default=5.0, ge=0.1, le=3600, description="a record this often, and one at an "
                              "orderly stop; a reader calls a gateway stale after 3 intervals without one")


class GatewayConfig(Strict):
    """Everything the edge gateway needs, validated before any socket opens."""

    gateway_id: str = Field(pattern=NAME, description="MQTT client ids <gateway_id>-up/-down (persistent "
                            "sessions: keep it across restarts), Kafka client.id")
    fleet: str = Field(pattern=NAME)
    mqtt: GatewayMqttConfig = GatewayMqttConfig()
    kafka: GatewayKafkaConfig = GatewayKafkaConfig()
    registry: str | None = Field(default=None, description="schema registry: a directory (embedded file "
                                 "registry) or http(s)://... (Confluent API); default $SWARM_BRIDGE_REGISTRY or "
                                 "$XDG_STATE_HOME/swarm_bridge/registry")
    subject_name_strategy: SubjectNameStrategyName = "topic_name"
    dedup: DedupConfig = DedupConfig()
    max_payload: int = Field(default=1 << 20, ge=1024, description="largest MQTT payload or record accepted "
                             "(bytes); larger ones go to the DLQ")
    metrics_port: int | None = Field(default=None, ge=0, le=65535, description="serve Prometheus /metrics here")
    chunks: ChunksConfig = Field(default_factory=ChunksConfig, description="records robots send in chunks")
    health: HealthConfig | None = Field(default_factory=HealthConfig, description="the gateway's health record "
                                        "on Kafka (for the fleet page); null: none")
    split: SplitConfig | None = Field(default=None, description="several gateways per hub: the robots each "
                                      "gateway_id takes (plain subscriptions on disjoint filters); null: this "
                                      "gateway takes every robot of the fleet")
    up: list[UpRuleConfig] = Field(default_factory=lambda: list(DEFAULT_UP_RULES), min_length=1)
    down: list[DownRuleConfig] = Field(default_factory=lambda: list(DEFAULT_DOWN_RULES))

    @model_validator(mode="after")
    def _topics_apart(self) -> GatewayConfig:
        commands = {rule.kafka_topic for rule in self.down}
        if self.kafka.dlq_topic in commands:
            raise ConfigValueError(f"kafka.dlq_topic {self.kafka.dlq_topic!r} is also a down rule's kafka_topic")
        for index, rule in enumerate(self.up):
            filled = rule.kafka_topic.replace("{prefix}", self.mqtt.topic_prefix).replace("{fleet}", self.fleet)
            if filled in commands or filled == self.kafka.dlq_topic:
                raise ConfigValueError(f"up[{index}].kafka_topic {rule.kafka_topic!r} is a command or DLQ topic")
            if self.health is not None and filled == self.health.topic:
                raise ConfigValueError(f"up[{index}].kafka_topic {rule.kafka_topic!r} is health.topic; give the "
                                       "health records a topic of their own")
        if self.health is not None and self.health.topic in (*commands, self.kafka.dlq_topic):
            raise ConfigValueError(f"health.topic {self.health.topic!r} is also a command or DLQ topic; give the "
                                   "health records a topic of their own")
        return self

    @model_validator(mode="after")
    def _split_fits(self) -> GatewayConfig:
        if self.split is None:
            return self
        if self.gateway_id not in self.split.groups:
            raise ConfigValueError(f"split.groups has no group for gateway_id {self.gateway_id!r} (groups: "
                                   f"{', '.join(self.split.groups)}); add one, or start this process with "
                                   "--set gateway_id=<one of them>")
        if self.mqtt.share_group is not None:
            raise ConfigValueError(f"mqtt.share_group ({self.mqtt.share_group!r}) and split both divide the robots; "
                                   "use one: split (plain subscriptions, kept over a broker restart) or share_group")
        for index, rule in enumerate(self.up):
            if "robot_id" in rule.where:
                raise ConfigValueError(f"up[{index}].where.robot_id and split both choose robots; list them under "
                                       f"split.groups.{self.gateway_id} only")
        return self
