"""The coordinator process: one instance stepping until SIGINT/SIGTERM, metrics served, a summary at the end."""

from __future__ import annotations

import logging
import threading
from typing import Any

from swarm_bridge.config.coordinator import CoordinatorConfig
from swarm_bridge.coordinator.kafka.runner import CoordinatorInstance
from swarm_bridge.coordinator.wiring import serve_metrics, stop_event

__all__ = ["run_coordinator"]

log = logging.getLogger(__name__)


def run_coordinator(config: CoordinatorConfig, *, stop: threading.Event | None = None,
                    handle_signals: bool = True) -> dict[str, Any]:
    """Run one coordinator instance until `stop` is set (or a signal arrives); returns its summary."""
    stop = stop_event(stop, handle_signals=handle_signals)
    instance = CoordinatorInstance(config)
    serve_metrics(instance.metrics, config, f"coordinator {instance.instance_id}")
    log.info("coordinator %s: fleet %s, %d shards, group %s", instance.instance_id, config.fleet, config.shards,
             config.kafka.group)
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
