"""Routes (ROS topic <-> uplink destination) and the naming of MQTT and Kafka topics and keys."""

from swarm_bridge.routing.naming import kafka_key, kafka_topic, mqtt_topic, presence_topic
from swarm_bridge.routing.route import Route, routes_for
from swarm_bridge.routing.sharding import murmur2, partition_of, shard_of

__all__ = ["Route", "kafka_key", "kafka_topic", "mqtt_topic", "murmur2", "partition_of", "presence_topic", "routes_for",
           "shard_of"]
