"""The single-site coordinator process: one SiteCoordinator until SIGINT/SIGTERM, metrics served, a summary
at the end."""

from __future__ import annotations

import logging
import threading
from typing import Any

from swarm_bridge.config.coordinator import CoordinatorConfig
from swarm_bridge.coordinator.site.runner import SiteCoordinator
from swarm_bridge.coordinator.wiring import serve_metrics, stop_event

__all__ = ["run_site"]

log = logging.getLogger(__name__)


def run_site(config: CoordinatorConfig, *, stop: threading.Event | None = None,
             handle_signals: bool = True) -> dict[str, Any]:
    """Run the single-site coordinator until `stop` is set (or SIGINT/SIGTERM); returns its summary."""
    stop = stop_event(stop, handle_signals=handle_signals)
    site = SiteCoordinator(config)
    serve_metrics(site.metrics, config, f"site coordinator {site.client_id}")
    site.start()
    try:
        stop.wait()
    finally:
        site.stop()
        summary = site.summary()
        log.info("site coordinator %s: %s", site.client_id, summary)
    return summary
