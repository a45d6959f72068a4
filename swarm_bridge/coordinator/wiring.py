"""What both runners (Kafka, single-site) build from the config alike: the pure core and the command signer."""

from __future__ import annotations

from swarm_bridge.commands import CommandSigner
from swarm_bridge.config.coordinator import CoordinatorConfig
from swarm_bridge.coordinator.core.assignment import POLICIES
from swarm_bridge.coordinator.core.dispatch import Dispatch
from swarm_bridge.coordinator.core.tasks import TaskRules

__all__ = ["build_dispatch", "command_signer"]


def build_dispatch(config: CoordinatorConfig) -> Dispatch:
    """The pure core configured from the config file."""
    p, t = config.policy, config.tasks
    policy = POLICIES[p.name](speed_mps=p.speed_mps, task_s=p.task_s, battery_weight=p.battery_weight,
                              queue_weight=p.queue_weight, min_battery_percent=p.min_battery_percent,
                              max_queue=p.max_queue)
    rules = TaskRules(int(t.accept_timeout_s * 1e9), int(t.run_timeout_s * 1e9), t.max_attempts)
    return Dispatch(shards=config.shards, kinds=config.kinds, rules=rules, policy=policy,
                    stale_after_ns=int(t.robot_offline_after_s * 1e9))


def command_signer(config: CoordinatorConfig) -> CommandSigner | None:
    """The signer of outgoing commands when the config names a `signing_key`."""
    return None if config.signing_key is None else CommandSigner.from_file(config.signing_key)
