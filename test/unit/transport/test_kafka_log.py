"""librdkafka's repeated log lines and errors, summarised (transport/kafka_log.py): once, then counted."""

from __future__ import annotations

import logging

import pytest
from confluent_kafka import KafkaError

from swarm_bridge.transport.kafka_log import KafkaLog

REFUSED = "[thrd:127.0.0.1:9/bootstrap]: 127.0.0.1:9/bootstrap: Connect to ipv4#127.0.0.1:9 failed: Connection " \
          "refused (after {ms}ms in state CONNECT{suppressed})"


def _lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records]


def test_a_repeated_line_is_logged_once_then_counted_at_flush(caplog: pytest.LogCaptureFixture) -> None:
    summary = KafkaLog(logging.getLogger("test.kafka_log.once"))
    with caplog.at_level(logging.INFO):
        for n in range(200):  # what 10 s of a refused bootstrap looks like, from two clients
            summary.log(logging.ERROR, "%s [%s] %s", "FAIL", f"rdkafka#producer-{n % 2}", REFUSED.format(
                ms=n % 3, suppressed=""))
        summary.flush()
        summary.flush()  # nothing new: nothing more
    first, repeats = _lines(caplog)
    assert first.startswith("FAIL: 127.0.0.1:9/bootstrap: Connect") and "thrd" not in first
    assert repeats.endswith("(repeated 199 times in the last 0 s)")


def test_an_error_repeating_a_log_line_counts_as_a_repeat_and_suppressed_counts_add(
        caplog: pytest.LogCaptureFixture) -> None:
    summary = KafkaLog(logging.getLogger("test.kafka_log.error"))
    text = REFUSED.format(ms=0, suppressed="").removeprefix("[thrd:127.0.0.1:9/bootstrap]: ")
    with caplog.at_level(logging.INFO):
        summary.log(logging.ERROR, "%s [%s] %s", "FAIL", "rdkafka#producer-1", REFUSED.format(ms=0, suppressed=""))
        summary.error(KafkaError(KafkaError._TRANSPORT, text))
        summary.log(logging.ERROR, "%s [%s] %s", "FAIL", "rdkafka#producer-1",
                    REFUSED.format(ms=0, suppressed=", 5 identical error(s) suppressed"))
        summary.error(KafkaError(KafkaError._ALL_BROKERS_DOWN, "1/1 brokers are down"))
        summary.flush()
    assert _lines(caplog) == [f"FAIL: {text}", "_ALL_BROKERS_DOWN: 1/1 brokers are down",
                              f"FAIL: {text} (repeated 7 times in the last 0 s)"]


def test_repeats_are_reported_while_they_continue(caplog: pytest.LogCaptureFixture) -> None:
    summary = KafkaLog(logging.getLogger("test.kafka_log.every"), every_s=0.0)
    with caplog.at_level(logging.INFO):
        for _ in range(3):
            summary.log(logging.WARNING, "%s [%s] %s", "REQTMOUT", "rdkafka#consumer-1", "Timed out 1 requests")
    assert _lines(caplog) == ["REQTMOUT: Timed out 1 requests"] + \
        ["REQTMOUT: Timed out 1 requests (repeated 1 times in the last 0 s)"] * 2
