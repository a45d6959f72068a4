"""MQTT 5 uplink on paho-mqtt: publish records at QoS 1 and count the broker's acknowledgements."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from swarm_bridge.transport.link import LinkError, LinkStats

__all__ = ["MqttLink"]

log = logging.getLogger(__name__)


class MqttLink:
    """One paho client on its own network thread; `send` never blocks on the broker."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        client_id: str,
        connect_timeout_s: float = 10.0,
        content_type: str = "application/json",
        max_inflight: int = 1000,
    ) -> None:
        self.endpoint = f"mqtt://{host}:{port}"
        self.stats = LinkStats()
        self._host, self._port, self._timeout = host, port, connect_timeout_s
        self._connected = threading.Event()
        self._refusal: str | None = None
        self._client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5)
        self._client.max_inflight_messages_set(max_inflight)
        self._client.max_queued_messages_set(0)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish
        self._props = Properties(PacketTypes.PUBLISH)
        self._props.ContentType = content_type

    def connect(self) -> None:
        """Connect and wait for CONNACK, raising LinkError with the reason if refused or unreachable."""
        try:
            self._client.connect(self._host, self._port, keepalive=30)
        except OSError as exc:
            raise LinkError(
                self.endpoint, f"cannot connect ({exc})", "start the broker or fix uplink host/port"
            ) from None
        self._client.loop_start()
        deadline = time.monotonic() + self._timeout
        while not self._connected.wait(0.05):
            if self._refusal or time.monotonic() > deadline:
                self._client.loop_stop()
                problem = self._refusal or f"no CONNACK within {self._timeout:g} s"
                raise LinkError(self.endpoint, problem, "check the broker is an MQTT 5 broker and reachable")
        log.info("%s: connected", self.endpoint)

    def send(self, destination: str, key: bytes, payload: bytes, *, qos: int = 1) -> None:
        """Publish `payload` on MQTT topic `destination` (the key is implied by the topic)."""
        info = self._client.publish(destination, payload, qos=qos, properties=self._props)
        if info.rc != paho.MQTT_ERR_SUCCESS:
            self.stats.add(sent=1, failed=1)
            log.warning("%s: publish to %s failed: %s", self.endpoint, destination, paho.error_string(info.rc))
            return
        self.stats.add(sent=1, acked=1 if qos == 0 else 0)

    def flush(self, timeout: float) -> int:
        """Wait until every QoS>0 publish is acknowledged or `timeout` passes; returns how many remain."""
        deadline = time.monotonic() + timeout
        while self.stats.pending > 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.stats.pending

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def _on_connect(self, _c: Any, _u: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if reason.is_failure:
            self._refusal = f"broker refused the connection: {reason}"
            return
        self._connected.set()

    def _on_disconnect(self, _c: Any, _u: Any, _flags: Any, reason: Any, _props: Any) -> None:
        self._connected.clear()
        log.info("%s: disconnected (%s)", self.endpoint, reason)

    def _on_publish(self, _c: Any, _u: Any, _mid: int, reason: Any, _props: Any) -> None:
        if reason.is_failure:
            self.stats.add(failed=1)
        else:
            self.stats.add(acked=1)
