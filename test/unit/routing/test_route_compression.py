"""Compression per route in the config and on the route: levels checked against the codec's range, MQTT only, up
only; sensor_msgs/CompressedImage carried as it is whatever the route asks."""

from __future__ import annotations

import re
from typing import Any

import pytest

from swarm_bridge.config import ConfigError, RobotBridgeConfig, validate_config
from swarm_bridge.routing import routes_for


def _config(kind: str = "mqtt", **route: Any) -> dict[str, Any]:
    return {"robot_id": "amr_1", "fleet": "f", "uplink": {"kind": kind, "port": 1883},
            "routes": [{"topic": "/amr_1/camera", "type": "sensor_msgs/msg/Image", "channel": "telemetry",
                        "stream": "camera", "qos": "sensor_data", "format": "avro", **route}]}


def test_a_route_compresses_at_the_level_given_or_the_codecs_default() -> None:
    (zstd,) = routes_for(validate_config(_config(compression="zstd"), RobotBridgeConfig))
    (lz4,) = routes_for(validate_config(_config(compression="lz4", compression_level=9), RobotBridgeConfig))
    assert (zstd.compression, zstd.compression_level) == ("zstd", 3)
    assert (lz4.compression, lz4.compression_level) == ("lz4", 9)


def test_compressed_images_are_carried_as_they_are() -> None:
    data = _config(compression="zstd")
    data["routes"][0]["type"] = "sensor_msgs/msg/CompressedImage"
    (route,) = routes_for(validate_config(data, RobotBridgeConfig))
    assert route.compression == "none"


@pytest.mark.parametrize(("data", "message"), [
    (_config(compression="zstd", compression_level=30), "compression_level 30 is out of range for zstd (give 1 to 22)"),
    (_config(compression_level=3), "compression_level needs a compression"),
    (_config(compression="brotli"), "compression"),
    (_config("kafka", compression="lz4"), "the producer compresses batches itself"),
])
def test_bad_compression_settings_are_refused_with_the_fix(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        validate_config(data, RobotBridgeConfig)
