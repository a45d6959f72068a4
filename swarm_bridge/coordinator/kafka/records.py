"""The Kafka coordinator's wire records: RobotState and TaskStatus in, TaskCommand out (Avro or JSON, Confluent
framing). Built once per process from the config; presence JSON is routing/presence.py."""

from __future__ import annotations

from swarm_bridge.codec.envelope import Envelope
from swarm_bridge.codec.recognise import FormatMismatch, FormatWatch
from swarm_bridge.codec.records import RecordFormat
from swarm_bridge.codec.wire import (
    RegistryIds,
    WireDecoder,
    WireEncoder,
    registry_ids,
    route_subject,
    wire_decoder,
    wire_encoder,
)
from swarm_bridge.commands import CommandSigner
from swarm_bridge.coordinator.core.dispatch import Command
from swarm_bridge.coordinator.core.records import (
    ROBOT_STATE,
    TASK_COMMAND,
    TASK_STATUS,
    StatusReport,
    command_body,
    status_report,
)

__all__ = ["FleetRecords", "kafka_decoder", "kafka_encoder"]


def kafka_encoder(ros_type: str, topic: str, *, fmt: RecordFormat, ids: RegistryIds,
                  subject_name_strategy: str = "topic_name") -> WireEncoder:
    """The encoder of `ros_type` records on Kafka `topic` (Confluent framing; subject by the strategy)."""
    subject = route_subject(subject_name_strategy, topic, ros_type)
    return wire_encoder(ros_type, fmt, "kafka", subject=subject, register=ids)


def kafka_decoder(ros_type: str, topic: str, *, fmt: RecordFormat, ids: RegistryIds,
                  subject_name_strategy: str = "topic_name") -> WireDecoder:
    """The decoder of `ros_type` records on Kafka `topic` (Confluent framing; subject by the strategy)."""
    subject = route_subject(subject_name_strategy, topic, ros_type)
    return wire_decoder(ros_type, fmt, "kafka", subject=subject, lookup=ids)


class FleetRecords:
    """Decoders of the robots' records and the encoder of the coordinator's commands on one fleet's Kafka topics
    (subjects named by `subject_name_strategy`); holds one registry client, released by `close()`."""

    def __init__(self, *, fmt: RecordFormat, registry: str, state_topic: str, status_topic: str,
                 commands_topic: str, signer: CommandSigner | None = None,
                 subject_name_strategy: str = "topic_name") -> None:
        self.signer = signer
        self.registry = ids = registry_ids(registry)
        strategy = subject_name_strategy
        self.state_decoder = kafka_decoder(ROBOT_STATE, state_topic, fmt=fmt, ids=ids, subject_name_strategy=strategy)
        self.status_decoder = kafka_decoder(TASK_STATUS, status_topic, fmt=fmt, ids=ids,
                                            subject_name_strategy=strategy)
        self.command_encoder = kafka_encoder(TASK_COMMAND, commands_topic, fmt=fmt, ids=ids,
                                             subject_name_strategy=strategy)
        self._seq = 0
        self._watches = {topic: FormatWatch(
            f"coordinator reading kafka:{topic}", fmt, "kafka", "robot_format (coordinator config)",
            f"the robot bridges (format: of their {stream} route in the robot bridge config; the gateway keeps "
            "Avro as Avro and JSON as JSON unless its up rule says json_format: avro)")
            for topic, stream in ((state_topic, "robot_state"), (status_topic, "task_status"))}

    def mismatch(self, topic: str, payload: bytes, where: str) -> FormatMismatch | None:
        """After a robot's record on `topic` failed to decode: the format mismatch it is, if it is one (counted)."""
        watch = self._watches.get(topic)
        return None if watch is None else watch.mismatch(payload, where=where)

    def close(self) -> None:
        """Release the registry client (its HTTP session, for a Confluent-API registry)."""
        self.registry.close()

    def status(self, payload: bytes) -> StatusReport:
        """A TaskStatus record -> StatusReport; raises for anything malformed."""
        return self.status_stamped(payload)[0]

    def status_stamped(self, payload: bytes) -> tuple[StatusReport, int]:
        """A TaskStatus record -> (StatusReport, the robot's send stamp in ns from its envelope); raises for
        anything malformed."""
        envelope = self.status_decoder.decode(payload)
        return status_report(envelope.body), envelope.stamp_ns

    def command(self, command: Command, now_ns: int) -> bytes:
        """A Command -> TaskCommand record bytes (seq counts this process's commands), signed when a signer
        is set."""
        self._seq += 1
        record = self.command_encoder.encode(Envelope(command.robot_id, "task_command", self._seq, now_ns,
                                                      TASK_COMMAND, command_body(command, now_ns)))
        return record if self.signer is None else self.signer.sign(record)
