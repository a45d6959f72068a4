"""Open the uplink a robot's config names: one generic entry point, one table entry per uplink kind."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from swarm_bridge.config.robot import RobotBridgeConfig
from swarm_bridge.config.uplinks import KafkaUplink, MqttUplink, UplinkBase
from swarm_bridge.routing.naming import presence_topic
from swarm_bridge.routing.sharding import shard_of
from swarm_bridge.transport.kafka import KafkaLink, KeyedReader
from swarm_bridge.transport.link import Uplink
from swarm_bridge.transport.mqtt import MqttLink, MqttTls, PresenceTopic

__all__ = ["UPLINKS", "UplinkKind", "build_uplink", "open_uplink"]

Config = TypeVar("Config", bound=UplinkBase)


@dataclass(frozen=True)
class UplinkKind(Generic[Config]):
    """One uplink kind: its config model (a member of `config.uplinks.UplinkConfig`) and how to build its link
    (not yet connected) from that config, the robot's config and its client id."""

    config: type[Config]
    link: Callable[[Config, RobotBridgeConfig, str], Uplink]


def _mqtt(uplink: MqttUplink, config: RobotBridgeConfig, client_id: str) -> Uplink:
    """The MQTT 5 uplink on the compiled-codec client, with the robot's presence as Last Will."""
    tls = None if uplink.tls is None else MqttTls(uplink.tls.ca_file, uplink.tls.cert_file, uplink.tls.key_file)
    return MqttLink(
        host=uplink.host, port=uplink.port, client_id=client_id, connect_timeout_s=uplink.connect_timeout_s,
        max_inflight=uplink.max_inflight, session_expiry_s=uplink.session_expiry_s,
        hold_unsubscribed=uplink.hold_unsubscribed,
        keepalive_s=uplink.keepalive_s, ack_timeout_s=uplink.ack_timeout_s, reconnect_min_s=uplink.reconnect_min_s,
        reconnect_max_s=uplink.reconnect_max_s, username=uplink.username, password=uplink.password, tls=tls,
        presence=PresenceTopic(presence_topic(uplink.topic_prefix, config.fleet, config.robot_id), config.robot_id),
    )


def _kafka(uplink: KafkaUplink, config: RobotBridgeConfig, client_id: str) -> Uplink:
    """The Kafka uplink (confluent-kafka), reading commands keyed by the robot id."""
    security = uplink.security
    return KafkaLink(bootstrap=f"{uplink.host}:{uplink.port}", client_id=client_id,
                     connect_timeout_s=uplink.connect_timeout_s, settings=security.client_settings(),
                     login_fix=f"check uplink.security ({security.describe()}) against the cluster's users",
                     reader=KeyedReader(config.robot_id, shard_of, config.commands.lookback_s))


UPLINKS: dict[str, UplinkKind[Any]] = {
    "mqtt": UplinkKind(MqttUplink, _mqtt),
    "kafka": UplinkKind(KafkaUplink, _kafka),
}
"""uplink.kind -> its config model and how to build its link; the same kinds as `config.uplinks.UPLINK_KINDS`."""


def build_uplink(config: RobotBridgeConfig) -> Uplink:
    """The robot's MQTT or Kafka link, not yet connected: its down routes subscribe before `connect`, so what the
    broker kept for the robot's session, sent right after the connect, finds them."""
    return UPLINKS[config.uplink.kind].link(config.uplink, config, f"{config.fleet}-{config.robot_id}")


def open_uplink(config: RobotBridgeConfig) -> Uplink:
    """The robot's MQTT or Kafka link, connected; raises LinkError when unreachable and the config
    requires the uplink at start (else it keeps trying in the background while records spool)."""
    link = build_uplink(config)
    link.connect(require=config.uplink.require_at_start)
    return link
