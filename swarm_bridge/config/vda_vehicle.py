"""The robot bridge's `vda5050` section: the robot as a VDA 5050 2.1 vehicle (its names and topics, the ROS 2
action that drives it to a node, the action each actionType runs, the broker it speaks VDA 5050 on)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator

from swarm_bridge.config.common import Strict
from swarm_bridge.config.errors import ConfigValueError
from swarm_bridge.config.tasks import ActionTaskConfig

__all__ = ["POSE_TYPES", "PositionConfig", "VdaVehicleConfig"]

LEVEL = r"^[^/+#$\s]+$"  # a topic level: no separator, wildcard, '$' or space (section 6.3)

# The ROS types a position topic may have -> where in the message its geometry_msgs/Pose is.
POSE_TYPES: dict[str, str] = {
    "geometry_msgs/msg/PoseStamped": "pose",
    "geometry_msgs/msg/PoseWithCovarianceStamped": "pose.pose",
    "nav_msgs/msg/Odometry": "pose.pose",
    "swarm_bridge_msgs/msg/RobotState": "pose.pose",
}


class PositionConfig(Strict):
    """A ROS topic that tells where the robot is (agvPosition before and between drives)."""

    topic: str = Field(pattern=r"^/[A-Za-z0-9_/~{}]*$", description="e.g. /{robot_id}/robot_state")
    type: str = Field(description=f"one of {', '.join(POSE_TYPES)}")
    map_id: str = Field(default="map", min_length=1, description="agvPosition.mapId")

    @field_validator("type")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in POSE_TYPES:
            raise ConfigValueError(f"{value!r} is not a type a position is read from; use one of "
                                   f"{', '.join(POSE_TYPES)}")
        return value


class VdaVehicleConfig(Strict):
    """This robot as a VDA 5050 vehicle: topics `interface_name/major_version/manufacturer/serial_number/<topic>`;
    a node of an order is driven to by the `node` action (goal from target.x, target.y, target.yaw: the node's
    theta, target.frame: its mapId); an actionType of `actions` runs its action (param.<key>: actionParameters)."""

    interface_name: str = Field(default="uagv", pattern=LEVEL, description="first topic level")
    major_version: str = Field(default="v2", pattern=r"^v[0-9]+$", description="second topic level")
    manufacturer: str = Field(pattern=LEVEL, description="third topic level and header.manufacturer")
    serial_number: str = Field(pattern=r"^[A-Za-z0-9_.:-]+$", description="fourth topic level and "
                               "header.serialNumber (A-Z a-z 0-9 _ . : -)")
    node: ActionTaskConfig = Field(description="the ROS 2 action that drives the robot to a node, e.g. "
                                   "nav2_msgs/action/NavigateToPose with pose.pose.position.x: target.x")
    actions: dict[str, ActionTaskConfig] = Field(default_factory=dict, description="actionType -> the ROS 2 "
                                                 "action it runs; orders with other actionTypes are rejected")
    position: PositionConfig | None = Field(default=None, description="where the robot is, from a ROS topic; "
                                            "none: from the drive action's feedback only")
    host: str | None = Field(default=None, min_length=1, description="the broker of the VDA 5050 topics; default: "
                             "the MQTT uplink's")
    port: int | None = Field(default=None, ge=1, le=65535, description="its port; default: the MQTT uplink's")
    keepalive_s: int = Field(default=15, ge=5, le=65535, description="MQTT keepalive (the spec suggests ~15 s): "
                             "how soon the broker publishes the Last Will CONNECTIONBROKEN")
    state_period_s: float = Field(default=30.0, gt=0, le=30.0, description="state at least this often (the spec: "
                                  "at least every 30 s), besides on every change")
    visualization_hz: float | None = Field(default=None, gt=0, le=50, description="publish visualization (the "
                                           "position) at most this often while it changes; null: not at all")
    deviation_m: float = Field(default=0.5, gt=0, description="how far from a new order's first node the robot may "
                               "stand (a node's own allowedDeviationXY counts when larger)")
    schemas: str | None = Field(default=None, description="folder of the official VDA 5050 JSON Schemas: orders and "
                                "instantActions are checked against them too (default: the models only)")
    series_name: str = Field(default="swarm_bridge", min_length=1, description="factsheet typeSpecification.seriesName")
    speed_max_mps: float = Field(default=1.0, gt=0, description="factsheet physicalParameters.speedMax")

    @field_validator("schemas")
    @classmethod
    def _schemas_exist(cls, value: str | None) -> str | None:
        if value is not None and not (Path(value).expanduser() / "order.schema").is_file():
            raise ConfigValueError(f"{value}: no order.schema there; name the json_schemas folder of the VDA 5050 "
                                   "2.1 release")
        return value

    @field_validator("actions")
    @classmethod
    def _action_types(cls, value: dict[str, ActionTaskConfig]) -> dict[str, ActionTaskConfig]:
        reserved = sorted(set(value) & {"cancelOrder", "startPause", "stopPause", "stateRequest",
                                        "factsheetRequest"})
        if reserved:
            raise ConfigValueError(f"{reserved[0]}: the vehicle answers this instant action itself; leave it out")
        return value
