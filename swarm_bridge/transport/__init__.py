"""Uplinks to the brokers: MQTT (paho) and Kafka (confluent-kafka); the only place they are imported."""

from swarm_bridge.transport.kafka import KafkaLink
from swarm_bridge.transport.link import Done, LinkBusy, LinkError, LinkStats, Uplink
from swarm_bridge.transport.mqtt import MqttLink
from swarm_bridge.transport.taps import KafkaTap, MqttTap, TappedRecord, ensure_kafka_topics
from swarm_bridge.transport.uplinks import open_uplink

__all__ = [
    "Done",
    "KafkaLink",
    "KafkaTap",
    "LinkBusy",
    "LinkError",
    "LinkStats",
    "MqttLink",
    "MqttTap",
    "TappedRecord",
    "Uplink",
    "ensure_kafka_topics",
    "open_uplink",
]
