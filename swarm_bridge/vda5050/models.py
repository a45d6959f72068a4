"""The VDA 5050 2.1 messages as pydantic models (sections 6.4-6.15): field names in Python case, camelCase on the
wire (`model_dump(by_alias=True)`); unknown fields a vehicle adds are kept, not refused (the JSON Schemas allow them).

Only what the spec requires is required; optional fields default to None and are left out when encoded."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

__all__ = [
    "MESSAGES",
    "VERSION",
    "Action",
    "ActionParameter",
    "ActionState",
    "AgvPosition",
    "BatteryState",
    "Connection",
    "ConnectionState",
    "Edge",
    "EdgeState",
    "ErrorReference",
    "Factsheet",
    "InstantActions",
    "Node",
    "NodePosition",
    "NodeState",
    "Order",
    "SafetyState",
    "State",
    "VehicleError",
    "Visualization",
]

VERSION = "2.1.0"
UINT32 = 2**32 - 1
ActionStatus = Literal["WAITING", "INITIALIZING", "RUNNING", "PAUSED", "FINISHED", "FAILED"]
BlockingType = Literal["NONE", "SOFT", "HARD"]
ConnectionState = Literal["ONLINE", "OFFLINE", "CONNECTIONBROKEN"]


class Message(BaseModel):
    """Base of every VDA 5050 object: camelCase aliases, frozen, extra fields kept."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow", frozen=True)

    def wire(self) -> dict[str, Any]:
        """The JSON object of this message as the spec spells it (camelCase, optional fields left out)."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class Header(Message):
    """Section 6.4: counted per topic, ISO 8601 UTC time, protocol version, the vehicle's names."""

    header_id: int = Field(ge=0, le=UINT32)
    timestamp: str
    version: str
    manufacturer: str
    serial_number: str


class ActionParameter(Message):
    key: str
    value: Any


class Action(Message):
    action_type: str
    action_id: str
    blocking_type: BlockingType
    action_description: str | None = None
    action_parameters: list[ActionParameter] | None = None


class NodePosition(Message):
    x: float
    y: float
    map_id: str
    theta: float | None = None
    allowed_deviation_x_y: float | None = Field(default=None, alias="allowedDeviationXY")
    allowed_deviation_theta: float | None = None
    map_description: str | None = None


class Node(Message):
    node_id: str
    sequence_id: int = Field(ge=0)
    released: bool
    actions: list[Action]
    node_description: str | None = None
    node_position: NodePosition | None = None


class Edge(Message):
    edge_id: str
    sequence_id: int = Field(ge=0)
    released: bool
    start_node_id: str
    end_node_id: str
    actions: list[Action]
    edge_description: str | None = None
    max_speed: float | None = None
    length: float | None = None


class Order(Header):
    """Section 6.6: nodes and edges, sequence ids 0, 1, 2, ... alternating node, edge, node."""

    order_id: str
    order_update_id: int = Field(ge=0, le=UINT32)
    nodes: list[Node]
    edges: list[Edge]
    zone_set_id: str | None = None


class InstantActions(Header):
    """Section 6.9: actions to run at once (cancelOrder, startPause, stopPause, ...)."""

    actions: list[Action]


class NodeState(Message):
    node_id: str
    sequence_id: int
    released: bool
    node_description: str | None = None
    node_position: dict[str, Any] | None = None


class EdgeState(Message):
    edge_id: str
    sequence_id: int
    released: bool
    edge_description: str | None = None


class ActionState(Message):
    action_id: str
    action_status: ActionStatus
    action_type: str | None = None
    action_description: str | None = None
    result_description: str | None = None


class BatteryState(Message):
    battery_charge: float
    charging: bool
    battery_voltage: float | None = None
    battery_health: float | None = None
    reach: float | None = None


class AgvPosition(Message):
    x: float
    y: float
    theta: float
    map_id: str
    position_initialized: bool
    map_description: str | None = None
    localization_score: float | None = None
    deviation_range: float | None = None


class ErrorReference(Message):
    reference_key: str
    reference_value: str


class VehicleError(Message):
    """One entry of `errors` (section 6.10.5): WARNING resolves itself, FATAL needs a human."""

    error_type: str
    error_level: Literal["WARNING", "FATAL"]
    error_references: list[ErrorReference] | None = None
    error_description: str | None = None
    error_hint: str | None = None

    def refers_to(self, key: str, value: str) -> bool:
        return any(r.reference_key == key and r.reference_value == value for r in self.error_references or ())


class SafetyState(Message):
    e_stop: Literal["AUTOACK", "MANUAL", "REMOTE", "NONE"]
    field_violation: bool


class State(Header):
    """Section 6.10: the vehicle's whole state, on every relevant change and at least every 30 s."""

    order_id: str
    order_update_id: int
    last_node_id: str
    last_node_sequence_id: int
    node_states: list[NodeState]
    edge_states: list[EdgeState]
    driving: bool
    action_states: list[ActionState]
    battery_state: BatteryState
    operating_mode: Literal["AUTOMATIC", "SEMIAUTOMATIC", "MANUAL", "SERVICE", "TEACHIN"]
    errors: list[VehicleError]
    safety_state: SafetyState
    agv_position: AgvPosition | None = None
    paused: bool | None = None
    new_base_request: bool | None = None
    distance_since_last_node: float | None = None
    zone_set_id: str | None = None


class Connection(Header):
    """Section 6.14: ONLINE after connecting, OFFLINE before an orderly stop, CONNECTIONBROKEN as Last Will."""

    connection_state: ConnectionState


class Factsheet(Message):
    """Section 6.15: the vehicle type's parameters; its parts are kept as the vehicle sent them."""

    header_id: int | None = None
    timestamp: str | None = None
    version: str
    manufacturer: str
    serial_number: str
    type_specification: dict[str, Any]
    physical_parameters: dict[str, Any]
    protocol_limits: dict[str, Any]
    protocol_features: dict[str, Any]
    agv_geometry: dict[str, Any]
    load_specification: dict[str, Any]


class Visualization(Header):
    """Section 6.13: the position only, for visualization, more often than state."""

    agv_position: AgvPosition | None = None
    velocity: dict[str, Any] | None = None


MESSAGES: dict[str, type[Message]] = {"order": Order, "instantActions": InstantActions, "state": State,
                                      "connection": Connection, "factsheet": Factsheet,
                                      "visualization": Visualization}
