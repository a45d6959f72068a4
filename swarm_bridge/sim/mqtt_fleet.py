"""Simulated telemetry robots on a real MQTT broker: one `MqttClient` per robot, presence with Last Will, QoS 1."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Sequence

from swarm_bridge.routing.presence import presence_payload
from swarm_bridge.sim.robots import Publish, SimRobot
from swarm_bridge.transport.link import LinkBusy, LinkError
from swarm_bridge.transport.mqtt import NO_MATCHING_SUBSCRIBERS
from swarm_bridge.transport.mqtt_client import LastWill, MqttClient, MqttOptions
from swarm_bridge.transport.mqtt_window import Done

__all__ = ["MqttFleet"]

_RETRY_S = 0.2


class MqttFleet:
    """Robots connected to one broker; `publish` sends at QoS 1 and `wait` waits for every PUBACK."""

    def __init__(self, robots: Sequence[SimRobot], *, host: str = "127.0.0.1", port: int = 1883,
                 max_inflight: int = 1000, timeout_s: float = 10.0, hold_unsubscribed: bool = False) -> None:
        """`hold_unsubscribed`: as a robot bridge with `uplink.hold_unsubscribed`, a publish the broker had no
        subscriber for is sent again (from `wait`) until one takes it."""
        self.robots = list(robots)
        self._clients: dict[str, MqttClient] = {}
        self._unacked = 0
        self._lock = threading.Lock()  # the robots' network threads call back concurrently
        self._hold = hold_unsubscribed
        self.unsubscribed = 0  # publishes the broker had no subscriber for
        self._refused: list[tuple[SimRobot, Publish, bool]] = []
        for robot in self.robots:
            will = LastWill(robot.presence_topic, presence_payload(robot.robot_id, "offline", "connection lost"),
                            qos=1, retain=True)
            client = MqttClient(MqttOptions(host=host, port=port, client_id=f"sim-{robot.fleet}-{robot.robot_id}",
                                            keepalive_s=30, will=will, max_inflight=max_inflight,
                                            connect_timeout_s=timeout_s))
            self._clients[robot.robot_id] = client
            client.start(wait=False)
        deadline = time.monotonic() + timeout_s
        for client in self._clients.values():
            error = client.first_attempt(max(0.1, deadline - time.monotonic()))
            if error is not None:
                self.close(clean=False)
                raise LinkError(f"mqtt://{host}:{port}", f"robots not connected ({error})", "start the broker")
        for robot in self.robots:
            self._send(robot, Publish(robot.presence_topic, presence_payload(robot.robot_id, "online", "connected"),
                                      "application/json"), retain=True)

    def _done(self, robot: SimRobot, publish: Publish, retain: bool) -> Done:
        """The PUBACK callback of one publish (on the robot's network thread)."""

        def done(_delivered: bool, code: int) -> None:
            refused = code == NO_MATCHING_SUBSCRIBERS
            with self._lock:
                self.unsubscribed += refused
                if refused and self._hold:
                    self._refused.append((robot, publish, retain))
                else:
                    self._unacked -= 1

        return done

    def _send(self, robot: SimRobot, publish: Publish, *, retain: bool = False) -> None:
        with self._lock:
            self._unacked += 1
        self._clients[robot.robot_id].publish(publish.topic, publish.payload, qos=1, retain=retain,
                                              content_type=publish.content_type,
                                              user_properties=list(publish.user_properties) or None,
                                              on_done=self._done(robot, publish, retain))

    def _send_refused(self) -> None:
        """Publish again what the broker had no subscriber for (held, as a robot bridge holds it)."""
        with self._lock:
            refused, self._refused = self._refused, []
            self._unacked -= len(refused)  # _send counts each again
        for robot, publish, retain in refused:
            self._send(robot, publish, retain=retain)

    def publish(self, robot: SimRobot, publish: Publish) -> None:
        """Publish at QoS 1 (queued by the robot's client; `wait` for the broker's acks)."""
        self._send(robot, publish)

    def send(self, records_per_stream: int, *, batch: int = 1, max_unacked: int = 5000) -> int:
        """Every robot sends `records_per_stream` records on each stream, `batch` per publish, interleaved;
        returns the number of records sent."""
        total = 0
        remaining = {(r.robot_id, s.name): records_per_stream for r in self.robots for s in r.streams}
        while remaining:
            for robot in self.robots:
                for spec in robot.streams:
                    left = remaining.get((robot.robot_id, spec.name), 0)
                    if not left:
                        continue
                    count = min(batch, left)
                    while self._unacked >= max_unacked:
                        time.sleep(0.001)
                    self.publish(robot, robot.batch(spec, count))
                    total += count
                    if left == count:
                        del remaining[(robot.robot_id, spec.name)]
                    else:
                        remaining[(robot.robot_id, spec.name)] = left - count
        return total

    def wait(self, timeout_s: float = 60.0) -> bool:
        """True once the broker acknowledged every publish."""
        deadline = time.monotonic() + timeout_s
        next_retry = time.monotonic() + _RETRY_S
        while self._unacked > 0 and time.monotonic() < deadline:
            time.sleep(0.01)
            if self._hold and time.monotonic() >= next_retry:
                next_retry += _RETRY_S
                self._send_refused()
        return self._unacked <= 0

    def close(self, *, clean: bool = True) -> None:
        """Disconnect every robot (saying offline first when `clean`)."""
        for robot in self.robots:
            client = self._clients.get(robot.robot_id)
            if client is None:
                continue
            if clean and client.connected:
                acked = threading.Event()
                with contextlib.suppress(LinkError, LinkBusy):  # a full window: the robot leaves without saying so
                    client.publish(robot.presence_topic, presence_payload(robot.robot_id, "offline", "stopped"),
                                   qos=1, retain=True, on_done=_setter(acked), timeout_s=2)
                    acked.wait(2)
            client.close()
        self._clients.clear()


def _setter(event: threading.Event) -> Done:
    """A PUBACK callback that only sets `event`."""

    def done(_delivered: bool, _code: int) -> None:
        event.set()

    return done
