"""Fleet coordinator: fleet view, task lifecycle, assignment, event-sourced task state, sharded dispatch.

`core/` is pure (the same in both modes); `kafka/` runs it on Kafka (sharded instances, transactions),
`site/` on one site's MQTT broker (one instance, state in memory); `wiring` (config -> core, command signer)
and `metrics` are what both runners share. The runners never import each other.
"""

from swarm_bridge.coordinator import core as _core
from swarm_bridge.coordinator.core import *  # noqa: F403  (the package's names are the pure core's)

__all__ = list(_core.__all__)
