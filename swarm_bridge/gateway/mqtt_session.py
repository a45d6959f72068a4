"""The gateway's MQTT clients, up and down: one way to log in (credentials, TLS) and open a persistent session."""

from __future__ import annotations

import ssl
from collections.abc import Callable

from swarm_bridge.config import GatewayConfig
from swarm_bridge.transport.link import LinkError
from swarm_bridge.transport.mqtt_client import Message, MqttClient, MqttOptions, tls_context
from swarm_bridge.transport.mqtt_errors import MqttUnreachable

__all__ = ["gateway_client", "start_session"]


def gateway_client(config: GatewayConfig, direction: str, *, on_message: Callable[[Message], None],
                   on_connect: Callable[[bool], None] | None = None, receive_max: int = 1000,
                   max_inflight: int = 1000, read_gather_s: float = 0.0) -> MqttClient:
    """An MQTT 5 client `<gateway_id>-<direction>` with the config's credentials, TLS and persistent session
    (clean_start false, `session_expiry_s`); LinkError naming the TLS files when they are unusable.
    `read_gather_s`: see `MqttOptions` (the up direction reads its stream of PUBLISHes in fewer, larger reads)."""
    mqtt = config.mqtt
    tls = None
    if mqtt.tls is not None:
        try:
            tls = tls_context(mqtt.tls.ca_file, mqtt.tls.cert_file, mqtt.tls.key_file)
        except (OSError, ssl.SSLError) as exc:
            raise LinkError(f"mqtts://{mqtt.host}:{mqtt.port}", f"TLS files unusable ({exc})",
                            "check mqtt.tls paths") from None
    options = MqttOptions(
        host=mqtt.host, port=mqtt.port, client_id=f"{config.gateway_id}-{direction}", clean_start=False,
        session_expiry_s=mqtt.session_expiry_s, keepalive_s=mqtt.keepalive_s, username=mqtt.username,
        password=mqtt.password, tls=tls, receive_max=receive_max, max_inflight=max_inflight,
        connect_timeout_s=mqtt.connect_timeout_s, reconnect_min_s=mqtt.reconnect_min_s,
        reconnect_max_s=mqtt.reconnect_max_s, read_gather_s=read_gather_s, unix_socket=mqtt.unix_socket)
    return MqttClient(options, on_message=on_message, on_connect=on_connect)


def start_session(client: MqttClient) -> None:
    """Connect and wait for the first CONNACK; LinkError naming the endpoint when the broker is unreachable
    (a refusal, e.g. a wrong password, is already a LinkError with its reason code and fix)."""
    try:
        client.start()
    except MqttUnreachable as exc:
        raise LinkError(exc.endpoint, f"cannot connect ({exc.problem})",
                        "start the broker or fix mqtt.host/port (mqtt.unix_socket when set)") from None
