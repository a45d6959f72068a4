"""Records for the gateway's outage and fault tests: two streams of the default mix, their Kafka topics, and a
sender that keeps publishing them as a robot would."""

from __future__ import annotations

import threading
import time

from swarm_bridge.sim import DEFAULT_MIX
from swarm_bridge.sim.mqtt_fleet import MqttFleet

STREAMS = DEFAULT_MIX[:2]
TOPICS = [spec.kafka_topic for spec in STREAMS]


class Sender:
    """Robots publishing batches of `batch` records per stream, `rounds` times, paced, in a thread."""

    def __init__(self, fleet: MqttFleet, *, rounds: int, batch: int, period_s: float) -> None:
        self.fleet, self.rounds, self.batch, self.period_s = fleet, rounds, batch, period_s
        self.sent = 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        for _ in range(self.rounds):
            self.sent += self.fleet.send(self.batch, batch=self.batch)
            time.sleep(self.period_s)

    def join(self) -> None:
        self.thread.join(timeout=300)
        assert not self.thread.is_alive()
        assert self.fleet.wait(60)
