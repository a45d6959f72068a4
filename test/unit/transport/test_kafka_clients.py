"""transport/kafka_clients.py's pure pieces: the produce retry loop and which Kafka errors are asked again."""

from __future__ import annotations

from typing import Any

from swarm_bridge.transport.kafka_clients import (
    ANY_PARTITION,
    KafkaError,
    KafkaException,
    kafka_error,
    produce_patiently,
    worth_retrying,
)


class FullQueue:
    """A producer whose local queue is full for the first `full` tries; records what it was asked."""

    def __init__(self, full: int) -> None:
        self.full = full
        self.produced: list[tuple[Any, ...]] = []
        self.polls: list[float] = []

    def produce(self, *args: Any) -> None:
        if self.full:
            self.full -= 1
            raise BufferError("Local: Queue full")
        self.produced.append(args)

    def poll(self, timeout: float) -> int:
        self.polls.append(timeout)
        return 0


def test_produce_patiently_serves_reports_while_the_queue_is_full_then_produces_once() -> None:
    producer = FullQueue(full=3)
    produce_patiently(producer, "fleet.events", b"v", b"k", 2, wait_s=0.01)  # type: ignore[arg-type]
    assert producer.produced == [("fleet.events", b"v", b"k", 2)]
    assert producer.polls == [0.01, 0.01, 0.01]


def test_produce_patiently_lets_the_partitioner_choose_by_default_and_keeps_tombstones() -> None:
    producer = FullQueue(full=0)
    produce_patiently(producer, "fleet.events", None, b"task-1")  # type: ignore[arg-type]
    assert producer.produced == [("fleet.events", None, b"task-1", ANY_PARTITION)]
    assert producer.polls == []


def test_worth_retrying_a_stalled_broker_never_a_fatal_or_refused_one() -> None:
    assert worth_retrying(KafkaError(KafkaError.COORDINATOR_LOAD_IN_PROGRESS))  # unflagged, yet transient
    assert worth_retrying(KafkaError(KafkaError._TRANSPORT))
    assert worth_retrying(KafkaError(KafkaError.REQUEST_TIMED_OUT, retriable=True))
    assert not worth_retrying(KafkaError(KafkaError._TIMED_OUT, fatal=True))
    assert not worth_retrying(KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED))
    assert not worth_retrying("timed out")


def test_an_error_that_requires_aborting_the_transaction_is_never_worth_retrying() -> None:
    """A commit whose records timed out (their partition's leader died) fails with an abortable _TIMED_OUT: asked
    again it fails the same until the broker aborts the transaction itself and fences the producer (fatal), so the
    caller must abort at once instead (found by test_faults_kafka_cluster.py: the coordinator died _FENCED)."""
    timed_out = KafkaError(KafkaError._TIMED_OUT, "3 message(s) timed out", retriable=True, txn_requires_abort=True)
    assert not worth_retrying(timed_out)
    assert worth_retrying(KafkaError(KafkaError._TIMED_OUT, retriable=True))  # a commit not answered yet


def test_kafka_error_is_what_a_kafka_exception_carries() -> None:
    error = KafkaError(KafkaError._PARTITION_EOF)
    assert kafka_error(KafkaException(error)) is error
    assert kafka_error(KafkaException("no error object")) is None
    assert kafka_error(ValueError("x")) is None
