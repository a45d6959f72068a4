"""CDR as rclpy writes and reads it: RosTypes' dict <-> CDR against rclpy's own serialization (the rest of
RosTypes: unit/codec/test_codec_rostypes.py)."""

from __future__ import annotations

import importlib
from typing import Any

import pytest
from codec_cases import CODEC_EXAMPLES, messages, same
from hypothesis import given
from hypothesis import strategies as st

from swarm_bridge.codec import (
    default_types,
)


def _ros_message(ros_type: str, values: dict[str, Any]) -> Any:
    package, _, name = ros_type.split("/")
    message = getattr(importlib.import_module(f"{package}.msg"), name)()
    _fill(message, values)
    return message


def _fill(message: Any, values: dict[str, Any]) -> None:
    kinds = message.get_fields_and_field_types()
    for name, value in values.items():
        if kinds[name] == "octet":
            setattr(message, name, bytes([value]))
        elif isinstance(value, dict):
            _fill(getattr(message, name), value)
        elif isinstance(value, list) and any(isinstance(v, dict) for v in value):
            slot = type(message).SLOT_TYPES[list(kinds).index(name)].value_type
            element = getattr(importlib.import_module(".".join(slot.namespaces)), slot.name)
            items = []
            for item in value:
                items.append(element())
                _fill(items[-1], item)
            setattr(message, name, items)
        else:
            setattr(message, name, value)


RCLPY_TYPES = ["nav_msgs/msg/Odometry", "sensor_msgs/msg/Imu", "sensor_msgs/msg/BatteryState",
               "swarm_bridge_msgs/msg/TaskCommand", "sensor_msgs/msg/JointState", "diagnostic_msgs/msg/DiagnosticArray"]


@pytest.mark.integration
@pytest.mark.parametrize("ros_type", RCLPY_TYPES)
@CODEC_EXAMPLES
@given(data=st.data())
def test_cdr_matches_rclpy(ros_type: str, data: st.DataObject) -> None:
    """rclpy's serialize_message == dict_to_cdr of the same content, padding aside (Fast DDS leaves junk in
    padding bytes and sizes its buffer by an estimate); and cdr_to_dict reads rclpy's bytes back."""
    from rclpy.serialization import deserialize_message, serialize_message

    from swarm_bridge.ros.convert import message_to_dict

    types = default_types()
    values = data.draw(messages(types, ros_type))
    ros_message = _ros_message(ros_type, values)
    theirs, ours = serialize_message(ros_message), types.dict_to_cdr(values, ros_type)
    assert len(theirs) >= len(ours)
    assert all(a == b or a == 0 for a, b in zip(ours, theirs, strict=False)), "differs outside padding"
    assert same(types.cdr_to_dict(theirs, ros_type), values)
    back = message_to_dict(deserialize_message(ours, type(ros_message)))
    assert same(back, values)
    if ros_type != "sensor_msgs/msg/JointState":  # no empty float64[] whose alignment Fast DDS over-counts
        assert len(theirs) == len(ours)
