"""The single-site coordinator process: one SiteCoordinator until SIGINT/SIGTERM, metrics served, a summary
at the end."""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any

from swarm_bridge.config.coordinator import CoordinatorConfig
from swarm_bridge.coordinator.site.runner import SiteCoordinator

__all__ = ["run_site"]

log = logging.getLogger(__name__)


def run_site(config: CoordinatorConfig, *, stop: threading.Event | None = None,
             handle_signals: bool = True) -> dict[str, Any]:
    """Run the single-site coordinator until `stop` is set (or SIGINT/SIGTERM); returns its summary."""
    stop = stop or threading.Event()
    if handle_signals:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
    site = SiteCoordinator(config)
    if config.metrics_port is not None:
        port = site.metrics.serve(config.metrics_port)
        log.info("site coordinator %s: metrics on http://127.0.0.1:%d/metrics", site.client_id, port)
    site.start()
    try:
        stop.wait()
    finally:
        site.stop()
        summary = site.summary()
        log.info("site coordinator %s: %s", site.client_id, summary)
    return summary
