"""Routes (ROS topic <-> uplink destination) and the naming of MQTT and Kafka topics and keys."""

from swarm_bridge.routing.naming import kafka_key, kafka_topic, mqtt_topic, presence_topic
from swarm_bridge.routing.route import Route, routes_for

__all__ = ["Route", "kafka_key", "kafka_topic", "mqtt_topic", "presence_topic", "routes_for"]
