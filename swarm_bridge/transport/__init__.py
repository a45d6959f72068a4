"""Uplinks to the brokers: MQTT (paho) and Kafka (confluent-kafka); the only place they are imported."""

from swarm_bridge.transport.kafka import KafkaLink
from swarm_bridge.transport.link import LinkError, LinkStats, Uplink
from swarm_bridge.transport.mqtt import MqttLink
from swarm_bridge.transport.uplinks import open_uplink

__all__ = ["KafkaLink", "LinkError", "LinkStats", "MqttLink", "Uplink", "open_uplink"]
