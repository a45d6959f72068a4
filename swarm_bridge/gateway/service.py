"""The gateway process: wires rules, registry, dedup and both directions; runs until told to stop.

Lifecycle: open the registry -> create the DLQ, command and health topics -> rebuild the dedup windows from Kafka
-> connect MQTT (up, then down) -> loop until `stop` is set (SIGTERM), a health record every health.interval_s
-> drain, ack, disconnect -> the last health record (stopped).
"""

from __future__ import annotations

import logging
import threading
import time

from swarm_bridge.config import default_registry
from swarm_bridge.config.gateway import GatewayConfig
from swarm_bridge.gateway.dedup import Dedup
from swarm_bridge.gateway.health import HealthReporter, health_topic
from swarm_bridge.gateway.kafka_to_mqtt import KafkaToMqtt
from swarm_bridge.gateway.metrics import GatewayMetrics
from swarm_bridge.gateway.mqtt_to_kafka import MqttToKafka
from swarm_bridge.gateway.rules import down_routes, up_rules
from swarm_bridge.gateway.schemas import SchemaBook
from swarm_bridge.gateway.split import UnlistedRobots
from swarm_bridge.gateway.tail import DedupTail
from swarm_bridge.gateway.translate import Translator

__all__ = ["Gateway"]

log = logging.getLogger(__name__)

_STATUS_EVERY_S = 30.0


class Gateway:
    """One edge gateway: `start()` (LinkError when a broker is unreachable), `run(stop)`, `close()`."""

    def __init__(self, config: GatewayConfig) -> None:
        from swarm_bridge.codec.registry import open_registry, subject_name_strategy

        self.config = config
        self.metrics = GatewayMetrics()
        self.schemas = SchemaBook(open_registry(config.registry or default_registry()),  # one per process
                                  subject_name=subject_name_strategy(config.subject_name_strategy))
        self.rules = up_rules(config)
        self.dedup = Dedup(window=config.dedup.window, max_streams=config.dedup.max_streams,
                           whole=config.mqtt.share_group is None)
        self.tail = DedupTail(self.dedup, config, self.rules)
        self.up = MqttToKafka(config, rules=self.rules, dedup=self.dedup, metrics=self.metrics,
                              translator=Translator(self.schemas, max_payload=config.max_payload),
                              look_up=self.tail.look_up if config.dedup.rebuild_records and config.dedup.from_other_hubs
                              else None)
        self.down = KafkaToMqtt(config, routes=down_routes(config), schemas=self.schemas, counts=self.metrics.counts,
                                metrics=self.metrics, unlisted=UnlistedRobots(config) if config.split else None)
        self.metrics_port: int | None = None
        self.health: HealthReporter | None = None  # made at start (its producer connects)

    def start(self) -> None:
        """Kafka login, dedup windows, topics, MQTT connections, metrics endpoint, in that order."""
        from swarm_bridge.transport.link import LinkError
        from swarm_bridge.transport.probes import kafka_login_problem
        from swarm_bridge.transport.topics import ensure_kafka_topics

        config = self.config
        security = config.kafka.security
        problem = kafka_login_problem(config.kafka.bootstrap, settings=security.client_settings(),
                                      timeout_s=config.kafka.connect_timeout_s)
        if problem is not None:
            fix = (f"check kafka.security ({security.describe()}) against the cluster's users"
                   if problem.startswith("login refused") else "start Kafka or fix kafka.bootstrap")
            raise LinkError(f"kafka://{config.kafka.bootstrap}", problem, fix)
        self.tail.rebuild()
        if config.kafka.create_topics:
            health = [health_topic(config.health)] if config.health is not None else []
            ensure_kafka_topics(config.kafka.bootstrap, [config.kafka.dlq_topic, *(r.kafka_topic for r in config.down),
                                                         *health],
                                timeout_s=config.kafka.connect_timeout_s,
                                settings=config.kafka.security.client_settings(),
                                replication_factor=config.kafka.new_topics.replication_factor,
                                min_insync_replicas=config.kafka.new_topics.min_insync_replicas)
        self.up.connect()
        self.down.start()
        if config.health is not None:
            self.health = HealthReporter(config, self.metrics.counts, commands_pending=lambda: self.down.pending)
        if config.metrics_port is not None:
            self.metrics_port = self.metrics.serve(config.metrics_port)
            log.info("metrics on http://127.0.0.1:%d/metrics", self.metrics_port)
        log.info("gateway %s (fleet %s): running", config.gateway_id, config.fleet)

    def run(self, stop: threading.Event) -> None:
        """Turn the up loop until `stop` is set; a health record when due (looked at every 16 turns: at most
        ~0.1 s late when idle), a status line every 30 s."""
        next_status = time.monotonic() + _STATUS_EVERY_S
        up, health = self.up, self.health
        turns = 0
        while not stop.is_set():
            up.run_once()
            turns += 1
            if health is not None and turns % 16 == 0:
                health.tick()
            if turns % 1000 == 0 and time.monotonic() >= next_status:
                next_status += _STATUS_EVERY_S
                log.info("status: %s", self.metrics.counts.summary())

    def close(self) -> None:
        """Drain both directions and disconnect; unconfirmed MQTT messages stay unacked in the broker."""
        self.down.close()
        self.up.close()
        if self.health is not None:
            self.health.close(self.config.kafka.connect_timeout_s)
        self.tail.close()
        self.metrics.close()
        self.schemas.registry.close()
        if self.tail.look_ups:
            log.info("dedup: the up topics read back %d times for records new to this gateway (%d records, %.2f s)",
                     self.tail.look_ups, self.tail.looked_up_records, self.tail.look_up_ns / 1e9)
        log.info("gateway %s stopped: %s", self.config.gateway_id, self.metrics.counts.summary())
