"""VDA 5050 vehicles for the Kafka coordinator: their `state`, `connection` and `factsheet` as the gateway's
`payload: vda5050` up rules write them (Confluent Avro of the records derived from the official JSON Schemas, or
JSON; key manufacturer/serialNumber) folded by every instance's view, and orders and instant actions (startPause/
stopPause on an operator's request among them, `coordinator.core.pause`) as records for the gateway's down rules
(in `vda5050.kafka_format`, Avro by default), produced in the owner's transaction."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

from swarm_bridge.codec.registry import subject_name_strategy
from swarm_bridge.codec.wire import RegistryIds, registry_ids
from swarm_bridge.config.coordinator import CoordinatorConfig
from swarm_bridge.config.robot import default_registry
from swarm_bridge.coordinator.core.dispatch import Command
from swarm_bridge.coordinator.core.errors import CoordinatorSettingError
from swarm_bridge.coordinator.core.events import TaskBook
from swarm_bridge.coordinator.core.fleet import FleetView
from swarm_bridge.coordinator.core.records import StatusReport
from swarm_bridge.coordinator.core.tasks import ACTIVE
from swarm_bridge.coordinator.core.vda import Outgoing, VdaVehicles
from swarm_bridge.vda5050 import MessageInvalid, VehicleId
from swarm_bridge.vda5050.codec import decode_object
from swarm_bridge.vda5050.kafka import VdaKafka, json_value
from swarm_bridge.vda5050.topics import TopicName

__all__ = ["KafkaRecord", "KafkaVda"]

UP = ("state", "connection", "factsheet")


@dataclass(frozen=True)
class KafkaRecord:
    """An order or instant action for the gateway: Kafka topic, key manufacturer/serialNumber, value (Confluent
    Avro or JSON, as `vda5050.kafka_format` says)."""

    topic: str
    key: str
    value: bytes


class KafkaVda:
    """The vehicles seen on Kafka; `reports` collects the task status their states say, for the next round."""

    def __init__(self, config: CoordinatorConfig, book: Callable[[], TaskBook], *,
                 registry: RegistryIds | None = None) -> None:
        """`registry`: where the Avro records' schemas are registered and looked up (the runner's); default one of
        the config's `registry`, opened at first use and closed by `close()`."""
        vda = config.vda5050
        if vda is None:
            raise CoordinatorSettingError("vda5050: KafkaVda needs this section of the coordinator config")
        self.format = vda.kafka_format
        self._owned = registry is None
        self.registry = registry if registry is not None else registry_ids(config.registry or default_registry())
        self.records = VdaKafka(register=self.registry, by_id=self.registry.by_id,
                                subject_name=subject_name_strategy(config.subject_name_strategy))
        grace = int(config.tasks.robot_offline_after_s * 1e9)
        self._new = lambda: VdaVehicles(vda, config.capabilities, offline_grace_ns=grace)
        self.vehicles = self._new()
        self.kafka_topics = vda.kafka_topics()
        self._names = {topic: name for name, topic in self.kafka_topics.items()}
        self.up = [self.kafka_topics[name] for name in UP]
        self._book = book
        self.reports: list[StatusReport] = []

    def reset(self) -> None:
        """Forget the vehicles and orders (the view reads them again from the start)."""
        self.vehicles = self._new()
        self.reports.clear()

    def knows(self, robot_id: str) -> bool:
        return self.vehicles.knows(robot_id)

    def close(self) -> None:
        """Close the registry client if this made it."""
        if self._owned:
            self.registry.close()

    def fold(self, topic: str, key: bytes | None, value: bytes, fleet: FleetView, now_ns: int) -> bool:
        """Fold one record of a VDA 5050 up topic; False when `topic` is none. Raises MessageInvalid or
        UnknownVehicle for a record that does not fold (the caller counts it)."""
        name = self._names.get(topic)
        if name not in UP:
            return False
        vehicle = _vehicle(key, topic)
        mqtt_topic = self.vehicles.topics.topic(vehicle, cast(TopicName, name))
        if value[:1] != b"{":  # Confluent Avro: the message as the JSON the profile reads
            value = json_value(self.records.read(value, name)[1])
        if name == "state":
            self.reports += self.vehicles.on_state(mqtt_topic, value, fleet, now_ns, self._adopt)
        elif name == "connection":
            self.vehicles.on_connection(mqtt_topic, value, fleet, now_ns)
        else:
            self.vehicles.on_factsheet(mqtt_topic, value, fleet)
        return True

    def command(self, command: Command, now_ns: int) -> list[KafkaRecord]:
        """An assignment as an order, a cancel as cancelOrder, as records for the gateway's down rules."""
        return [self._record(out, command.robot_id) for out in self.vehicles.command(command, now_ns)]

    def pause(self, robot_id: str, paused: bool, now_ns: int) -> KafkaRecord:
        """startPause (or stopPause) for a vehicle whose state was seen, as a record for the gateway's down rule;
        UnknownVehicle otherwise."""
        return self._record(self.vehicles.pause(robot_id, paused, now_ns), robot_id)

    def quiet(self, fleet: FleetView, now_ns: int, stale_after_ns: int,
              mine: Callable[[str], bool]) -> list[KafkaRecord]:
        """stateRequest to this instance's silent vehicles (`VdaVehicles.quiet`)."""
        out = []
        for message in self.vehicles.quiet(fleet, now_ns, stale_after_ns):
            robot_id = self._robot_of(message.topic)
            if mine(robot_id):
                out.append(self._record(message, robot_id))
        return out

    def _adopt(self, robot_id: str, order_id: str) -> str | None:
        """The active task whose order `order_id` is (orderId = command id): an order another instance sent. None
        when no active task has it yet: asked again at the vehicle's next state (the view may not have read the
        task's event yet, e.g. while it rebuilds after a takeover)."""
        book = self._book()
        for task in (book.get(task_id) for task_id in book.active):
            if task is not None and task.command_id == order_id and task.robot_id == robot_id and task.state in ACTIVE:
                return task.task_id
        self.vehicles.looked_up.pop(robot_id, None)
        return None

    def _record(self, out: Outgoing, robot_id: str) -> KafkaRecord:
        name = out.topic.rsplit("/", 1)[-1]
        kafka_topic = self.kafka_topics[name]
        if self.format == "json":
            return KafkaRecord(kafka_topic, robot_id, out.payload)
        doc = decode_object(name, out.payload)
        return KafkaRecord(kafka_topic, robot_id, self.records.write(self.format, kafka_topic, name, doc))

    def _robot_of(self, mqtt_topic: str) -> str:
        parsed = self.vehicles.topics.parse(mqtt_topic)
        return "" if parsed is None else parsed[0].robot_id


def _vehicle(key: bytes | None, topic: str) -> VehicleId:
    manufacturer, _, serial = (key or b"").decode("utf-8", "replace").partition("/")
    if not manufacturer or not serial or "/" in serial:
        raise MessageInvalid(topic, "key", f"expected manufacturer/serialNumber (the gateway's vda5050 up rule key), "
                             f"got {key!r}")
    return VehicleId(manufacturer, serial)
