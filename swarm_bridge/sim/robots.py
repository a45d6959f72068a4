"""Simulated robots, pure: the exact MQTT messages a robot bridge sends (topics, Avro single-object, seq, presence).

Each stream numbers its records `run << 32 | n` like the robot bridge; records are encoded by the robot
bridge's own wire encoder (`wire_encoder(..., "avro", "mqtt", ...)`) from a default message of the stream's
ROS type, and may be packed into record batches (`frame_batch`) as a bridge under load does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from swarm_bridge.codec.framing import frame_batch
from swarm_bridge.codec.registry import topic_name
from swarm_bridge.codec.rostypes import default_types
from swarm_bridge.codec.wire import WireEncoder, wire_encoder
from swarm_bridge.routing.naming import kafka_topic, mqtt_topic, presence_topic

__all__ = ["DEFAULT_MIX", "Publish", "SimRobot", "StreamSpec", "stream_encoder"]


@dataclass(frozen=True)
class StreamSpec:
    """One stream of a simulated robot: its name, channel and ROS type."""

    name: str
    channel: str
    ros_type: str

    @property
    def kafka_topic(self) -> str:
        return kafka_topic(self.channel, self.name)


# A robot's usual mix: fast odometry (~700-byte Avro records), IMU, battery state, its state.
DEFAULT_MIX = (
    StreamSpec("odometry", "telemetry", "nav_msgs/msg/Odometry"),
    StreamSpec("imu", "telemetry", "sensor_msgs/msg/Imu"),
    StreamSpec("battery", "state", "sensor_msgs/msg/BatteryState"),
    StreamSpec("robot_state", "state", "swarm_bridge_msgs/msg/RobotState"),
)


@dataclass(frozen=True)
class Publish:
    """One MQTT publish: topic, payload, MQTT 5 content type and user properties."""

    topic: str
    payload: bytes
    content_type: str
    user_properties: tuple[tuple[str, str], ...] = ()


_ENCODERS: dict[tuple[str, str], tuple[WireEncoder, bytes]] = {}


def stream_encoder(spec: StreamSpec, topic: str) -> tuple[WireEncoder, bytes]:
    """The robot bridge's wire encoder of a stream on `topic` and the CDR of a default message of its type
    (built once per type and topic): every simulated telemetry record is made from these."""
    found = _ENCODERS.get((spec.ros_type, topic))
    if found is None:
        types = default_types()
        cdr = types.dict_to_cdr(types.default_message(spec.ros_type), spec.ros_type)
        found = _ENCODERS[(spec.ros_type, topic)] = (
            wire_encoder(spec.ros_type, "avro", "mqtt", subject=topic_name(topic, spec.ros_type)), cdr)
    return found


@dataclass
class SimRobot:
    """A robot's MQTT side: `next(stream)` and `batch(stream, n)` give what its bridge would publish."""

    robot_id: str
    fleet: str
    streams: Sequence[StreamSpec] = DEFAULT_MIX
    run: int = 1
    prefix: str = "swarm"
    sent: dict[str, int] = field(default_factory=dict)  # records numbered so far, per stream

    def topic(self, spec: StreamSpec) -> str:
        return mqtt_topic(self.prefix, self.fleet, self.robot_id, spec.channel, spec.name)

    @property
    def presence_topic(self) -> str:
        return presence_topic(self.prefix, self.fleet, self.robot_id)

    def seq(self, n: int) -> int:
        """The seq of the stream's n-th record of this run."""
        return self.run << 32 | n

    def record(self, spec: StreamSpec) -> bytes:
        """The stream's next record, framed as alone (Avro single-object)."""
        encoder, cdr = stream_encoder(spec, self.topic(spec))
        n = self.sent.get(spec.name, 0)
        self.sent[spec.name] = n + 1
        return encoder.encode_cdr(cdr, robot_id=self.robot_id, stream=spec.name, seq=self.seq(n), stamp_ns=n + 1)

    def next(self, spec: StreamSpec) -> Publish:
        """One record in one publish."""
        return self._publish(spec, self.record(spec))

    def batch(self, spec: StreamSpec, count: int) -> Publish:
        """`count` records of one stream in one publish (a record batch when count > 1)."""
        records = [self.record(spec) for _ in range(count)]
        return self._publish(spec, records[0] if count == 1 else frame_batch(records))

    def _publish(self, spec: StreamSpec, payload: bytes) -> Publish:
        encoder, _cdr = stream_encoder(spec, self.topic(spec))
        return Publish(self.topic(spec), payload, encoder.content_type, encoder.user_properties)
