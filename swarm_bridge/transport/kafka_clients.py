"""The Kafka clients the services build on (gateway, coordinator, fleet bench): confluent-kafka's types,
re-exported so that only `transport/` imports the library, and the pieces they share: producer and consumer
factories with the package's settings, the produce retry loop, and which errors are worth asking again.

The factories return confluent-kafka's own `Producer` and `Consumer`: hot paths call their bound methods
directly, with no layer of Python in between.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_END,
    TIMESTAMP_CREATE_TIME,
    TIMESTAMP_LOG_APPEND_TIME,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka import Message as KafkaMessage

from swarm_bridge.transport.kafka_log import kafka_log

__all__ = [
    "ANY_PARTITION",
    "OFFSET_BEGINNING",
    "OFFSET_END",
    "TIMESTAMP_CREATE_TIME",
    "TIMESTAMP_LOG_APPEND_TIME",
    "Consumer",
    "KafkaError",
    "KafkaException",
    "KafkaMessage",
    "Producer",
    "TopicPartition",
    "kafka_consumer",
    "kafka_error",
    "keyed_producer",
    "produce_patiently",
    "worth_retrying",
]

ErrorSink = Callable[[KafkaError], None]
ANY_PARTITION = -1  # librdkafka's RD_KAFKA_PARTITION_UA: its partitioner chooses (murmur2 of the key)

# Errors of a broker that is stalled, restarting or still loading its coordinators: worth asking again, whether or
# not librdkafka flags them retriable (init_transactions reports COORDINATOR_LOAD_IN_PROGRESS unflagged).
_TRANSIENT = frozenset({KafkaError.COORDINATOR_LOAD_IN_PROGRESS, KafkaError.COORDINATOR_NOT_AVAILABLE,
                        KafkaError.NOT_COORDINATOR, KafkaError._TIMED_OUT, KafkaError._TRANSPORT})


def keyed_producer(*, bootstrap: str, client_id: str, logger: logging.Logger, delivery_timeout_s: float,
                   linger_ms: float = 5, compression: str = "lz4", security: Mapping[str, Any] | None = None,
                   tuning: Mapping[str, Any] | None = None, on_error: ErrorSink | None = None) -> Producer:
    """An idempotent, acks=all producer placing each key where Kafka's Java clients do (murmur2), so a robot's
    records land on its shard's partition; librdkafka's lines summarised on `logger` (`on_error` also gets
    each error). `security`: SASL/TLS settings; `tuning`: more librdkafka settings (batching, queue sizes)."""
    return Producer({
        **(security or {}),
        "bootstrap.servers": bootstrap,
        "client.id": client_id,
        "acks": "all",
        "enable.idempotence": True,
        "partitioner": "murmur2_random",  # Kafka's (Java) partitioner: routing/sharding.py agrees with it
        "compression.type": compression,
        "linger.ms": linger_ms,
        "message.timeout.ms": int(delivery_timeout_s * 1000),
        **(tuning or {}),
        **kafka_log(logger).settings(on_error),
    })


def kafka_producer(settings: Mapping[str, Any], logger: logging.Logger) -> Producer:
    """A producer with exactly `settings`, librdkafka's lines summarised on `logger`."""
    return Producer({**settings, "logger": kafka_log(logger)})


def kafka_consumer(settings: Mapping[str, Any], logger: logging.Logger) -> Consumer:
    """A consumer with exactly `settings`, librdkafka's lines summarised on `logger`."""
    return Consumer({**settings, "logger": kafka_log(logger)})


def produce_patiently(producer: Producer, topic: str, value: bytes | None, key: bytes | None = None,
                      partition: int = ANY_PARTITION, *, wait_s: float = 0.05) -> None:
    """Produce one record; while librdkafka's local queue is full, serve delivery reports for `wait_s` and try
    again (the queue drains as Kafka confirms), so the caller never sees BufferError."""
    while True:
        try:
            producer.produce(topic, value, key, partition)
            return
        except BufferError:
            producer.poll(wait_s)


def kafka_error(exc: BaseException) -> KafkaError | None:
    """The KafkaError a KafkaException carries, None for anything else."""
    error = exc.args[0] if isinstance(exc, KafkaException) and exc.args else None
    return error if isinstance(error, KafkaError) else None


def worth_retrying(error: object) -> bool:
    """A Kafka error worth asking again about: retriable, or a stalled broker's; never a fatal one, nor one that
    requires aborting the transaction (asked again, a commit whose records timed out fails the same until the broker
    aborts the transaction itself and fences the producer: the caller must abort instead)."""
    return (isinstance(error, KafkaError) and not error.fatal() and not error.txn_requires_abort()
            and (error.retriable() or error.code() in _TRANSIENT))
