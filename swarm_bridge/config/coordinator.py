"""The fleet coordinator's config: Kafka (or MQTT for a single site), topics, shards, the fleet's capabilities,
task rules, policy."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

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
from swarm_bridge.config.security import KafkaSecurity

__all__ = ["CoordinatorConfig", "CoordinatorKafkaConfig", "CoordinatorMqttConfig", "CoordinatorRecordFormat",
           "CoordinatorTopics", "PolicyConfig", "TaskRulesConfig", "Vda5050Config"]

CoordinatorRecordFormat = Literal["avro", "json"]
RoundPacing = Literal["window", "commit"]  # kafka.round_pacing: how a coordinator round decides it has read enough
"""Record formats the coordinator reads and writes (robots' state, task status, commands); a format the coordinator
should speak is added here."""

TOPIC = r"^[A-Za-z0-9._-]+$"
NAME = r"^[A-Za-z0-9_-]+$"


class CoordinatorKafkaConfig(Strict):
    """The Kafka cluster, the consumer group the instances share, and transaction timing."""

    host: str = Field(default="127.0.0.1", min_length=1)
    port: int | None = Field(default=None, ge=1, le=65535)
    bootstrap: str | None = Field(default=None, pattern=BOOTSTRAP, description="several brokers of a cluster, "
                                  "host:port,host:port (in place of host/port): the coordinator starts while any "
                                  "of them answers")
    group: str = Field(default="swarm-coordinator", pattern=TOPIC, description="consumer group of all instances")
    instance_id: str | None = Field(default=None, pattern=TOPIC, description="unique per instance (its "
                                    "transactional id); default <hostname>-<pid>")
    session_timeout_s: float = Field(default=6.0, ge=1, description="an instance silent this long loses its shards")
    transaction_timeout_s: float = Field(default=10.0, ge=1, description="a dead instance's open transaction is "
                                         "aborted after this long; takeover waits for it")
    round_window_ms: float = Field(default=10.0, gt=0, le=1000, description="a round reads this long before it "
                                   "decides: longer means fewer, larger transactions (less Kafka CPU), shorter a "
                                   "lower latency (docs/fleet-scale.md)")
    round_pacing: RoundPacing = Field(default="window", description="window: a round reads for round_window_ms "
                                      "(fewest transactions: a hub whose cores are busy); commit: a round reads "
                                      "while the round before it commits, and an idle instance begins one at the "
                                      "first record (lowest latency: a coordinator beside a cluster with CPU to "
                                      "spare; more transactions)")
    connect_timeout_s: float = Field(default=10.0, gt=0)
    security: KafkaSecurity = Field(default_factory=KafkaSecurity, description="SASL/SCRAM and TLS to the "
                                    "cluster (docs/broker-security.md); default PLAINTEXT")
    new_topics: NewTopicsConfig = Field(default_factory=NewTopicsConfig, description="replication of the topics "
                                        "created (create_topics); default what the cluster offers")

    @model_validator(mode="after")
    def _one_address(self) -> CoordinatorKafkaConfig:
        if (self.port is None) == (self.bootstrap is None):
            raise ConfigValueError("give kafka.port (with kafka.host) for one broker, or kafka.bootstrap "
                                   "(host:port,host:port) for a cluster's brokers; not both, not neither")
        return self

    @property
    def servers(self) -> str:
        """bootstrap.servers: `bootstrap`, or `host:port`."""
        return self.bootstrap or f"{self.host}:{self.port}"

    def client_settings(self) -> dict[str, Any]:
        """bootstrap.servers and the security settings, for every Kafka client of the coordinator."""
        return {"bootstrap.servers": self.servers, **self.security.client_settings()}


class CoordinatorMqttConfig(Strict):
    """The broker of a single-site coordinator (mode mqtt): robots' topics `{topic_prefix}/{fleet}/...`."""

    host: str = Field(default="127.0.0.1", min_length=1)
    port: int = Field(ge=1, le=65535)
    topic_prefix: str = Field(default="swarm", pattern=NAME, description="first level of every robot topic")
    client_id: str | None = Field(default=None, pattern=TOPIC, description="MQTT client id (its persistent "
                                  "session); default <fleet>-coordinator")
    username: str | None = None
    password_env: EnvVarName | None = Field(default=None, description="name of the environment variable holding the "
                                     "password (never the password itself in a file)")
    tls: TlsConfig | None = None
    session_expiry_s: int = Field(default=3600, ge=0, description="how long the broker keeps the session (and "
                                  "queues robots' reports) while the coordinator is away")
    keepalive_s: int = Field(default=30, ge=5)
    connect_timeout_s: float = Field(default=10.0, gt=0)
    state_file: str | None = Field(default=None, description="JSON-lines snapshot of the tasks, written every "
                                   "`snapshot_period_s` and at stop, read at start; default: none (memory only)")
    snapshot_period_s: float = Field(default=5.0, gt=0)
    status_period_s: float = Field(default=1.0, gt=0, description="how often the retained fleet status is "
                                   "published (for `swarm-bridge fleet status`)")

    @property
    def password(self) -> str | None:
        return None if self.password_env is None else os.environ.get(self.password_env)


class CoordinatorTopics(Strict):
    """Kafka topics in and out; the sharded ones have exactly `shards` partitions."""

    submit: str = Field(default="fleet.tasks.submit", pattern=TOPIC, description="task submissions (JSON), "
                        "key task_id; sharded by task id")
    state: str = Field(default="fleet.state.robot_state", pattern=TOPIC, description="RobotState records")
    status: str = Field(default="fleet.event.task_status", pattern=TOPIC, description="TaskStatus records, "
                        "key robot_id; sharded by robot id")
    presence: str = Field(default="fleet.presence.status", pattern=TOPIC, description="presence JSON "
                          "{robot_id, state, reason}, key robot_id")
    commands: str = Field(default="fleet.command.task_command", pattern=TOPIC, description="TaskCommand records "
                          "down to the robots; sharded by robot id")
    events: str = Field(default="fleet.coordinator.tasks", pattern=TOPIC, description="task events (JSON), "
                        "compacted, key task_id; sharded by home shard")
    gateway_health: str = Field(default="fleet.health.gateway", pattern=TOPIC, description="the gateways' health "
                                "records (JSON, key gateway_id; their health.topic), shown by the fleet page")

    @model_validator(mode="after")
    def _distinct(self) -> CoordinatorTopics:
        names = list(self.model_dump().values())
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ConfigValueError(f"each topic needs its own name; used twice: {', '.join(dup)}")
        return self


class TaskRulesConfig(Strict):
    """Timeouts and retries of the task lifecycle."""

    accept_timeout_s: float = Field(default=30.0, gt=0, description="assigned, not accepted: try another robot")
    run_timeout_s: float = Field(default=600.0, gt=0, description="accepted/running, no report: the task fails")
    max_attempts: int = Field(default=3, ge=1, description="robots tried before the task fails")
    robot_offline_after_s: float = Field(default=10.0, gt=0, description="no RobotState for this long counts as "
                                         "offline (like a Last Will): its tasks are reassigned")
    keep_ended_s: float = Field(default=10.0, gt=0, description="mode kafka: an ended task is held whole this "
                                "long, then only its id (a resubmission stays a duplicate, a late status stale): "
                                "the book no longer grows by a whole task per task ever run")


class PolicyConfig(Strict):
    """The assignment policy, chosen by name, and its weights."""

    name: Literal["cost", "nearest"] = "cost"
    speed_mps: float = Field(default=1.0, gt=0, description="to turn distance into seconds")
    task_s: float = Field(default=60.0, ge=0, description="expected seconds per queued task")
    battery_weight: float = Field(default=30.0, ge=0, description="seconds of cost for an empty battery")
    queue_weight: float = Field(default=10.0, ge=0, description="seconds of cost per queued task")
    min_battery_percent: float = Field(default=20.0, ge=0, le=100, description="below: only charge tasks")
    max_queue: int = Field(default=3, ge=1, description="tasks a robot holds at once (assigned..running)")


class Vda5050Config(Strict):
    """Plain VDA 5050 2.1 vehicles (mode mqtt: on the site's broker; mode kafka: through the gateway's VDA 5050
    rules): their topics, which robot kind each
    manufacturer's vehicles are, the map orders name, and the action a task kind runs at its goal."""

    interface_name: str = Field(default="uagv", pattern=NAME, description="first topic level: "
                                "interfaceName/majorVersion/manufacturer/serialNumber/topic")
    major_version: str = Field(default="v2", pattern=r"^v[0-9]+$", description="second topic level")
    manufacturers: dict[str, str] = Field(min_length=1, description="manufacturer -> robot kind (a key of "
                                          "capabilities) of its vehicles; vehicles of other manufacturers are "
                                          "ignored and counted")
    map_id: str = Field(default="map", min_length=1, description="mapId of every node of an order")
    actions: dict[str, str] = Field(default_factory=dict, description="task kind -> VDA 5050 actionType run on "
                                    "the goal node (the task's parameters become its actionParameters); a kind not "
                                    "listed only drives to its target")
    schemas: str | None = Field(default=None, description="folder of the official VDA 5050 JSON Schemas "
                                "(json_schemas/ of the 2.1 release): every order and instant action sent and every "
                                "state and connection received is checked against them; default: the models only")
    goal_deviation_m: float = Field(default=0.5, gt=0, description="allowedDeviationXY of the goal node")
    kafka_topic: str = Field(default="vda5050.{stream}", pattern=r"^[A-Za-z0-9._{}-]+$",
                             description="mode kafka: the Kafka topic of each VDA 5050 topic ({stream}: state, "
                             "connection, factsheet from the gateway's up rules; order, instantActions to its down "
                             "rules), records keyed manufacturer/serialNumber")
    kafka_format: Literal["avro", "json"] = Field(
        default="avro", description="mode kafka: orders and instantActions written as Confluent-framed Avro of the "
        "records derived from the official JSON Schemas (registered in `registry` under subject_name_strategy's "
        "subject, as the gateway's vda5050_format: avro writes the vehicles' messages), or as JSON; the vehicles' "
        "records are read in either format")

    def kafka_topics(self) -> dict[str, str]:
        """VDA 5050 topic name -> its Kafka topic (mode kafka)."""
        return {name: self.kafka_topic.replace("{stream}", name)
                for name in ("state", "connection", "factsheet", "order", "instantActions")}

    @field_validator("schemas")
    @classmethod
    def _schemas_exist(cls, value: str | None) -> str | None:
        if value is not None and not (Path(value).expanduser() / "state.schema").is_file():
            raise ConfigValueError(f"{value}: no state.schema there; name the json_schemas folder of the VDA 5050 "
                                   "2.1 release")
        return value

    @field_validator("kafka_topic")
    @classmethod
    def _one_topic_per_stream(cls, value: str) -> str:
        if "{stream}" not in value:
            raise ConfigValueError(f"{value!r} has no {{stream}}: each VDA 5050 topic needs a Kafka topic of its own "
                                   "(e.g. vda5050.{stream})")
        return value

    @field_validator("manufacturers")
    @classmethod
    def _manufacturer_levels(cls, value: dict[str, str]) -> dict[str, str]:
        bad = [m for m in value if not m or any(c in m for c in "/+#$")]
        if bad:
            raise ConfigValueError(f"{bad[0]!r} cannot be a topic level (no '/', '+', '#' or '$')")
        return value


class CoordinatorConfig(Strict):
    """Everything the coordinator needs, validated before any socket opens."""

    fleet: str = Field(pattern=NAME)
    mode: Literal["kafka", "mqtt"] = Field(default="kafka", description="kafka: sharded instances on Kafka; "
                                           "mqtt: one instance for a single site, straight on the MQTT broker")
    shards: int = Field(default=1, ge=1, le=4096, description="fixed for the fleet's life; partitions of sharded "
                        "topics (required in mode kafka)")
    kafka: CoordinatorKafkaConfig = CoordinatorKafkaConfig(port=9092)
    mqtt: CoordinatorMqttConfig | None = None
    topics: CoordinatorTopics = CoordinatorTopics()
    robot_format: CoordinatorRecordFormat = Field(default="avro", description="format of RobotState, TaskStatus "
                                                  "and TaskCommand records; the robots' routes must use the same")
    registry: str | None = Field(default=None, description="schema registry for Avro: a directory or http(s)://; "
                                 "default $SWARM_BRIDGE_REGISTRY or the embedded file registry")
    subject_name_strategy: SubjectNameStrategyName = "topic_name"
    capabilities: dict[str, list[str]] = Field(min_length=1, description="robot kind -> what it can do; a task "
                                               "kind outside all of these is rejected")
    tasks: TaskRulesConfig = TaskRulesConfig()
    policy: PolicyConfig = PolicyConfig()
    create_topics: bool = Field(default=True, description="create missing topics with `shards` partitions (and "
                                "grow sharded ones made with fewer, e.g. by a gateway started first)")
    metrics_port: int | None = Field(default=None, ge=0, le=65535, description="serve Prometheus /metrics here")
    vda5050: Vda5050Config | None = Field(default=None, description="plain VDA 5050 vehicles beside the "
                                          "swarm_bridge robots")
    signing_key: str | None = Field(default=None, description="Ed25519 private key (PKCS8 PEM, <key_id>.pem) to "
                                    "sign every command with; robots trust <key_id>.pub.pem")

    @field_validator("signing_key")
    @classmethod
    def _key_exists(cls, value: str | None) -> str | None:
        if value is not None and not Path(value).expanduser().is_file():
            raise ConfigValueError(f"no such file: {value} (make one: swarm-bridge keys generate)")
        return value

    @model_validator(mode="after")
    def _mode_sections(self) -> CoordinatorConfig:
        given = self.model_fields_set
        if self.mode == "kafka":
            missing = [key for key in ("kafka", "shards") if key not in given]
            if missing:
                raise ConfigValueError(f"mode kafka needs {' and '.join(missing)} (or set mode: mqtt with an mqtt: "
                                       "section for a single site without Kafka)")
        elif self.mqtt is None:
            raise ConfigValueError("mode mqtt needs an mqtt: section (host, port, topic_prefix, ...)")
        return self

    @model_validator(mode="after")
    def _capabilities_named(self) -> CoordinatorConfig:
        for kind, caps in self.capabilities.items():
            if not caps:
                raise ConfigValueError(f"capabilities.{kind}: list at least one capability")
            bad = [c for c in caps if not c or not all(ch.isalnum() or ch in "_-" for ch in c)]
            if bad:
                raise ConfigValueError(f"capabilities.{kind}: {bad[0]!r} is not a name (letters, digits, '_' and '-' "
                                       "only)")
        return self

    @model_validator(mode="after")
    def _vda5050_fits(self) -> CoordinatorConfig:
        vda = self.vda5050
        if vda is None:
            return self
        for manufacturer, kind in vda.manufacturers.items():
            if kind not in self.capabilities:
                raise ConfigValueError(f"vda5050.manufacturers.{manufacturer}: robot kind {kind!r} is not a key of "
                                       f"capabilities ({', '.join(sorted(self.capabilities))})")
        unknown = sorted(set(vda.actions) - self.kinds)
        if unknown:
            raise ConfigValueError(f"vda5050.actions.{unknown[0]}: not a task kind of the fleet "
                                   f"({', '.join(sorted(self.kinds))})")
        return self

    @property
    def kinds(self) -> frozenset[str]:
        """Every task kind the fleet can do (the union of the capability sets)."""
        return frozenset(c for caps in self.capabilities.values() for c in caps)
