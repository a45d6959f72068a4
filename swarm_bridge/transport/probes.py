"""Readiness probes of a broker, for the broker runners: can a client really talk to it yet?"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient

from swarm_bridge.transport.kafka_log import flush_kafka_logs, kafka_log

__all__ = ["kafka_answers", "kafka_broker_count", "kafka_login_problem"]

log = logging.getLogger(__name__)


def kafka_answers(bootstrap: str, *, timeout_s: float = 3.0, settings: Mapping[str, str] | None = None) -> bool:
    """True when the cluster at `bootstrap` returns metadata naming at least one broker; `settings`: extra
    client settings (security: SASL login, TLS)."""
    return kafka_broker_count(bootstrap, timeout_s=timeout_s, settings=settings) >= 1


def kafka_broker_count(bootstrap: str, *, timeout_s: float = 3.0, settings: Mapping[str, str] | None = None) -> int:
    """How many brokers the cluster's metadata names now (0 when it does not answer): a node that listens may not
    have joined yet, and topics made meanwhile would get fewer replicas than the cluster has nodes."""
    config: dict[str, Any] = {**(settings or {}), "bootstrap.servers": bootstrap,
                              "socket.timeout.ms": int(timeout_s * 1000), "logger": kafka_log(log)}
    try:
        return len(AdminClient(config).list_topics(timeout=timeout_s).brokers)
    except KafkaException:
        return 0


def kafka_login_problem(bootstrap: str, *, settings: Mapping[str, str], timeout_s: float) -> str | None:
    """None when the cluster at `bootstrap` gives metadata to a client with `settings`; else what went wrong,
    naming a refused login (SASL or TLS) apart from an unreachable cluster. Never includes the settings."""
    refusals: list[str] = []

    def on_error(err: KafkaError) -> None:
        if err.code() in (KafkaError._AUTHENTICATION, KafkaError._SSL) and err.str() not in refusals:
            refusals.append(err.str())

    config: dict[str, Any] = {**settings, "bootstrap.servers": bootstrap, **kafka_log(log).settings(on_error)}
    admin = AdminClient(config)
    deadline = time.monotonic() + timeout_s
    while True:  # short tries, so a refused login is reported at once rather than after the whole timeout
        try:
            metadata = admin.list_topics(timeout=max(0.1, min(0.5, deadline - time.monotonic())))
        except KafkaException as exc:
            admin.poll(0)  # serve the error callbacks still queued
            if refusals:
                flush_kafka_logs()
                return f"login refused: {refusals[0]}"
            if time.monotonic() >= deadline:
                flush_kafka_logs()  # the repeats counted so far, before the caller's one clear line
                return f"no cluster metadata within {timeout_s:g} s ({exc})"
            continue
        return None if metadata.brokers else f"no broker in the metadata within {timeout_s:g} s"
