"""Readiness probes of a broker, for the broker runners: can a client really talk to it yet?"""

from __future__ import annotations

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

__all__ = ["kafka_answers"]


def kafka_answers(bootstrap: str, *, timeout_s: float = 3.0) -> bool:
    """True when the cluster at `bootstrap` returns metadata naming at least one broker."""
    admin = AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": int(timeout_s * 1000)})
    try:
        metadata = admin.list_topics(timeout=timeout_s)
    except KafkaException:
        return False
    return len(metadata.brokers) >= 1
