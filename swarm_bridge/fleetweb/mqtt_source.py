"""The page's source on a single site (mode mqtt): every robot topic of the fleet and the site coordinator's
retained status, read from the site's MQTT broker with the coordinator's own decoders (`SiteRecords`)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from typing import Any

from swarm_bridge.config.coordinator import CoordinatorConfig
from swarm_bridge.coordinator.site.client import SiteUnreachable, site_client
from swarm_bridge.coordinator.site.wire import SiteRecords, SiteTopics
from swarm_bridge.fleetweb.errors import FleetWebError
from swarm_bridge.fleetweb.feed import PageFeed
from swarm_bridge.fleetweb.model import FleetPage
from swarm_bridge.fleetweb.poses import PoseReader
from swarm_bridge.fleetweb.stamps import record_stamp_ns
from swarm_bridge.routing.presence import parse_presence
from swarm_bridge.transport.link import LinkError
from swarm_bridge.transport.mqtt_client import Message, MqttClient

__all__ = ["MqttSource", "stamp_ns"]

log = logging.getLogger(__name__)

BROKER_FACTS = {
    "$SYS/broker/version": "version",
    "$SYS/broker/uptime": "uptime",
    "$SYS/broker/clients/connected": "clients connected",
    "$SYS/broker/publish/messages/dropped": "messages dropped (queue limits)",
    "$SYS/broker/load/messages/received/1min": "messages in per min (1 min average)",
    "$SYS/broker/load/messages/sent/1min": "messages out per min (1 min average)",
}
"""Mosquitto's $SYS topics the page shows as the broker's health (a broker without them shows none)."""
NO_GATEWAY = "none on a single site: the robots talk to this MQTT broker directly (its health is below)"
POSE_EVERY_NS = 200_000_000  # a robot's pose is read five times a second at most, however fast its odometry
NO_POSE_TOPICS = 100_000  # topics remembered as carrying no pose (bounded)


def stamp_ns(body: Mapping[str, Any]) -> int:
    """A message's `stamp` (builtin_interfaces/Time as a dict) in ns; 0 when it has none."""
    stamp = body.get("stamp")
    if not isinstance(stamp, Mapping):
        return 0
    return int(stamp.get("sec", 0)) * 1_000_000_000 + int(stamp.get("nanosec", 0))


class MqttSource:
    """Subscribes to `{prefix}/{fleet}/#` and folds what arrives into the feed (on the client's network thread)."""

    def __init__(self, config: CoordinatorConfig, feed: PageFeed) -> None:
        assert config.mqtt is not None  # the source table picks this source for mode mqtt only
        self.config, self.feed = config, feed
        self.topics = SiteTopics(config.mqtt.topic_prefix, config.fleet)
        self.records = SiteRecords(self.topics, fmt=config.robot_format)
        self.endpoint = f"mqtt{'s' if config.mqtt.tls else ''}://{config.mqtt.host}:{config.mqtt.port}"
        self._client: MqttClient | None = None
        self.poses = PoseReader()
        self._pose_topic: dict[str, tuple[str, int]] = {}  # robot -> its pose topic, when last read (ns)
        self._no_pose: set[str] = set()
        feed.apply(self._begin)

    def _begin(self, page: FleetPage) -> None:
        page.source.update(kind="mqtt", endpoint=self.endpoint, connected=False)
        page.gateways.note = NO_GATEWAY

    def start(self) -> MqttSource:
        """Connect and subscribe; FleetWebError naming the broker and the fix when it does not answer."""
        try:
            self._client = site_client(self.config, self._message, client_id=f"{self.config.fleet}-web")
            self._client.subscribe([f"{self.topics.prefix}/{self.topics.fleet}/#", *BROKER_FACTS], qos=0,
                                   timeout_s=self.config.mqtt.connect_timeout_s if self.config.mqtt else 10.0)
        except (SiteUnreachable, LinkError) as exc:
            self.close()
            raise FleetWebError(f"fleet page: {exc}") from None
        self.feed.apply(lambda page: page.source.update(connected=True))
        log.info("fleet page: reading %s/%s/# on %s", self.topics.prefix, self.topics.fleet, self.endpoint)
        return self

    def refresh(self) -> None:
        """Say whether the broker connection is up (called before each snapshot)."""
        connected = self._client is not None and self._client.connected
        self.feed.apply(lambda page: page.source.update(connected=connected))

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def _message(self, message: Message) -> None:
        """One MQTT message: a robot's record (counted per stream), presence, or the coordinator's status."""
        now = time.time_ns()
        topic, payload = message.topic, message.payload
        try:
            self.feed.apply(self._fold, topic, payload, now)
        except Exception as exc:  # a malformed message is counted, never fatal
            self.feed.apply(lambda page: page.drop(f"malformed {_kind(topic, self.topics)}"))
            log.debug("fleet page: mqtt:%s: %s", topic, exc)

    def _fold(self, page: FleetPage, topic: str, payload: bytes, now: int) -> None:
        fact = BROKER_FACTS.get(topic)
        if fact is not None:
            page.on_broker(fact, payload.decode("utf-8", "replace"))
            return
        if topic == self.topics.status:
            if payload:
                page.on_site_status(json.loads(payload), now)
            return
        robot_id = self.topics.robot_of(topic)
        if not robot_id or robot_id == "coordinator":
            return  # task submissions and their answers: not a robot's
        channel, stream = topic.split("/")[3:5]
        kind = FOLDS.get((channel, stream))
        stamp = kind(self, page, robot_id, payload, now) if kind is not None else record_stamp_ns(payload)
        page.on_record(robot_id, f"{channel}/{stream}", len(payload), now, stamp_ns=stamp)
        if kind is None and channel == "telemetry":
            self._pose(page, robot_id, topic, payload, now)

    def _pose(self, page: FleetPage, robot_id: str, topic: str, payload: bytes, now: int) -> None:
        """A telemetry record that may carry the robot's pose (odometry), read at most every POSE_EVERY_NS; the
        first topic that gives a robot's pose is its pose topic, and a topic found to carry none is not looked at
        again (both bounded)."""
        chosen = self._pose_topic.get(robot_id)
        if topic in self._no_pose or (chosen is not None and chosen[0] != topic):
            return
        if chosen is not None and now - chosen[1] < POSE_EVERY_NS:
            return
        pose = self.poses.pose(payload)
        if pose is None:
            if len(self._no_pose) < NO_POSE_TOPICS:
                self._no_pose.add(topic)
            return
        if chosen is not None or len(self._pose_topic) < NO_POSE_TOPICS:
            self._pose_topic[robot_id] = (topic, now)
            page.on_pose(robot_id, pose.x, pose.y, pose.frame)

    def _state(self, page: FleetPage, robot_id: str, payload: bytes, now: int) -> int:
        stamp = 0
        for body in self.records.states(payload):
            if str(body["robot_id"]) != robot_id:
                page.drop("robot_state of another robot")
                continue
            page.on_state(body, now)
            stamp = stamp_ns(body)
        return stamp

    def _status(self, page: FleetPage, robot_id: str, payload: bytes, now: int) -> int:
        for report in self.records.statuses(payload):
            if report.robot_id != robot_id:
                page.drop("task_status of another robot")
                continue
            page.on_report(robot_id=robot_id, task_id=report.task_id, state=report.state,
                           progress=report.progress, reason=report.reason, now_ns=now)
        return record_stamp_ns(payload)

    def _presence(self, page: FleetPage, robot_id: str, payload: bytes, now: int) -> int:
        if payload:  # an empty retained payload clears presence: nothing to fold
            presence = parse_presence(payload)
            if presence.robot_id != robot_id:
                page.drop("presence of another robot")
            else:
                page.on_presence(robot_id, presence.state, presence.reason, now)
        return 0


FOLDS: dict[tuple[str, str], Any] = {
    ("state", "robot_state"): MqttSource._state,
    ("event", "task_status"): MqttSource._status,
    ("presence", "status"): MqttSource._presence,
}
"""(channel, stream) -> how the page folds that record; every other stream is only counted."""


def _kind(topic: str, topics: SiteTopics) -> str:
    """What a topic carries, for a drop's reason: its channel/stream, or the coordinator's status."""
    if topic == topics.status:
        return "coordinator status"
    parts = topic.split("/")
    return "/".join(parts[3:5]) if len(parts) == 5 else "message"
