"""The coordinator process: one instance stepping until SIGINT/SIGTERM, metrics served, a summary at the end.
An instance Kafka ended (fenced after a transaction outlived a partition leader's failover) starts again in the
process, its shards rebuilt from Kafka, a bounded number of times (`RestartBudget`)."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from swarm_bridge.config.coordinator import CoordinatorConfig
from swarm_bridge.coordinator.core.restarts import RestartBudget
from swarm_bridge.coordinator.kafka.runner import CoordinatorInstance
from swarm_bridge.coordinator.metrics import CoordinatorMetrics
from swarm_bridge.coordinator.wiring import serve_metrics, stop_event
from swarm_bridge.transport.kafka_clients import KafkaException

__all__ = ["run_coordinator"]

log = logging.getLogger(__name__)


def run_coordinator(config: CoordinatorConfig, *, stop: threading.Event | None = None,
                    handle_signals: bool = True, budget: RestartBudget | None = None) -> dict[str, Any]:
    """Run one coordinator instance until `stop` is set (or a signal arrives); returns its summary. A fatal
    Kafka error starts the instance again within `budget` (default 3 in 10 min), else it is raised."""
    stop = stop_event(stop, handle_signals=handle_signals)
    budget = budget or RestartBudget()
    metrics = CoordinatorMetrics()  # one for the process: the endpoint outlives an instance's restart
    served = False
    while True:
        instance = CoordinatorInstance(config, metrics=metrics)
        if not served:
            serve_metrics(metrics, config, f"coordinator {instance.instance_id}")
            served = True
        log.info("coordinator %s: fleet %s, %d shards, group %s", instance.instance_id, config.fleet, config.shards,
                 config.kafka.group)
        try:
            return _run(instance, stop)
        except KafkaException as exc:
            if stop.is_set() or not budget.take(time.monotonic()):
                raise
            log.warning("coordinator %s: Kafka ended the instance (%s); starting it again in this process, its "
                        "shards rebuilt from Kafka (%d more restart(s) allowed within %g s; if another coordinator "
                        "runs with instance_id %s, give each its own)", instance.instance_id, exc, budget.left,
                        budget.window_s, instance.instance_id)
            metrics.restarts.inc()


def _run(instance: CoordinatorInstance, stop: threading.Event) -> dict[str, Any]:
    """Step until `stop`; close the instance however it ends and log its summary."""
    try:
        while not stop.is_set():
            instance.step()
    finally:
        try:
            instance.close()  # first: the rounds still committing count in the summary
        finally:
            summary = instance.summary()
            log.info("coordinator %s: %s", instance.instance_id, summary)
    return summary
