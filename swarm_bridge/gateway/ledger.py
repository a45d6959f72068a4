"""Which MQTT messages wait for which Kafka records, pure: a message is acked once all its records are written.

A message waits for each record it carried that was admitted (new) and for each duplicate whose first copy
is still in flight, so a resend is never acked before the copy that counts is in Kafka. Messages of an
older connection (`epoch`) are never acked: the broker sends them again on the new one, with their ids.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["InFlight", "Ledger", "MqttMessage"]

Ident = tuple[str, str, int]
Headers = list[tuple[str, str | bytes | None]]


class MqttMessage:
    """One received MQTT message: what the MQTT client acks it by (`mid`), its QoS, the connection it came on,
    what it waits for."""

    __slots__ = ("epoch", "mid", "qos", "received_ns", "sealed", "waiting")

    def __init__(self, mid: Any, qos: int, epoch: int, received_ns: int) -> None:
        self.mid, self.qos, self.epoch, self.received_ns = mid, qos, epoch, received_ns
        self.waiting = 0
        self.sealed = False


class InFlight:
    """One Kafka record on its way (topic, key, value, headers), and the messages waiting for it.

    It is the producer's delivery callback: calling it hands the outcome to `sink`. `order` is its place in the
    order records were first handed to Kafka, so ones produced again go back in that order."""

    __slots__ = ("headers", "ident", "key", "order", "sink", "topic", "value", "waiters")

    def __init__(self, topic: str, key: bytes | None, value: bytes, headers: Headers | None,
                 ident: Ident | None, sink: Callable[[InFlight, Any], None]) -> None:
        self.topic, self.key, self.value, self.headers, self.ident = topic, key, value, headers, ident
        self.sink = sink
        self.order = 0
        self.waiters: list[MqttMessage] = []

    def __call__(self, err: Any, _msg: Any) -> None:
        self.sink(self, err)


class Ledger:
    """Open messages and records in flight; says which messages are complete and may be acked."""

    def __init__(self) -> None:
        self.epoch = 0
        self.inflight: dict[Ident, InFlight] = {}
        self.open_messages = 0

    def message(self, mid: Any, qos: int, received_ns: int) -> MqttMessage:
        self.open_messages += 1
        return MqttMessage(mid, qos, self.epoch, received_ns)

    def expect(self, message: MqttMessage, record: InFlight) -> None:
        """`message` waits for `record` (admitted, about to be produced)."""
        message.waiting += 1
        record.waiters.append(message)
        if record.ident is not None:
            self.inflight[record.ident] = record

    def join(self, message: MqttMessage, ident: Ident) -> None:
        """`message` carried a duplicate: it waits for the first copy if that is still in flight."""
        first = self.inflight.get(ident)
        if first is not None:
            message.waiting += 1
            first.waiters.append(message)

    def seal(self, message: MqttMessage) -> bool:
        """Every record of `message` is accounted for; True if it may be acked now."""
        message.sealed = True
        return self._complete(message)

    def delivered(self, record: InFlight) -> list[MqttMessage]:
        """`record` is in Kafka: the messages that may be acked now."""
        if record.ident is not None and self.inflight.get(record.ident) is record:
            del self.inflight[record.ident]
        done = []
        for message in record.waiters:
            message.waiting -= 1
            if message.sealed and self._complete(message):
                done.append(message)
        record.waiters = []
        return done

    def _complete(self, message: MqttMessage) -> bool:
        if message.waiting:
            return False
        self.open_messages -= 1
        return message.qos > 0 and message.epoch == self.epoch

    def new_connection(self) -> None:
        """The MQTT connection was lost: messages received so far will come again; never ack them."""
        self.epoch += 1
