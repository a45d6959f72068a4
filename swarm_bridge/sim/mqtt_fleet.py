"""Simulated robots on a real MQTT broker (paho): one client per robot, presence with Last Will, QoS 1."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from swarm_bridge.sim.robots import Publish, SimRobot, presence_payload
from swarm_bridge.transport.link import LinkError
from swarm_bridge.transport.mqtt import NO_MATCHING_SUBSCRIBERS

__all__ = ["SimFleet"]

_RETRY_S = 0.2


class SimFleet:
    """Robots connected to one broker; `publish` sends at QoS 1 and `wait` waits for every PUBACK."""

    def __init__(self, robots: Sequence[SimRobot], *, host: str = "127.0.0.1", port: int = 1883,
                 max_inflight: int = 1000, timeout_s: float = 10.0, hold_unsubscribed: bool = False) -> None:
        """`hold_unsubscribed`: as a robot bridge with `uplink.hold_unsubscribed`, a publish the broker had no
        subscriber for is sent again (from `wait`) until one takes it."""
        self.robots = list(robots)
        self._clients: dict[str, paho.Client] = {}
        self._unacked = 0
        self._lock = threading.Lock()
        self._hold = hold_unsubscribed
        self.unsubscribed = 0  # publishes the broker had no subscriber for
        # never held while calling paho (paho calls on_publish holding its own lock)
        self._track_lock = threading.Lock()
        self._tracked: dict[tuple[str, int], tuple[SimRobot, Publish, bool]] = {}
        self._early: dict[tuple[str, int], bool] = {}  # acks that came before the publish was tracked
        self._refused: list[tuple[SimRobot, Publish, bool]] = []
        for robot in self.robots:
            client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"sim-{robot.fleet}-{robot.robot_id}",
                                 protocol=paho.MQTTv5, userdata=robot.robot_id)
            client.max_inflight_messages_set(max_inflight)
            client.will_set(robot.presence_topic, presence_payload(robot.robot_id, "offline", "connection lost"),
                            qos=1, retain=True)
            client.on_publish = self._on_publish
            try:
                client.connect(host, port, keepalive=30)
            except OSError as exc:
                self.close()
                raise LinkError(f"mqtt://{host}:{port}", f"cannot connect ({exc})", "start the broker") from None
            client.loop_start()
            self._clients[robot.robot_id] = client
        deadline = time.monotonic() + timeout_s
        while not all(c.is_connected() for c in self._clients.values()):
            if time.monotonic() > deadline:
                self.close()
                raise LinkError(f"mqtt://{host}:{port}", "robots not connected in time", "check the broker")
            time.sleep(0.01)
        for robot in self.robots:
            self._send(robot, Publish(robot.presence_topic, presence_payload(robot.robot_id, "online", "connected"),
                                      "application/json"), retain=True)

    def _on_publish(self, _c: object, robot_id: str, mid: int, reason: Any, _p: object) -> None:
        refused = reason.value == NO_MATCHING_SUBSCRIBERS
        self.unsubscribed += refused
        if self._hold:
            with self._track_lock:
                sent = self._tracked.pop((robot_id, mid), None)
                if sent is None:
                    self._early[(robot_id, mid)] = refused
                    return
                if refused:
                    self._refused.append(sent)
                    return
        with self._lock:
            self._unacked -= 1

    def _send(self, robot: SimRobot, publish: Publish, *, retain: bool = False) -> None:
        props = Properties(PacketTypes.PUBLISH)
        props.ContentType = publish.content_type
        if publish.user_properties:
            props.UserProperty = list(publish.user_properties)
        with self._lock:
            self._unacked += 1
        info = self._clients[robot.robot_id].publish(publish.topic, publish.payload, qos=1, retain=retain,
                                                     properties=props)
        if info.rc not in (paho.MQTT_ERR_SUCCESS, paho.MQTT_ERR_NO_CONN):
            raise LinkError(publish.topic, f"publish failed: {paho.error_string(info.rc)}", "check the broker")
        if self._hold:
            with self._track_lock:
                refused = self._early.pop((robot.robot_id, info.mid), None)
                if refused is None:
                    self._tracked[(robot.robot_id, info.mid)] = (robot, publish, retain)
                elif refused:
                    self._refused.append((robot, publish, retain))
            if refused is False:
                with self._lock:
                    self._unacked -= 1

    def _send_refused(self) -> None:
        """Publish again what the broker had no subscriber for (held, as a robot bridge holds it)."""
        with self._track_lock:
            refused, self._refused = self._refused, []
        for robot, publish, retain in refused:
            with self._lock:
                self._unacked -= 1  # _send counts it again
            self._send(robot, publish, retain=retain)

    def publish(self, robot: SimRobot, publish: Publish) -> None:
        """Publish at QoS 1 (queued by paho; `wait` for the broker's acks)."""
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
            if clean and client.is_connected():
                client.publish(robot.presence_topic, presence_payload(robot.robot_id, "offline", "stopped"), qos=1,
                               retain=True).wait_for_publish(timeout=2)
            client.disconnect()
            client.loop_stop()
        self._clients.clear()
