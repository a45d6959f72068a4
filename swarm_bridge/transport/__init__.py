"""Uplinks to the brokers: MQTT (our MQTT 5 client on `mqtt5`) and Kafka (confluent-kafka); the only place
they are imported."""

from swarm_bridge.transport.kafka import KafkaLink
from swarm_bridge.transport.link import Done, LinkBusy, LinkError, LinkSettingError, LinkStats, Uplink
from swarm_bridge.transport.mqtt import MqttLink
from swarm_bridge.transport.topics import ReplicationError, TopicError, TopicSpec, ensure_kafka_topics
from swarm_bridge.transport.uplinks import build_uplink, open_uplink

__all__ = [
    "Done",
    "KafkaLink",
    "LinkBusy",
    "LinkError",
    "LinkSettingError",
    "LinkStats",
    "MqttLink",
    "ReplicationError",
    "TopicError",
    "TopicSpec",
    "Uplink",
    "build_uplink",
    "ensure_kafka_topics",
    "open_uplink",
]
