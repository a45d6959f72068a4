"""The coordinator process: one instance stepping until SIGINT/SIGTERM, metrics served, a summary at the end."""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any

from swarm_bridge.config.coordinator import CoordinatorConfig
from swarm_bridge.coordinator.kafka.runner import CoordinatorInstance

__all__ = ["run_coordinator"]

log = logging.getLogger(__name__)


def run_coordinator(config: CoordinatorConfig, *, stop: threading.Event | None = None,
                    handle_signals: bool = True) -> dict[str, Any]:
    """Run one coordinator instance until `stop` is set (or a signal arrives); returns its summary."""
    stop = stop or threading.Event()
    if handle_signals:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
    instance = CoordinatorInstance(config)
    if config.metrics_port is not None:
        port = instance.metrics.serve(config.metrics_port)
        log.info("coordinator %s: metrics on http://127.0.0.1:%d/metrics", instance.instance_id, port)
    log.info("coordinator %s: fleet %s, %d shards, group %s", instance.instance_id, config.fleet, config.shards,
             config.kafka.group)
    try:
        while not stop.is_set():
            instance.step()
    finally:
        summary = instance.summary()
        instance.close()
        log.info("coordinator %s: %s", instance.instance_id, summary)
    return summary
