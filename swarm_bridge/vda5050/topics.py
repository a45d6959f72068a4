"""VDA 5050 topics (section 6.3): `interfaceName/majorVersion/manufacturer/serialNumber/topic`, each topic with the
QoS, retain flag and direction the spec gives it (sections 6.2, 6.5, 6.14, 6.15)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from swarm_bridge.vda5050.errors import TopicInvalid

__all__ = ["TOPICS", "TopicName", "TopicSpec", "Vda5050Topics", "VehicleId"]

TopicName = Literal["order", "instantActions", "state", "visualization", "connection", "factsheet"]
_SERIAL = re.compile(r"^[A-Za-z0-9_.:-]+$")  # section 6.3: the characters a serialNumber may hold
_LEVEL = re.compile(r"^[^/+#$\0]+$")  # any other level: no separator, wildcard or '$'


@dataclass(frozen=True)
class TopicSpec:
    """One VDA 5050 topic: who publishes it, its QoS and retain flag, its schema file."""

    name: TopicName
    publisher: Literal["master", "vehicle"]
    qos: int
    retain: bool

    @property
    def schema_file(self) -> str:
        return f"{self.name}.schema"


TOPICS: dict[str, TopicSpec] = {spec.name: spec for spec in (
    TopicSpec("order", "master", 0, False),
    TopicSpec("instantActions", "master", 0, False),
    TopicSpec("state", "vehicle", 0, False),
    TopicSpec("visualization", "vehicle", 0, False),
    TopicSpec("connection", "vehicle", 1, True),
    TopicSpec("factsheet", "vehicle", 0, True),
)}


@dataclass(frozen=True, order=True)
class VehicleId:
    """A vehicle as VDA 5050 names it; `robot_id` is how the rest of the fleet names it (`manufacturer/serial`)."""

    manufacturer: str
    serial_number: str

    def __post_init__(self) -> None:
        if not _LEVEL.match(self.manufacturer):
            raise TopicInvalid(f"vda5050 manufacturer {self.manufacturer!r}: must be non-empty without '/', '+', '#' "
                               "or '$' (section 6.3)")
        if not _SERIAL.match(self.serial_number):
            raise TopicInvalid(f"vda5050 serialNumber {self.serial_number!r}: use only A-Z a-z 0-9 _ . : - "
                               "(section 6.3)")

    @property
    def robot_id(self) -> str:
        return f"{self.manufacturer}/{self.serial_number}"

    @classmethod
    def of_robot(cls, robot_id: str) -> VehicleId:
        manufacturer, _, serial = robot_id.partition("/")
        return cls(manufacturer, serial)


@dataclass(frozen=True)
class Vda5050Topics:
    """The topics of one VDA 5050 interface on one broker: `uagv/v2/...` by default."""

    interface_name: str = "uagv"
    major_version: str = "v2"

    def __post_init__(self) -> None:
        if not _LEVEL.match(self.interface_name):
            raise TopicInvalid(f"vda5050 interface_name {self.interface_name!r}: must be non-empty without '/', "
                               "'+', '#' or '$'")
        if not re.match(r"^v[0-9]+$", self.major_version):
            raise TopicInvalid(f"vda5050 major_version {self.major_version!r}: 'v' and the major version, e.g. v2")

    def topic(self, vehicle: VehicleId, name: TopicName) -> str:
        return f"{self.interface_name}/{self.major_version}/{vehicle.manufacturer}/{vehicle.serial_number}/{name}"

    def every_vehicle(self, name: TopicName) -> str:
        """The subscription filter of one topic of every vehicle: `uagv/v2/+/+/state`."""
        return f"{self.interface_name}/{self.major_version}/+/+/{name}"

    def parse(self, topic: str) -> tuple[VehicleId, TopicName] | None:
        """(vehicle, topic name) of a topic of this interface; None when it is not one (or names a bad vehicle)."""
        parts = topic.split("/")
        if len(parts) != 5 or parts[0] != self.interface_name or parts[1] != self.major_version:
            return None
        if parts[4] not in TOPICS:
            return None
        try:
            vehicle = VehicleId(parts[2], parts[3])
        except TopicInvalid:
            return None
        return vehicle, TOPICS[parts[4]].name
