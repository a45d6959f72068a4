"""The single-site coordinator's config: the mode sections named (the site itself, on a real Mosquitto:
integration/coordinator/test_coordinator_site.py)."""

from __future__ import annotations

import pytest
from site_harness import CAPABILITIES

from swarm_bridge.config import ConfigError, CoordinatorConfig, validate_config


def test_a_config_names_its_mode_sections() -> None:
    base = {"fleet": "f", "capabilities": CAPABILITIES}
    with pytest.raises(ConfigError, match="mode mqtt needs an mqtt: section"):
        validate_config({**base, "mode": "mqtt"}, CoordinatorConfig)
    with pytest.raises(ConfigError, match="mode kafka needs kafka and shards"):
        validate_config(base, CoordinatorConfig)
    with pytest.raises(ConfigError, match=r"mqtt: unknown key 'prot' \(did you mean 'port'\?\)"):
        validate_config({**base, "mode": "mqtt", "mqtt": {"prot": 1883}}, CoordinatorConfig)
    config = validate_config({**base, "mode": "mqtt", "mqtt": {"port": 1883}}, CoordinatorConfig)
    assert config.mqtt is not None and config.mqtt.topic_prefix == "swarm" and config.shards == 1
