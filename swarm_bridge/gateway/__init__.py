"""The edge gateway: MQTT <-> Kafka translation with no loss and no duplicates.

Pure core: `rules` (topic mapping), `split` (which robots' filters this gateway of a hub takes), `dedup` (seq
windows), `heads` (envelope head), `translate` (payload -> Kafka records), `ledger` (which message waits for which
record). Adapters: `mqtt_to_kafka` (the MQTT 5 client + producer), `kafka_to_mqtt` (consumer + the MQTT 5
client), `tail` (dedup windows read back from Kafka: at start, and for a robot from another hub); `service` wires
them.
"""

from swarm_bridge.gateway.dedup import Dedup
from swarm_bridge.gateway.rules import DownRoute, UpRoute, UpRules, down_routes, up_rules
from swarm_bridge.gateway.translate import DeadLetter, KafkaRecord, Translation, Translator

__all__ = ["DeadLetter", "Dedup", "DownRoute", "KafkaRecord", "Translation", "Translator", "UpRoute", "UpRules",
           "down_routes", "up_rules"]
