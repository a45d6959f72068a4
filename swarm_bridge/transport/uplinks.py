"""Open the uplink a config names: one generic entry point keyed by kind."""

from __future__ import annotations

from swarm_bridge.config.robot import UplinkConfig
from swarm_bridge.transport.kafka import KafkaLink
from swarm_bridge.transport.link import Uplink
from swarm_bridge.transport.mqtt import MqttLink

__all__ = ["open_uplink"]


def open_uplink(config: UplinkConfig, *, client_id: str) -> Uplink:
    """A connected MQTT or Kafka link for `config`; raises LinkError when it cannot connect."""
    link: Uplink
    if config.kind == "mqtt":
        link = MqttLink(
            host=config.host, port=config.port, client_id=client_id, connect_timeout_s=config.connect_timeout_s
        )
    else:
        link = KafkaLink(
            bootstrap=f"{config.host}:{config.port}", client_id=client_id,
            connect_timeout_s=config.connect_timeout_s,
        )
    link.connect()
    return link
