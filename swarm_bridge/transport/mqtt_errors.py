"""Typed errors of the MQTT 5 client: each names the broker endpoint, the MQTT reason and the fix."""

from __future__ import annotations

from swarm_bridge.errors import SwarmBridgeError
from swarm_bridge.transport.link import LinkBusy, LinkError, LinkSettingError

__all__ = ["InflightFull", "MqttDisconnected", "MqttProtocolError", "MqttRefused", "MqttUnreachable",
           "PacketTooLarge", "SubscribeRefused", "check_publish_qos", "reason_text"]


def reason_text(code: int, reason_str: str | None) -> str:
    """`0x86 BAD_USER_NAME_OR_PASSWORD ("broker's reason string")`, from a reason code and optional string."""
    from swarm_bridge.transport.mqtt_wire import reason_name

    text = f"0x{code:02x} {reason_name(code)}"
    return f"{text} ({reason_str!r})" if reason_str else text


class MqttRefused(LinkError):
    """The broker refused the CONNECT (CONNACK reason code >= 0x80)."""

    def __init__(self, endpoint: str, code: int, reason_str: str | None, fix: str) -> None:
        self.code, self.reason_str = code, reason_str
        super().__init__(endpoint, f"connection refused: {reason_text(code, reason_str)}", fix)


class MqttUnreachable(LinkError):
    """No CONNACK from the broker in time (socket, TLS or timeout)."""


class MqttProtocolError(LinkError):
    """The broker sent bytes that are not valid MQTT 5 (or break the protocol); the client reconnects."""


class MqttDisconnected(LinkError):
    """The broker closed the connection, with a DISCONNECT reason when it sent one."""

    def __init__(self, endpoint: str, problem: str, code: int | None = None) -> None:
        self.code = code
        super().__init__(endpoint, problem, "the client reconnects by itself; see the broker's log for why")


class SubscribeRefused(LinkError):
    """The broker refused one or more topic filters of a SUBSCRIBE (SUBACK reason code >= 0x80)."""

    def __init__(self, endpoint: str, refused: dict[str, str]) -> None:
        self.refused = refused
        listing = ", ".join(f"{f!r}: {why}" for f, why in refused.items())
        super().__init__(endpoint, f"subscription refused for {listing}",
                         "check the broker's ACL and that the filter is valid (shared: $share/<group>/<filter>)")


class PacketTooLarge(SwarmBridgeError, ValueError):
    """A PUBLISH bigger than the broker's Maximum Packet Size; it was not sent (counted in `too_large_out`)."""

    def __init__(self, endpoint: str, topic: str, size: int, limit: int) -> None:
        self.endpoint, self.topic, self.size, self.limit = endpoint, topic, size, limit
        super().__init__(f"{endpoint}: PUBLISH to {topic!r} is {size} bytes, the broker accepts at most {limit} "
                         "(its Maximum Packet Size). Fix: send smaller records or raise the broker's max_packet_size")


def check_publish_qos(endpoint: str, qos: int) -> None:
    """LinkSettingError unless `qos` is 0 or 1, the QoS levels the project's MQTT clients publish with."""
    if qos not in (0, 1):
        raise LinkSettingError(endpoint, f"publish qos must be 0 or 1 (got {qos})",
                               "give the route qos 0 or 1 (MQTT QoS 2 is not used)")


class InflightFull(LinkBusy):
    """Every slot of the QoS 1 in-flight window is taken (broker's Receive Maximum); retry after some PUBACKs."""

    def __init__(self, endpoint: str, window: int) -> None:
        self.endpoint, self.window = endpoint, window
        super().__init__(f"{endpoint}: {window} QoS 1 messages await their PUBACK (the in-flight window); "
                         "retry later or wait longer (publish(timeout_s=...))")
