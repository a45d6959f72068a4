"""The robot's MQTT uplink, pure parts: subscription matching (on a real Mosquitto:
integration/transport/test_mqtt_uplink.py)."""

from __future__ import annotations

import pytest

from swarm_bridge.transport.mqtt import topic_matches


@pytest.mark.parametrize(("topic_filter", "topic", "expected"), [
    ("a/b", "a/b", True), ("a/+", "a/b", True), ("a/+", "a/b/c", False), ("a/#", "a", True),
    ("a/#", "a/b/c", True), ("+/b", "a/c", False), ("$share/hub/a/+/c", "a/b/c", True), ("#", "$SYS/x", False),
    ("a/b", "a/b/c", False),
])
def test_topic_matches_follows_mqtt_filters(topic_filter: str, topic: str, expected: bool) -> None:
    assert topic_matches(topic_filter, topic) is expected
