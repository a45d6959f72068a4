"""Subject naming: which registry subject a stream's schema history lives under (one signature, chosen by name).

As in Confluent's serializers:
  topic_name         `<topic>-value`, e.g. `fleet.state.robot_state-value` (default: one schema
                     history per Kafka topic);
  record_name        the record's full name, e.g. `swarm_bridge.fleet.RobotState` (one history
                     per type, whatever topic carries it);
  topic_record_name  `<topic>-<record full name>` (several types on one topic).
`topic` is always the Kafka topic a stream maps to (`fleet.{channel}.{stream}`), also for MQTT,
so both transports share subjects.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping

from swarm_bridge.codec.errors import RegistryError

__all__ = [
    "DEFAULT_SUBJECT_NAME_STRATEGY",
    "SUBJECT_NAME_STRATEGIES",
    "SubjectNameStrategy",
    "record_name",
    "subject_name_strategy",
    "topic_name",
    "topic_record_name",
]

SubjectNameStrategy = Callable[[str, str], str]


def topic_name(topic: str, record_name: str) -> str:
    """`<topic>-value`: one schema history per Kafka topic (the default)."""
    return f"{topic}-value"


def record_name(topic: str, record_name: str) -> str:
    """The record's full name: one schema history per type, whatever topic carries it."""
    return record_name


def topic_record_name(topic: str, record_name: str) -> str:
    """`<topic>-<record full name>`: several record types on one topic, one history each."""
    return f"{topic}-{record_name}"


SUBJECT_NAME_STRATEGIES: Mapping[str, SubjectNameStrategy] = {
    "topic_name": topic_name,
    "record_name": record_name,
    "topic_record_name": topic_record_name,
}
DEFAULT_SUBJECT_NAME_STRATEGY = "topic_name"


def subject_name_strategy(name: str) -> SubjectNameStrategy:
    """The strategy called `name`; RegistryError naming the valid options (and the near miss) otherwise."""
    try:
        return SUBJECT_NAME_STRATEGIES[name]
    except (KeyError, TypeError):
        near = difflib.get_close_matches(str(name), list(SUBJECT_NAME_STRATEGIES), n=1)
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        raise RegistryError(
            "config",
            f"subject name strategy {name!r} is not valid{hint}. "
            f"Valid options are: {', '.join(SUBJECT_NAME_STRATEGIES)}",
        ) from None
