"""A committer thread held by Kafka past every timeout ends the instance (a fatal error, its stack logged) instead of
stopping the coordinator: the wait for a round is bounded."""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor

import pytest

from swarm_bridge.coordinator.kafka.runner import round_result
from swarm_bridge.transport.kafka_clients import KafkaException


def held_in_kafka(release: threading.Event) -> str:
    """Stands for a Kafka call that does not return (the committer's abort_transaction seen in CI)."""
    release.wait()
    return "late"


def test_a_round_the_committer_never_finishes_is_a_fatal_error_naming_where_it_stands(
        caplog: pytest.LogCaptureFixture) -> None:
    release = threading.Event()
    committer = ThreadPoolExecutor(1, thread_name_prefix="commit-test")
    try:
        future = committer.submit(held_in_kafka, release)
        with caplog.at_level(logging.ERROR), pytest.raises(KafkaException) as caught:
            round_result(future, 0.2, "commit-test")
        error = caught.value.args[0]
        assert error.fatal() and "did not finish a round in 0.2 s" in error.str()
        assert "held_in_kafka" in caplog.text  # the stuck thread's stack, for the next one who reads the log
    finally:
        release.set()
        committer.shutdown(wait=True)


def test_a_round_finished_in_time_is_returned() -> None:
    done: Future[str] = Future()
    done.set_result("round")
    assert round_result(done, 0.2, "commit-none") == "round"
