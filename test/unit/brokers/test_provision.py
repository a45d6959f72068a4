"""provision/setup's pinned Kafka is the one the brokers package runs (the script itself:
integration/packaging/test_provision.py)."""

from __future__ import annotations

import re
from pathlib import Path

from swarm_bridge.brokers.kafka import KAFKA_VERSION

REPO = Path(__file__).resolve().parents[3]


def test_kafka_version_matches_the_pom() -> None:
    pom = (REPO / "provision/kafka/pom.xml").read_text()
    assert re.search(r"<kafka.version>(.*?)</kafka.version>", pom).group(1) == KAFKA_VERSION  # type: ignore[union-attr]
