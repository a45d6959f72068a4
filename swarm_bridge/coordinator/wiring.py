"""What both runners (Kafka, single-site) build from the config alike: the pure core, the command signer, and
their process's stop signal and metrics endpoint."""

from __future__ import annotations

import logging
import signal
import threading

from swarm_bridge.commands import CommandSigner
from swarm_bridge.config.coordinator import CoordinatorConfig
from swarm_bridge.coordinator.core.assignment import POLICIES
from swarm_bridge.coordinator.core.dispatch import Dispatch
from swarm_bridge.coordinator.core.tasks import TaskRules
from swarm_bridge.coordinator.metrics import CoordinatorMetrics
from swarm_bridge.signals import setter_for_signals

__all__ = ["build_dispatch", "command_signer", "serve_metrics", "stop_event"]

log = logging.getLogger(__name__)


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


def stop_event(stop: threading.Event | None, *, handle_signals: bool) -> threading.Event:
    """What a coordinator process runs until: `stop` (or a new event), set by SIGINT/SIGTERM if `handle_signals`."""
    stop = stop or threading.Event()
    if handle_signals:
        handler = setter_for_signals(stop)
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, handler)
    return stop


def serve_metrics(metrics: CoordinatorMetrics, config: CoordinatorConfig, who: str) -> None:
    """Serve the Prometheus metrics on the config's `metrics_port` (if it names one) and say where."""
    if config.metrics_port is not None:
        port = metrics.serve(config.metrics_port)
        log.info("%s: metrics on http://127.0.0.1:%d/metrics", who, port)
