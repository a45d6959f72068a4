"""VDA 5050 2.1 without sockets: topics (`topics`), the messages as models (`models`), headers counted per topic
(`headers`), orders built from a path (`orders`), instant actions (`instant`), an order's outcome and a vehicle's
presence read from `state` and `connection` (`progress`), JSON in and out (`codec`), and the official JSON Schemas
read from a folder the caller names (`schemas`); the Avro records derived from them (`avro_schemas`, the
packaged `avro/*.avsc`), messages to and from them (`avro`) and as Confluent-framed records on Kafka
(`kafka`). The coordinator's VDA 5050 profile is built on it."""

from swarm_bridge.vda5050.codec import decode, encode
from swarm_bridge.vda5050.errors import (
    UNFIT_REASONS,
    DerivationError,
    MessageInvalid,
    MessageUnfit,
    SchemasMissing,
    TopicInvalid,
    Vda5050Error,
)
from swarm_bridge.vda5050.headers import HeaderCounter, HeaderRuns, timestamp
from swarm_bridge.vda5050.instant import INSTANT, instant_action
from swarm_bridge.vda5050.models import (
    MESSAGES,
    VERSION,
    Connection,
    Factsheet,
    InstantActions,
    Order,
    State,
)
from swarm_bridge.vda5050.orders import GoalAction, OrderWatch, Waypoint, build_order
from swarm_bridge.vda5050.progress import ORDER_ERRORS, OrderOutcome, OrderReport, Presence, presence, read_order
from swarm_bridge.vda5050.schemas import OfficialSchemas
from swarm_bridge.vda5050.topics import TOPICS, TopicSpec, Vda5050Topics, VehicleId

__all__ = [
    "INSTANT",
    "MESSAGES",
    "ORDER_ERRORS",
    "TOPICS",
    "UNFIT_REASONS",
    "VERSION",
    "Connection",
    "DerivationError",
    "Factsheet",
    "GoalAction",
    "HeaderCounter",
    "HeaderRuns",
    "InstantActions",
    "MessageInvalid",
    "MessageUnfit",
    "OfficialSchemas",
    "Order",
    "OrderOutcome",
    "OrderReport",
    "OrderWatch",
    "Presence",
    "SchemasMissing",
    "State",
    "TopicInvalid",
    "TopicSpec",
    "Vda5050Error",
    "Vda5050Topics",
    "VehicleId",
    "Waypoint",
    "build_order",
    "decode",
    "encode",
    "instant_action",
    "presence",
    "read_order",
    "timestamp",
]
