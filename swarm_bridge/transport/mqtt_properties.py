"""MQTT 5 properties for paho publishers, packed once: paho packs a message's properties again on every publish,
and a stream's never change (`PackedProperties`, used only by the site coordinator's paho link, `mqtt_paho.py`:
it goes when that link moves to `MqttClient`).
"""

from __future__ import annotations

from collections.abc import Sequence

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

__all__ = ["PackedProperties"]


class PackedProperties(Properties):
    """PUBLISH properties (content type, user properties) packed once and reused by every publish."""

    _packed: bytes

    def __init__(self, content_type: str, user_properties: Sequence[tuple[str, str]] = ()) -> None:
        super().__init__(PacketTypes.PUBLISH)
        self.ContentType = content_type
        if user_properties:
            self.UserProperty = list(user_properties)
        object.__setattr__(self, "_packed", bytes(super().pack()))  # paho's __setattr__ takes property names only

    def pack(self) -> bytes:
        return self._packed
