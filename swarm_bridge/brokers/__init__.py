"""Local brokers for tests and demos: a real Mosquitto and a real single-node Kafka (KRaft); free ports and
ROS domain ids to run them side by side.

Lifecycle: choose a run directory and free loopback ports -> `start()` (writes config, spawns
detached, waits until clients can connect) -> use `url` / `bootstrap` -> `stop()`. Config, data,
`<name>.log` and `<name>.pid` stay in the run directory; restarting on it keeps the data.
"""

from swarm_bridge.brokers.domains import DomainLease, DomainsExhausted, lease_domain
from swarm_bridge.brokers.errors import BrokerError, BrokerSettingError
from swarm_bridge.brokers.kafka import Kafka, KafkaCluster
from swarm_bridge.brokers.mosquitto import Mosquitto
from swarm_bridge.brokers.ports import free_port, port_in_use

__all__ = ["BrokerError", "BrokerSettingError", "DomainLease", "DomainsExhausted", "Kafka", "KafkaCluster",
           "Mosquitto", "free_port", "lease_domain", "port_in_use"]
